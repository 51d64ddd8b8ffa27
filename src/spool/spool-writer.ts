import fs from 'node:fs';
import { PRIVATE_FILE_MODE } from '../store/file-modes.js';

const { O_WRONLY, O_CREAT, O_EXCL, O_TRUNC, O_DSYNC } = fs.constants;
/** A new spool file: created here or not at all (never an existing file truncated), 0600 before the umask. */
const NEW_FILE = O_WRONLY | O_CREAT | O_EXCL;
const NEW_FILE_MODE = PRIVATE_FILE_MODE;

/**
 * Writes a whole new spool file durably with the fewest trips to the thread
 * pool: open with O_DSYNC (each write returns only once its data, and the
 * size that makes it readable, are on disk: what fdatasync after the write
 * would give), write, close. Three callbacks, no FileHandle or stream objects.
 * `onCreated` runs as soon as the file exists, so a caller that fails later
 * knows there is a file to remove. The directory entry is the caller's to
 * sync (`Spool.syncDir`).
 */
export function writeNewFile(file: string, bytes: Buffer, onCreated: () => void): Promise<void> {
  return writeDurably(file, NEW_FILE, bytes, onCreated, false);
}

/**
 * Writes `file` whole (created or truncated), durably as `writeNewFile`
 * does, and sets it to 0600 whatever the umask (store/file-modes.ts).
 */
export function replaceFile(file: string, bytes: Buffer): Promise<void> {
  return writeDurably(file, O_WRONLY | O_CREAT | O_TRUNC, bytes, () => undefined, true);
}

function writeDurably(file: string, flags: number, bytes: Buffer, onCreated: () => void, chmod: boolean): Promise<void> {
  return new Promise((resolve, reject) => {
    fs.open(file, flags | O_DSYNC, NEW_FILE_MODE, (err, fd) => {
      if (err) return reject(err);
      onCreated();
      const closeWith = (failure: Error | null) =>
        fs.close(fd, (closeErr) => {
          const first = failure ?? closeErr;
          if (first) reject(first);
          else resolve();
        });
      let at = 0;
      const next = (): void => {
        if (at >= bytes.length) return closeWith(null);
        fs.write(fd, bytes, at, bytes.length - at, null, (writeErr, written) => {
          if (writeErr) return closeWith(writeErr);
          at += written;
          next();
        });
      };
      // the umask masked the mode given to open
      if (chmod) fs.fchmod(fd, NEW_FILE_MODE, (chmodErr) => (chmodErr ? closeWith(chmodErr) : next()));
      else next();
    });
  });
}

/**
 * Streams a new spool file to disk for a message too large to hold in memory:
 * the file is created at once (O_EXCL, 0600), chunks are queued and written
 * with one `writev` at a time, and `write` returns false once `highWaterMark`
 * bytes wait, so the caller pauses its source until `onDrain`. `end` resolves
 * after the last write, an fdatasync and the close; `destroy` closes without
 * syncing. The first error is reported once through `onError` (and by `end`).
 * No stream objects on the way: one callback per write, not a pipe of them.
 */
export class SpoolFileWriter {
  /** True once the file exists on disk (it is the caller's to remove on failure). */
  created = false;
  onDrain: (() => void) | undefined;
  onError: ((err: Error) => void) | undefined;
  readonly #highWaterMark: number;
  #fd: number | undefined;
  #queue: Buffer[] = [];
  #queued = 0;
  /** An open, write, sync or close is in flight. */
  #busy = true;
  #error: Error | undefined;
  #closed = false;
  #full = false;
  #ending: { resolve: () => void; reject: (err: Error) => void } | undefined;
  #destroying: Array<() => void> | undefined;

  constructor(file: string, highWaterMark = 256 * 1024) {
    this.#highWaterMark = highWaterMark;
    fs.open(file, NEW_FILE, NEW_FILE_MODE, (err, fd) => {
      this.#busy = false;
      if (err) return this.#fail(err);
      this.#fd = fd;
      this.created = true;
      this.#next();
    });
  }

  /** Queues `chunk`; false when the caller should wait for `onDrain` before writing more. */
  write(chunk: Buffer): boolean {
    if (this.#error || this.#ending || this.#destroying) return true;
    this.#queue.push(chunk);
    this.#queued += chunk.length;
    this.#next();
    if (this.#queued >= this.#highWaterMark) this.#full = true;
    return !this.#full;
  }

  /** Writes what is queued, then fdatasync and close; resolves when the file is durable and closed. */
  end(): Promise<void> {
    return new Promise((resolve, reject) => {
      if (this.#error) return reject(this.#error);
      this.#ending = { resolve, reject };
      this.#next();
    });
  }

  /** Stops writing and closes the file (after whatever is in flight); never rejects. */
  destroy(): Promise<void> {
    return new Promise((resolve) => {
      if (this.#closed || (this.#fd === undefined && !this.#busy)) return resolve();
      (this.#destroying ??= []).push(resolve);
      this.#next();
    });
  }

  #next(): void {
    if (this.#busy || this.#closed) return;
    const fd = this.#fd;
    if (fd === undefined) return;
    if (this.#destroying || this.#error) return this.#close(fd, undefined);
    if (this.#queued) {
      const chunks = this.#queue;
      const bytes = this.#queued;
      this.#queue = [];
      this.#queued = 0;
      this.#busy = true;
      fs.writev(fd, chunks, (err, written) => {
        this.#busy = false;
        if (err) return this.#fail(err);
        if (written < bytes) this.#requeue(chunks, written);
        if (this.#full && this.#queued < this.#highWaterMark) {
          this.#full = false;
          this.onDrain?.();
        }
        this.#next();
      });
      return;
    }
    if (!this.#ending) return;
    this.#busy = true;
    fs.fdatasync(fd, (err) => {
      this.#busy = false;
      this.#close(fd, err ?? undefined);
    });
  }

  /** Puts back what a short write left, in front of anything queued since. */
  #requeue(chunks: Buffer[], written: number): void {
    const rest: Buffer[] = [];
    let skip = written;
    for (const chunk of chunks) {
      if (skip >= chunk.length) {
        skip -= chunk.length;
        continue;
      }
      rest.push(skip ? chunk.subarray(skip) : chunk);
      skip = 0;
    }
    this.#queue = [...rest, ...this.#queue];
    this.#queued += rest.reduce((n, c) => n + c.length, 0);
  }

  #close(fd: number, failure: Error | undefined): void {
    this.#busy = true;
    fs.close(fd, (closeErr) => {
      this.#busy = false;
      this.#closed = true;
      this.#fd = undefined;
      const err = failure ?? closeErr ?? this.#error;
      for (const resolve of this.#destroying ?? []) resolve();
      this.#destroying = undefined;
      const ending = this.#ending;
      this.#ending = undefined;
      if (err) {
        if (!this.#error) this.#fail(err);
        ending?.reject(err);
      } else ending?.resolve();
    });
  }

  #fail(err: Error): void {
    if (this.#error) return;
    this.#error = err;
    this.#queue = [];
    this.#queued = 0;
    this.onError?.(err);
    const ending = this.#ending;
    if (this.#fd !== undefined) return this.#next(); // closes the file, then rejects `end`
    this.#closed = true;
    for (const resolve of this.#destroying ?? []) resolve();
    this.#destroying = undefined;
    this.#ending = undefined;
    ending?.reject(err);
  }
}
