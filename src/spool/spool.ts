import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { Readable } from 'node:stream';
import { ensurePrivateDirSync } from '../store/file-modes.js';
import { SpoolCache } from './spool-cache.js';
import { CoalescedSync } from '../store/coalesced-sync.js';
import { SpoolFileWriter, replaceFile, writeNewFile } from './spool-writer.js';
import type { MessageSpool } from './types.js';

/**
 * The plaintext spool: one file per accepted message under `<data.dir>/spool`.
 * A file exists from DATA until no job needs it any more. The directory is
 * 0700 and its files 0600, whatever the umask (store/file-modes.ts).
 *
 * Intake (MessageSpool's intake side): a small message is one
 * `open(O_EXCL|O_DSYNC)`, `write`, `close` (`writeNew`), a large one a file
 * streamed with `writev` and fdatasync-ed at its end (`openNew`); `durable`
 * is the spool directory's fsync, coalesced across messages (two fsyncs for a
 * burst, not one per file).
 */
export class Spool implements MessageSpool {
  readonly dir: string;
  readonly cache = new SpoolCache();
  /** A burst of new spool files costs two directory fsyncs, not one per file. */
  readonly #syncer: CoalescedSync;
  /**
   * The spool directory, open while directory syncs are wanted: callers that
   * keep coming (a busy relay) share one descriptor instead of an open and a
   * close around every fsync; closed when the last waiting caller is answered.
   */
  #dirFd: number | undefined;
  #syncWaiters = 0;

  constructor(dataDir: string) {
    this.dir = path.join(dataDir, 'spool');
    ensurePrivateDirSync(this.dir);
    this.#syncer = new CoalescedSync(() => this.#syncDirOnce());
  }

  #syncDirOnce(): Promise<void> {
    return new Promise((resolve, reject) => {
      const sync = (fd: number) => fs.fsync(fd, (err) => (err ? reject(err) : resolve()));
      if (this.#dirFd !== undefined) return sync(this.#dirFd);
      fs.open(this.dir, 'r', (err, fd) => {
        if (err) return reject(err);
        // a sync that opened its own descriptor while another was kept: use that one, close this
        if (this.#dirFd !== undefined) fs.close(fd, () => undefined);
        else this.#dirFd = fd;
        sync(this.#dirFd);
      });
    });
  }

  pathOf(id: string): string {
    if (!/^[0-9a-zA-Z_-]+$/.test(id)) throw new Error(`not a spool id: ${id}`);
    return path.join(this.dir, `${id}.eml`);
  }

  /** The bytes of a spool file: from the in-memory copy of a small message, else streamed from disk. */
  source(id: string): { bytes: Buffer } | { path: string } {
    const bytes = this.cache.get(id);
    return bytes ? { bytes } : { path: this.pathOf(id) };
  }

  /** A stream of a spool file's bytes (see `source`). */
  read(id: string, size?: number): Readable {
    const source = this.source(id);
    if ('bytes' in source) return Readable.from([source.bytes], { objectMode: false });
    // a read buffer the size of the message, up to 256 KiB: small messages make no large garbage
    const highWaterMark = Math.min(Math.max(size ?? 256 * 1024, 16 * 1024), 256 * 1024);
    return fs.createReadStream(source.path, { highWaterMark });
  }

  /** MessageSpool's durable step: the file's directory entry, by `syncDir`. */
  durable(_id: string): Promise<void> {
    return this.syncDir();
  }

  /** Removes the file of a message intake did not accept (and any cached copy). */
  discard(id: string): Promise<void> {
    return this.remove(id);
  }

  /** A streamed mail the relay composes is written straight to its spool file (and fsynced by its writer). */
  draftPath(id: string): string {
    return this.pathOf(id);
  }

  /** The draft is the spool file already: only its directory entry is left to make durable. */
  adopt(_id: string): Promise<void> {
    return this.syncDir();
  }

  /** Makes the creation (or removal) of spool files durable. */
  async syncDir(): Promise<void> {
    this.#syncWaiters++;
    try {
      await this.#syncer.sync();
    } finally {
      if (--this.#syncWaiters === 0 && this.#dirFd !== undefined) {
        const fd = this.#dirFd;
        this.#dirFd = undefined;
        fs.close(fd, () => undefined);
      }
    }
  }

  /**
   * Writes a new spool file (it must not exist) holding `bytes`, durably: the
   * data is on disk when this resolves; the directory entry is `syncDir`'s.
   * `onCreated` runs once the file exists, so a caller failing later knows
   * to remove it.
   */
  writeNew(id: string, bytes: Buffer, onCreated: () => void): Promise<void> {
    return writeNewFile(this.pathOf(id), bytes, onCreated);
  }

  /** A new spool file (it must not exist) written chunk by chunk, for a message too large to hold in memory. */
  openNew(id: string): SpoolFileWriter {
    return new SpoolFileWriter(this.pathOf(id));
  }

  /** Writes a whole spool file the relay made itself, durably (file and directory synced). */
  async write(id: string, bytes: Buffer): Promise<void> {
    await replaceFile(this.pathOf(id), bytes);
    await this.syncDir();
    this.cache.set(id, bytes);
  }

  /** The top-level header block of a spool file (up to `limit` bytes), CRLF line endings kept. */
  async readHeaderBlock(id: string, limit = 256 * 1024): Promise<Buffer> {
    const handle = await fsp.open(this.pathOf(id), 'r');
    try {
      const buffer = Buffer.alloc(limit);
      const { bytesRead } = await handle.read(buffer, 0, limit, 0);
      const data = buffer.subarray(0, bytesRead);
      const end = data.indexOf('\r\n\r\n');
      return end === -1 ? data : data.subarray(0, end + 2);
    } finally {
      await handle.close();
    }
  }

  async remove(id: string): Promise<void> {
    this.cache.delete(id);
    const file = this.pathOf(id);
    await new Promise<void>((resolve, reject) => fs.unlink(file, (err) => (err && err.code !== 'ENOENT' ? reject(err) : resolve())));
  }

  /**
   * Crash recovery at start: removes every spool file no committed message
   * owns (a crash between the file's fsync and the commit). Returns how many.
   */
  async sweep(owned: ReadonlySet<string>): Promise<number> {
    let removed = 0;
    for (const id of await this.list()) {
      if (owned.has(id)) continue;
      await this.remove(id);
      removed++;
    }
    return removed;
  }

  /** Ids of every spool file on disk (for start-up clean-up). */
  async list(): Promise<string[]> {
    const names = await fsp.readdir(this.dir);
    return names.filter((n) => n.endsWith('.eml')).map((n) => n.slice(0, -4));
  }
}
