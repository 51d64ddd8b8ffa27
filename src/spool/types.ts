import type { Readable } from 'node:stream';
import type { SpoolCache } from './spool-cache.js';

/**
 * Where a message's bytes come from for delivery: a small message's bytes
 * from memory (the spool cache), a spool file to stream (the file spool; the
 * SMTP pool and the outbox read it with backpressure and stat it for the
 * size), or a stream the spool opens on demand (the PostgreSQL spool: chunk
 * by chunk, never the whole message in memory).
 */
export type SpoolSource = { bytes: Buffer } | { path: string } | SpoolStream;

/** A message the spool streams to whoever sends it: `open` once per send. */
export interface SpoolStream {
  /** A fresh stream of the message's bytes, in order; it errors if they cannot be read whole. */
  open(): Readable;
  /**
   * The message's size in bytes, for SMTP's SIZE parameter (the next hop can
   * refuse a message too large for it before any byte goes). Absent: sent
   * without SIZE.
   */
  size?(): Promise<number>;
}

/**
 * The writer of one message taken in over SMTP and too large to hold in
 * memory. `write` takes the bytes as DATA delivers them (it keeps its own
 * copy or writes them before returning: the caller may reuse the buffer) and
 * returns false once enough waits for storage that the caller should pause
 * its source until `onDrain`. The first failure is reported once through
 * `onError` and by `end`.
 */
export interface SpoolIntakeWriter {
  /** True once something of the message may be stored: the caller's to `discard` on failure. */
  readonly created: boolean;
  onDrain: (() => void) | undefined;
  onError: ((err: Error) => void) | undefined;
  /** Queues `chunk`; false when the caller should wait for `onDrain` before writing more. */
  write(chunk: Buffer): boolean;
  /** Stores what is queued; resolves once every byte is durably stored (the spool's `durable` step aside). */
  end(): Promise<void>;
  /** Stops writing; resolves (never rejects) once nothing is in flight, so a `discard` after it leaves nothing behind. */
  destroy(): Promise<void>;
}

/**
 * The plaintext spool as the relay's components use it: SMTP intake
 * (src/smtp/intake.ts, ingress.ts), processing and secure delivery
 * (src/pipeline/), delivery, DSNs and the hand-off (src/deliver/), the admin
 * commands and start-up recovery. Two drivers: the file spool
 * (src/spool/spool.ts, one file per message under data.dir) and the
 * PostgreSQL spool (src/store/pg/pg-spool.ts, sealed chunks in
 * `spool_chunks`, shared by every node).
 *
 * A message's bytes are in the spool from its DATA (or from the relay making
 * it) until no job needs them. Ids are queue ids ([0-9A-Za-z_-]).
 */
export interface MessageSpool {
  /**
   * Small messages' bytes in memory, so the jobs that run on this node after
   * intake need not read them back. Node-local: a job on another node reads
   * the spool. Its entry size is also intake's line between the one-shot
   * write and the streamed writer.
   */
  readonly cache: SpoolCache;

  /** Where delivery reads the message from: memory when cached, else the driver's own source. */
  source(id: string): SpoolSource;
  /** The message's bytes as a stream (from memory when cached). `size`: the recorded size, a hint for buffer sizes only. */
  read(id: string, size?: number): Readable;
  /** Stores a whole message the relay made itself (a DSN, a notification, …), durably, and caches it when small. */
  write(id: string, bytes: Buffer): Promise<void>;
  /** The top-level header block (up to `limit` bytes), CRLF line endings kept. */
  readHeaderBlock(id: string, limit?: number): Promise<Buffer>;
  /** Removes the message's bytes and its cached copy (idempotent). */
  remove(id: string): Promise<void>;
  /**
   * Start-up clean-up: removes every message not in `owned` (read `owned`
   * from the committed messages first) whose bytes no intake can still be
   * writing. Resolves to how many went.
   */
  sweep(owned: ReadonlySet<string>): Promise<number>;
  /** Ids of every message with bytes in the spool. */
  list(): Promise<string[]>;

  // ---- intake: a message taken in over SMTP (src/smtp/intake.ts) ----

  /**
   * Stores a new message held in memory (within `cache.maxEntryBytes`): its
   * bytes are durable when this resolves, its existence once `durable` has
   * resolved too. `onCreated` runs as soon as something may be stored (the
   * caller then knows to `discard` on failure, and may start `durable`
   * alongside the write).
   */
  writeNew(id: string, bytes: Buffer, onCreated: () => void): Promise<void>;
  /** A writer for a new message too large to hold in memory, streamed with backpressure. */
  openNew(id: string): SpoolIntakeWriter;
  /**
   * Makes a new message's existence durable, after (or, for `writeNew`,
   * alongside) the write of its bytes. Only then may intake commit and answer
   * `250`.
   */
  durable(id: string): Promise<void>;
  /** Removes what intake stored of a message that was not accepted (idempotent, whatever state it is in). */
  discard(id: string): Promise<void>;

  // ---- a mail the relay composes as a stream and patches before it is spooled (src/secure/reply-mail.ts) ----

  /**
   * A node-local file to write such a mail into (new, 0600), where it can be
   * patched in place (X-Zegel-Origin is stamped once the body is known);
   * `adopt` then takes it into the spool. On a failure before `adopt` the
   * caller removes the file.
   */
  draftPath(id: string): string;
  /** Takes the written draft of `id` into the spool, durably; the draft is gone from `draftPath` afterwards, whatever the outcome. */
  adopt(id: string): Promise<void>;
}
