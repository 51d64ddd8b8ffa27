import { Readable } from 'node:stream';
import { SEAL_OVERHEAD, openChunk, sealChunk, type StorageKey } from '../../crypto/storage-key.js';
import { ZegelError } from '../../errors.js';
import { chunksIncomplete } from './chunks.js';
import type { PgPool } from './connect.js';
import { PgSpoolWriter, SPOOL_WRITES_IN_FLIGHT } from './spool-chunk-writer.js';

/** Plaintext bytes per spool chunk (each stored sealed: SEAL_OVERHEAD bytes more). */
export const SPOOL_CHUNK_BYTES = 256 * 1024;
/** How old an unowned message's newest chunk must be before `sweep` removes it: longer than any DATA phase. */
export const SPOOL_SWEEP_GRACE_MS = 3600_000;
/** Chunks fetched per query when reading (1 MiB of plaintext). */
const READ_BATCH = 4;

/**
 * The additional data a spool chunk is sealed with: it opens only as chunk
 * `seq` of message `id`, and the message's last chunk only as its last
 * (`:last`), so a message whose last chunks are gone is found out without
 * knowing its size.
 */
export function spoolChunkContext(id: string, seq: number, last = false): string {
  return last ? `spool:${id}:${seq}:last` : `spool:${id}:${seq}`;
}

/** `id` when it is a spool id (queue ids: [0-9A-Za-z_-], at most 128), else a RangeError. */
export function checkSpoolId(id: string): string {
  if (!/^[0-9a-zA-Z_-]{1,128}$/.test(id)) throw new RangeError(`not a spool id: ${JSON.stringify(id.slice(0, 40))}`);
  return id;
}

/**
 * The plaintext spool in PostgreSQL (`spool_chunks`): a message's bytes as
 * chunks of SPOOL_CHUNK_BYTES, each sealed under the storage key with the
 * context `spool:<id>:<seq>` (src/crypto/storage-key.ts), so the database,
 * its WAL and its backups hold no plaintext, and a chunk moved to another
 * message or position, a changed byte or another key does not open.
 *
 * Writing happens BEFORE the caller's transaction, each chunk in a
 * statement of its own (autocommit, durable when it returns), not inside
 * it: the bytes come from an SMTP client's DATA stream, which may take
 * minutes; inside a transaction that would hold a pooled connection and its
 * locks for as long, run into idle_in_transaction_session_timeout, and break
 * the store's rule of no I/O inside `work` (src/store/tx.ts). So, as with the
 * file spool: the chunks first, then the transaction that records the
 * message; the chunks of a message that never committed (a crash, a
 * refused DATA) are removed by `remove` on failure and by `sweep` at start.
 * The table has no foreign key to messages for that reason.
 *
 * Memory: one chunk of plaintext and `writesInFlight` (2) sealed chunks in
 * flight while writing (src/store/pg/spool-chunk-writer.ts; the source
 * waits meanwhile); at most READ_BATCH sealed chunks and one plaintext
 * chunk while reading. Never the whole message.
 *
 * Reading checks the order: chunk seq n must be the n-th row; a gap (a
 * missing chunk) is refused with ZEGEL_CHUNKS_INCOMPLETE, a chunk that does
 * not open (swapped, changed, another key) with ZEGEL_STORAGE_SEAL. The last
 * chunk is sealed as the last (`spoolChunkContext`): a message that ends
 * without it (its last chunks gone) or goes on after it is
 * ZEGEL_CHUNKS_INCOMPLETE at its end, so the stream errors instead of ending
 * and no reader takes a cut-off message for a whole one. With the message's
 * size (`bytes`) a total that differs is refused too.
 *
 * Roles: the SMTP and reader roles may INSERT (and the reader nothing else:
 * it hands mail to the spool but cannot read one); reading and deleting
 * are the worker's (001-schema.ts grants).
 */
export class PgSpoolChunks {
  readonly #pool: PgPool;
  readonly #key: StorageKey;
  readonly #chunkBytes: number;
  readonly #writesInFlight: number;

