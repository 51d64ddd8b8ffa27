import { Readable } from 'node:stream';
import { BLOB_READ_BYTES, type BlobRepository } from '../blobs.js';
import { chunksIncomplete, forEachChunk } from './chunks.js';
import type { PgPool } from './connect.js';

/** Bytes per blob chunk: one OpenPGP AEAD chunk, as a file download reads them (BLOB_READ_BYTES). */
export const BLOB_CHUNK_BYTES = BLOB_READ_BYTES;
/** How old an unfinished or unowned blob must be before `sweep` removes it (another node may be writing it). */
export const BLOB_SWEEP_GRACE_MS = 3600_000;
/** Chunks fetched per query when reading: 2 MiB, as the file store's two send buffers (bytea arrives as hex text, twice that while parsed). */
const READ_BATCH = 2;

/** The server's clock in milliseconds (nodes' clocks may differ; the sweep compares with this). */
const SERVER_NOW_MS = 'floor(extract(epoch FROM clock_timestamp()) * 1000)::bigint';


function checkId(id: string): string {
  if (!/^[A-Za-z0-9_-]{1,64}$/.test(id)) throw new RangeError(`invalid blob id ${JSON.stringify(id.slice(0, 40))}`);
  return id;
}

/**
 * The ciphertext blob store in PostgreSQL (`blobs`, `blob_chunks`), for
 * the cluster: what src/store/blobs.ts keeps as
 * `blobs/<secure id>/<blob id>.pgp`. The bytes are OpenPGP ciphertext under
 * the message's content key already, stored as they come (not sealed a
 * second time; what opens them, K_srv, is sealed: server-keys.ts).
 *
 * A blob's row is written first with size NULL, then its chunks (1 MiB,
 * each its own statement, before the secure job's transaction, as the file
 * store writes before it), then the size: a blob whose size is set is
 * whole, as a renamed file is. Reading refuses a blob without a size,
 * chunks out of order or missing, and a total that differs from the size
 * (ZEGEL_CHUNKS_INCOMPLETE). Removing the row removes its chunks (ON DELETE
 * CASCADE). Memory: one chunk while writing, at most READ_BATCH while
 * reading.
 */
export class PgBlobStore implements BlobRepository {
  readonly #pool: PgPool;
  readonly #chunkBytes: number;

  constructor(pool: PgPool, options: { chunkBytes?: number } = {}) {
    this.#pool = pool;
    this.#chunkBytes = options.chunkBytes ?? BLOB_CHUNK_BYTES;
  }

  /** Streams `source` into a new blob (replacing one of the same ids); resolves with its size once it is durable and whole. */
  async write(secureId: string, blobId: string, source: AsyncIterable<Uint8Array> | Iterable<Uint8Array>): Promise<number> {
    checkId(secureId);
    checkId(blobId);
    await this.#pool.query('DELETE FROM blobs WHERE secure_id = $1 AND blob_id = $2', [secureId, blobId]);
    await this.#pool.query(`INSERT INTO blobs (secure_id, blob_id, size, created_at) VALUES ($1, $2, NULL, ${SERVER_NOW_MS})`, [secureId, blobId]);
    try {
      const bytes = await forEachChunk(source, this.#chunkBytes, async (chunk, seq) => {
        await this.#pool.query('INSERT INTO blob_chunks (secure_id, blob_id, seq, bytes) VALUES ($1, $2, $3, $4)', [secureId, blobId, seq, chunk]);
      });
      await this.#pool.query('UPDATE blobs SET size = $3 WHERE secure_id = $1 AND blob_id = $2', [secureId, blobId, bytes]);
      return bytes;
    } catch (err) {
      await this.#pool.query('DELETE FROM blobs WHERE secure_id = $1 AND blob_id = $2', [secureId, blobId]).catch(() => undefined);
      throw err;
    }
  }

  /** The blob's bytes as a stream; an absent or unfinished blob fails the stream (ZEGEL_CHUNKS_INCOMPLETE). */
  open(secureId: string, blobId: string): Readable {
    checkId(secureId);
    checkId(blobId);
    return Readable.from(this.#chunks(secureId, blobId), { objectMode: false, highWaterMark: this.#chunkBytes });
  }

  async *#chunks(secureId: string, blobId: string): AsyncGenerator<Buffer> {
    const what = `blob ${secureId}/${blobId}`;
    const size = await this.size(secureId, blobId);
    if (size === undefined) throw chunksIncomplete(what, 'not stored, or not whole');
    let seq = 0;
    let total = 0;
    for (;;) {
      const { rows } = await this.#pool.query<{ seq: number; bytes: Buffer }>(
        'SELECT seq, bytes FROM blob_chunks WHERE secure_id = $1 AND blob_id = $2 AND seq >= $3 ORDER BY seq LIMIT $4',
        [secureId, blobId, seq, READ_BATCH],
      );
      for (const row of rows) {
        if (row.seq !== seq) throw chunksIncomplete(what, `chunk ${seq} is missing (next stored: ${row.seq})`);
        seq++;
        total += row.bytes.length;
        if (total > size) throw chunksIncomplete(what, `more than its ${size} bytes`);
        yield row.bytes;
      }
      if (rows.length < READ_BATCH) break;
    }
    if (total !== size) throw chunksIncomplete(what, `${total} of its ${size} bytes stored`);
  }

  /** The size of a whole blob; undefined when absent or still being written. */
  async size(secureId: string, blobId: string): Promise<number | undefined> {
    const { rows } = await this.#pool.query<{ size: number | null }>('SELECT size FROM blobs WHERE secure_id = $1 AND blob_id = $2', [checkId(secureId), checkId(blobId)]);
    return rows[0]?.size ?? undefined;
  }

  /** Secure message ids that have a blob. */
  async list(): Promise<string[]> {
    return (await this.#pool.query<{ secure_id: string }>('SELECT DISTINCT secure_id FROM blobs ORDER BY secure_id')).rows.map((r) => r.secure_id);
  }

  /**
   * Start-up recovery: removes the blobs of secure messages not in
   * `committed` whose newest blob is older than `graceMs` by the server's
   * clock (another node may be writing one now). Resolves to how many
   * messages' blobs went.
   */
  async sweep(committed: ReadonlySet<string>, options: { graceMs?: number } = {}): Promise<number> {
    const { rows } = await this.#pool.query<{ secure_id: string }>(
      `SELECT secure_id FROM blobs GROUP BY secure_id HAVING max(created_at) < ${SERVER_NOW_MS} - $1`,
      [options.graceMs ?? BLOB_SWEEP_GRACE_MS],
    );
    let removed = 0;
    for (const { secure_id: id } of rows) {
      if (committed.has(id)) continue;
      await this.remove(id);
      removed++;
    }
    return removed;
  }

  /** Removes every blob of a message (idempotent). */
  async remove(secureId: string): Promise<void> {
    await this.#pool.query('DELETE FROM blobs WHERE secure_id = $1', [checkId(secureId)]);
  }

  /** Removes one blob of a message (idempotent; its chunks go with it). */
  async removeOne(secureId: string, blobId: string): Promise<void> {
    await this.#pool.query('DELETE FROM blobs WHERE secure_id = $1 AND blob_id = $2', [checkId(secureId), checkId(blobId)]);
  }
}
