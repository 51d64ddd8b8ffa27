import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { Readable } from 'node:stream';
import type { StorageKey } from '../../crypto/storage-key.js';
import { SpoolCache } from '../../spool/spool-cache.js';
import { ensurePrivateDirSync } from '../file-modes.js';
import type { MessageSpool, SpoolSource } from '../../spool/types.js';
import type { PgPool } from './connect.js';
import type { PgSpoolWriter } from './spool-chunk-writer.js';
import { PgSpoolChunks, SPOOL_SWEEP_GRACE_MS, checkSpoolId } from './spool-chunks.js';

export interface PgSpoolOptions {
  /**
   * A node-local folder (under data.dir, made 0700) for the drafts of mail
   * the relay composes as a stream and stamps before spooling (a
   * recipient's reply): plaintext for as long as one is being composed, as
   * the reply's uploads are.
   */
  draftDir: string;
  /** Plaintext per chunk (256 KiB). */
  chunkBytes?: number | undefined;
  /** Chunk inserts one message's writer keeps going at once (2). */
  writesInFlight?: number | undefined;
  /** How old an unowned message's newest chunk must be before `sweep` removes it (an hour). */
  sweepGraceMs?: number | undefined;
  /** This node's cache of small messages (a fresh one by default). */
  cache?: SpoolCache | undefined;
}

/**
 * The spool of cluster mode: every message's bytes in PostgreSQL as sealed
 * chunks (`PgSpoolChunks`, src/store/pg/spool-chunks.ts), so that once
 * intake commits, any node can process and deliver the message and none
 * depends on another's disk. The small-message cache stays per node: it
 * spares this node's jobs a read, and a job on another node reads the chunks.
 *
 * Intake: a small message is one chunk in one INSERT (`writeNew`), a large
 * one is sealed and inserted chunk by chunk as DATA arrives (`openNew`, at
 * most `writesInFlight` inserts outstanding, the SMTP stream paused
 * meanwhile), each chunk committed on its own before the intake transaction
 * (docs/cluster.md, "Writing the spool"). `durable` has nothing left to do.
 * Delivery streams from the chunks (`source`: `{ open, size }`). A mail
 * the relay composes as a stream and stamps afterwards (a reply) is written
 * to a node-local draft first and streamed into chunks by `adopt`.
 */
export class PgSpool implements MessageSpool {
  readonly cache: SpoolCache;
  readonly chunks: PgSpoolChunks;
  readonly #sweepGraceMs: number;
  readonly #draftDir: string;

  constructor(pool: PgPool, storageKey: StorageKey, options: PgSpoolOptions) {
    this.chunks = new PgSpoolChunks(pool, storageKey, { chunkBytes: options.chunkBytes, writesInFlight: options.writesInFlight });
    this.cache = options.cache ?? new SpoolCache();
    this.#sweepGraceMs = options.sweepGraceMs ?? SPOOL_SWEEP_GRACE_MS;
    this.#draftDir = options.draftDir;
    ensurePrivateDirSync(this.#draftDir);
  }

  source(id: string): SpoolSource {
    const bytes = this.cache.get(id);
    if (bytes) return { bytes };
    return { open: () => this.chunks.read(id), size: () => this.chunks.size(id) };
  }

  read(id: string, _size?: number): Readable {
    const bytes = this.cache.get(id);
    return bytes ? Readable.from([bytes], { objectMode: false }) : this.chunks.read(id);
  }

  /**
   * Stores a mail the relay made. Its chunks are committed when this
   * resolves. An id that has chunks already (a DSN's id is derived from what
   * it reports, and an earlier run may have spooled it and died before its
   * commit) is replaced, as the file spool truncates its file: the unique
   * key refuses the first insert, the leftover goes, and the write runs again.
   */
  async write(id: string, bytes: Buffer): Promise<void> {
    try {
      await this.chunks.writeBytes(id, bytes);
    } catch (err) {
      if ((err as { code?: unknown }).code !== '23505') throw err;
      await this.chunks.remove(id);
      await this.chunks.writeBytes(id, bytes);
    }
    this.cache.set(id, bytes);
  }

  readHeaderBlock(id: string, limit?: number): Promise<Buffer> {
    return this.chunks.readHeaderBlock(id, limit);
  }

  async remove(id: string): Promise<void> {
    this.cache.delete(id);
    await this.chunks.remove(id);
  }

  /** Removes unowned messages whose newest chunk is older than the grace period (another node may be about to commit a recent one). */
  sweep(owned: ReadonlySet<string>): Promise<number> {
    return this.chunks.sweep(owned, { graceMs: this.#sweepGraceMs });
  }

  list(): Promise<string[]> {
    return this.chunks.list();
  }

  async writeNew(id: string, bytes: Buffer, onCreated: () => void): Promise<void> {
    // said before the insert: a failure that leaves the outcome unknown (the connection lost at COMMIT) is discarded too
    onCreated();
    await this.chunks.writeBytes(id, bytes);
  }

  openNew(id: string): PgSpoolWriter {
    return this.chunks.openWriter(id);
  }

  /**
   * Nothing to do. The file spool's durable step syncs the directory, whose
   * entry makes the fsynced file findable after a crash. Here every chunk
   * was its own committed INSERT (synchronous_commit on: WAL flushed before
   * the server answers), and `writeNew` and the writer's `end` resolve only
   * after the last commit: the rows are durable and findable already.
   */
  async durable(_id: string): Promise<void> {}

  discard(id: string): Promise<void> {
    return this.remove(id);
  }

  draftPath(id: string): string {
    return path.join(this.#draftDir, `${checkSpoolId(id)}.eml`);
  }

  /**
   * Removes every draft: what a crash left of a reply being composed, in
   * plaintext. For the start of the role that writes drafts (the reader), as
   * it empties its uploads; not while this node composes a reply. Resolves
   * to how many went.
   */
  async clearDrafts(): Promise<number> {
    const names = await fsp.readdir(this.#draftDir);
    await Promise.all(names.map((name) => fsp.rm(path.join(this.#draftDir, name), { recursive: true, force: true })));
    return names.length;
  }

  /** Streams the draft into sealed chunks (committed when this resolves), then removes it; on failure no chunk stays either. */
  async adopt(id: string): Promise<void> {
    const draft = this.draftPath(id);
    try {
      await this.chunks.write(id, fs.createReadStream(draft, { highWaterMark: 256 * 1024 }));
    } finally {
      await fsp.rm(draft, { force: true });
    }
  }
}