  /** `chunkBytes`: plaintext per chunk (SPOOL_CHUNK_BYTES); `writesInFlight`: chunk inserts one writer keeps going at once (2). */
  constructor(pool: PgPool, storageKey: StorageKey, options: { chunkBytes?: number | undefined; writesInFlight?: number | undefined } = {}) {
    this.#pool = pool;
    this.#key = storageKey;
    this.#chunkBytes = options.chunkBytes ?? SPOOL_CHUNK_BYTES;
    this.#writesInFlight = options.writesInFlight ?? SPOOL_WRITES_IN_FLIGHT;
  }

  /**
   * A writer for message `id` (which must have no chunks yet), for a caller
   * that is handed bytes (SMTP DATA): each chunk sealed and inserted as it
   * fills, with backpressure. Removing what it wrote on failure
   * (`created`, after `destroy`) is the caller's.
   */
  openWriter(id: string): PgSpoolWriter {
    checkSpoolId(id);
    return new PgSpoolWriter(
      {
        seal: (seq, plain, last) => sealChunk(this.#key, spoolChunkContext(id, seq, last), plain),
        insert: async (seq, sealed) => {
          await this.#pool.query('INSERT INTO spool_chunks (message_id, seq, bytes) VALUES ($1, $2, $3)', [id, seq, sealed]);
        },
      },
      { chunkBytes: this.#chunkBytes, inFlight: this.#writesInFlight },
    );
  }

  /**
   * Streams `source` into the spool as message `id` (which must have no
   * chunks yet) through `openWriter`, reading on only while the writer has
   * room; resolves with its size and chunk count once every chunk is
   * committed. On failure the chunks written so far are removed (best
   * effort: `sweep` removes what a crash leaves) and the error is passed on.
   */
  async write(id: string, source: AsyncIterable<Uint8Array> | Iterable<Uint8Array>): Promise<{ bytes: number; chunks: number }> {
    const writer = this.openWriter(id);
    try {
      for await (const piece of source) {
        const data = Buffer.isBuffer(piece) ? piece : Buffer.from(piece.buffer, piece.byteOffset, piece.byteLength);
        // a chunk's worth at a time: a large piece is not sealed whole before the first insert
        for (let at = 0; at < data.length; at += this.#chunkBytes) {
          if (!writer.write(data.subarray(at, at + this.#chunkBytes))) await drained(writer);
          if (writer.error) throw writer.error;
        }
      }
      await writer.end();
      return { bytes: writer.bytes, chunks: writer.chunks };
    } catch (err) {
      await writer.destroy();
      if (writer.created) await this.remove(id).catch(() => undefined);
      throw err;
    }
  }

  /** Writes a message held in memory already (a small one, or one the relay made). */
  writeBytes(id: string, bytes: Buffer): Promise<{ bytes: number; chunks: number }> {
    return this.write(id, [bytes]);
  }

  /**
   * The message's bytes as a stream, chunk by chunk in order. With `bytes`
   * (the recorded size) a total that differs is refused at the end; without
   * it a message with no chunk is ZEGEL_SPOOL_MISSING.
   */
  read(id: string, options: { bytes?: number | undefined } = {}): Readable {
    checkSpoolId(id);
    return Readable.from(this.#chunks(id, options.bytes), { objectMode: false, highWaterMark: this.#chunkBytes });
  }

  async *#chunks(id: string, expected: number | undefined): AsyncGenerator<Buffer> {
    let seq = 0;
    let total = 0;
    let ended = false;
    for (;;) {
      const { rows } = await this.#pool.query<{ seq: number; bytes: Buffer }>(
        'SELECT seq, bytes FROM spool_chunks WHERE message_id = $1 AND seq >= $2 ORDER BY seq LIMIT $3',
        [id, seq, READ_BATCH],
      );
      for (const [i, row] of rows.entries()) {
        if (ended) throw chunksIncomplete(`spool ${id}`, `chunk ${row.seq} follows the last one`);
        if (row.seq !== seq) throw chunksIncomplete(`spool ${id}`, `chunk ${seq} is missing (next stored: ${row.seq})`);
        // the final row of a short batch is most likely the last chunk: its context is tried first
        const likelyLast = rows.length < READ_BATCH && i === rows.length - 1;
        let plain: Buffer;
        try {
          plain = openChunk(this.#key, spoolChunkContext(id, seq, likelyLast), row.bytes);
          ended = likelyLast;
        } catch (err) {
          try {
            plain = openChunk(this.#key, spoolChunkContext(id, seq, !likelyLast), row.bytes);
          } catch {
            throw err;
          }
          ended = !likelyLast;
        }
        seq++;
        total += plain.length;
        if (expected !== undefined && total > expected) throw chunksIncomplete(`spool ${id}`, `more than the recorded ${expected} bytes`);
        yield plain;
      }
      if (rows.length < READ_BATCH) break;
    }
    if (expected === undefined && seq === 0) throw new ZegelError('ZEGEL_SPOOL_MISSING', `spool ${id}: no chunks stored`);
    if (expected !== undefined && total !== expected) throw chunksIncomplete(`spool ${id}`, `${total} of the recorded ${expected} bytes stored`);
    if (seq > 0 && !ended) throw chunksIncomplete(`spool ${id}`, `the last chunk is missing (${seq} chunks, ${total} bytes stored)`);
  }

  /**
   * The message's size in bytes, from the stored chunks' lengths (the
   * database reads no chunk for it); ZEGEL_SPOOL_MISSING when it has none.
   */
  async size(id: string): Promise<number> {
    const { rows } = await this.#pool.query<{ n: number; stored: number }>(
      'SELECT count(*)::int AS n, coalesce(sum(octet_length(bytes)), 0)::float8 AS stored FROM spool_chunks WHERE message_id = $1',
      [checkSpoolId(id)],
    );
    const { n, stored } = rows[0]!;
    if (!n) throw new ZegelError('ZEGEL_SPOOL_MISSING', `spool ${id}: no chunks stored`);
    return stored - n * SEAL_OVERHEAD;
  }

  /** The top-level header block (up to `limit` bytes), CRLF line endings kept, as Spool.readHeaderBlock. */
  async readHeaderBlock(id: string, limit = 256 * 1024): Promise<Buffer> {
    const parts: Buffer[] = [];
    let length = 0;
    const stream = this.read(id);
    try {
      for await (const piece of stream as AsyncIterable<Buffer>) {
        parts.push(piece);
        length += piece.length;
        if (length >= limit || piece.includes('\r\n\r\n')) break;
      }
    } finally {
      stream.destroy();
    }
    const data = Buffer.concat(parts).subarray(0, limit);
    const end = data.indexOf('\r\n\r\n');
    return end === -1 ? data : data.subarray(0, end + 2);
  }

  /** Removes a message's chunks (idempotent). */
  async remove(id: string): Promise<void> {
    await this.#pool.query('DELETE FROM spool_chunks WHERE message_id = $1', [checkSpoolId(id)]);
  }

  /** Ids of every message with chunks stored. */
  async list(): Promise<string[]> {
    return (await this.#pool.query<{ message_id: string }>('SELECT DISTINCT message_id FROM spool_chunks ORDER BY message_id')).rows.map((r) => r.message_id);
  }

  /**
   * Start-up clean-up: removes the chunks of every message not in `owned`
   * whose newest chunk is older than `graceMs` by the server's clock
   * (migration 4): another node may be writing a message whose row has not
   * committed yet, and its chunks are recent. Read `owned` before calling.
   * Resolves to how many messages' chunks went.
   */
  async sweep(owned: ReadonlySet<string>, options: { graceMs?: number } = {}): Promise<number> {
    const graceMs = options.graceMs ?? SPOOL_SWEEP_GRACE_MS;
    const { rows } = await this.#pool.query<{ message_id: string }>(
      `SELECT message_id FROM spool_chunks GROUP BY message_id
       HAVING max(written_at) < floor(extract(epoch FROM clock_timestamp()) * 1000)::bigint - $1`,
      [graceMs],
    );
    let removed = 0;
    for (const { message_id: id } of rows) {
      if (owned.has(id)) continue;
      await this.remove(id);
      removed++;
    }
    return removed;
  }
}

/** Resolves when `writer` has room again, rejects when it fails first. */
function drained(writer: PgSpoolWriter): Promise<void> {
  return new Promise((resolve, reject) => {
    const done = (err?: Error) => {
      writer.onDrain = undefined;
      writer.onError = undefined;
      if (err) reject(err);
      else resolve();
    };
    writer.onDrain = () => done();
    writer.onError = (err) => done(err);
  });
}
