import fs from 'node:fs';
import fsp, { type FileHandle } from 'node:fs/promises';
import { ServerResponse } from 'node:http';
import path from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { PRIVATE_FILE_MODE, ensurePrivateDir } from './file-modes.js';

/**
 * Ciphertext blobs of secure messages: `<data.dir>/blobs/<secure id>/<blob id>.pgp`.
 * A blob is written to a temporary name, fsynced and renamed, so a blob that
 * exists is whole. Ids are base64url (no path separators); anything else is refused.
 * Directories are 0700 and blob files 0600, whatever the umask (file-modes.ts).
 */
/** One read of a blob for a download (see `BlobReadStream`). */
export const BLOB_READ_BYTES = 1 << 20;
/** Read buffers a download to an HTTP response takes turns with: one is read into while the other is sent. */
export const BLOB_SEND_BUFFERS = 2;

/**
 * What the relay's components use of the blob store (the secure job and
 * its content writer, revocation, the relay's start-up sweep): the calls
 * both drivers give, this file store and the PostgreSQL one
 * (src/store/pg/blob-chunks.ts). No directory: a blob is named by its ids only.
 */
export interface BlobRepository {
  /** Streams `source` into a new blob; resolves with its size once it is durable and whole. */
  write(secureId: string, blobId: string, source: Readable): Promise<number>;
  /** The blob's bytes (a download). */
  open(secureId: string, blobId: string): Readable;
  /** The size of a whole blob; undefined when there is none. */
  size(secureId: string, blobId: string): Promise<number | undefined>;
  /** Secure message ids that have a blob. */
  list(): Promise<string[]>;
  /** Crash recovery at start: removes the blobs of secure messages not in `committed`; resolves to how many messages' blobs went. */
  sweep(committed: ReadonlySet<string>): Promise<number>;
  /** Removes every blob of a message (idempotent). */
  remove(secureId: string): Promise<void>;
  /** Removes one blob of a message (idempotent): a reply copy whose mail could not be queued. */
  removeOne(secureId: string, blobId: string): Promise<void>;
}

export class BlobStore implements BlobRepository {
  readonly dir: string;

  constructor(dataDir: string) {
    this.dir = path.join(dataDir, 'blobs');
  }

  #path(secureId: string, blobId?: string): string {
    for (const id of [secureId, blobId]) {
      if (id !== undefined && !/^[A-Za-z0-9_-]{1,64}$/.test(id)) throw new RangeError(`invalid blob id ${JSON.stringify(id)}`);
    }
    return blobId === undefined ? path.join(this.dir, secureId) : path.join(this.dir, secureId, `${blobId}.pgp`);
  }

  /** Streams `source` into a new blob; resolves with its size once it is durable. */
  async write(secureId: string, blobId: string, source: Readable): Promise<number> {
    const dir = this.#path(secureId);
    // blobs/ and blobs/<secure id>/, private also when an older version made them
    await ensurePrivateDir(this.dir);
    await ensurePrivateDir(dir);
    const final = this.#path(secureId, blobId);
    const tmp = `${final}.tmp`;
    let bytes = 0;
    source.on('data', (chunk: Buffer) => {
      bytes += chunk.length;
    });
    const out = fs.createWriteStream(tmp, { flush: true, mode: PRIVATE_FILE_MODE });
    try {
      await pipeline(source, out);
      // the umask masked the mode given to open
      await fsp.chmod(tmp, PRIVATE_FILE_MODE);
      await fsp.rename(tmp, final);
      const handle = await fsp.open(dir, 'r');
      try {
        await handle.sync();
      } finally {
        await handle.close();
      }
    } catch (err) {
      await fsp.rm(tmp, { force: true });
      throw err;
    }
    return bytes;
  }

  /** Reads a blob (for a download: see BlobReadStream). The file is opened on the first read. */
  open(secureId: string, blobId: string): BlobReadStream {
    return new BlobReadStream(this.#path(secureId, blobId));
  }

  async size(secureId: string, blobId: string): Promise<number | undefined> {
    try {
      return (await fsp.stat(this.#path(secureId, blobId))).size;
    } catch {
      return undefined;
    }
  }

  /** Secure message ids that have a blob directory. */
  async list(): Promise<string[]> {
    try {
      return (await fsp.readdir(this.dir, { withFileTypes: true })).filter((e) => e.isDirectory()).map((e) => e.name);
    } catch {
      return [];
    }
  }

  /**
   * Crash recovery at start: removes the ciphertext of secure messages that
   * were never committed (a secure job that crashed before its commit runs
   * again with new keys). Returns how many messages' blobs went.
   */
  async sweep(committed: ReadonlySet<string>): Promise<number> {
    let removed = 0;
    for (const id of await this.list()) {
      if (committed.has(id)) continue;
      await this.remove(id);
      removed++;
    }
    return removed;
  }

  /** Removes every blob of a message (idempotent). */
  async remove(secureId: string): Promise<void> {
    await fsp.rm(this.#path(secureId), { recursive: true, force: true });
  }

  async removeOne(secureId: string, blobId: string): Promise<void> {
    await fsp.rm(this.#path(secureId, blobId), { force: true });
  }
}

/**
 * A blob file as a Readable, read BLOB_READ_BYTES (1 MiB, one OpenPGP AEAD
 * chunk) at a time.
 *
 * Piped into an HTTP response (Fastify's `reply.send(stream)` pipes it), it
 * reads into BLOB_SEND_BUFFERS buffers of its own in turn and hands each to
 * `response.write`, reusing a buffer only once that write's callback has
 * run: the socket has then passed its bytes to the kernel. A download thus
 * allocates two buffers instead of a fresh one per read; fresh megabytes
 * (page faults, zeroing, garbage collection of external memory) were most of
 * the reader's CPU in a 200 MiB download (bench/README.md, "Reader
 * benchmark"). Memory per download stays at most BLOB_SEND_BUFFERS reads.
 * Only an http.ServerResponse gets this: its write copies into the socket,
 * where another Writable might keep the chunk it was given (a collector that
 * pushes chunks into an array). Any other consumer (`pipe` into something
 * else, 'data', `read()`, async iteration) gets a fresh buffer per read.
 *
 * The bytes are the file's, unchanged: a blob is immutable once written
 * (tmp + rename), and a file shorter than its size at open is an error, as
 * the promised Content-Length could not be kept.
 */
export class BlobReadStream extends Readable {
  readonly path: string;
  #file: Promise<{ handle: FileHandle; size: number }> | undefined;
  /** Next file position the read path reads. */
  #position = 0;
  /** 'send': piped into a response, the send loop owns the file. */
  #mode: 'idle' | 'read' | 'send' = 'idle';

  constructor(file: string) {
    // one read buffered ahead for the read path, as fs.createReadStream with this highWaterMark
    super({ highWaterMark: BLOB_READ_BYTES });
    this.path = file;
  }

  /** Opens the file once, with its size at that moment. */
  #open(): Promise<{ handle: FileHandle; size: number }> {
    this.#file ??= (async () => {
      const handle = await fsp.open(this.path, 'r');
      try {
        return { handle, size: (await handle.stat()).size };
      } catch (err) {
        await handle.close();
        throw err;
      }
    })();
    return this.#file;
  }

  override pipe<T extends NodeJS.WritableStream>(destination: T, options?: { end?: boolean }): T {
    if (this.#mode !== 'idle' || !(destination instanceof ServerResponse)) return super.pipe(destination, options);
    this.#mode = 'send';
    destination.emit('pipe', this);
    void this.#send(destination, options?.end !== false);
    return destination;
  }

  async #send(response: ServerResponse, end: boolean): Promise<void> {
    let gone = false;
    let left!: () => void;
    const closed = new Promise<void>((resolve) => {
      left = () => {
        gone = true;
        resolve();
      };
    });
    response.once('close', left);
    try {
      const { handle, size } = await this.#open();
      const bytes = Math.min(BLOB_READ_BYTES, size);
      const buffers: Buffer[] = [];
      /** Per buffer: settles when the socket has taken the bytes last written from it. */
      const sent: Array<Promise<void> | undefined> = [];
      for (let position = 0, i = 0; position < size; i = (i + 1) % BLOB_SEND_BUFFERS) {
        if (sent[i]) await Promise.race([sent[i], closed]);
        if (gone || this.destroyed) return;
        const buffer = (buffers[i] ??= Buffer.allocUnsafeSlow(bytes));
        const { bytesRead } = await handle.read(buffer, 0, Math.min(bytes, size - position), position);
        if (bytesRead === 0) throw new Error(`blob file ended at byte ${position} of ${size}`);
        if (gone || this.destroyed) return;
        position += bytesRead;
        const chunk = bytesRead === bytes ? buffer : buffer.subarray(0, bytesRead);
        // the callback also runs when the write fails (the connection went): 'close' ends the loop then
        sent[i] = new Promise<void>((resolve) => response.write(chunk, () => resolve()));
      }
      // as Readable#pipe does: this stream's 'end' first (Fastify waits for it), then the response's;
      // autoDestroy closes the file after 'end'
      if (end) this.once('end', () => response.end());
      this.push(null);
      this.resume();
    } catch (err) {
      this.destroy(err as Error);
    } finally {
      response.off('close', left);
      // the client went away: release the file (Fastify destroys this stream too; once is enough)
      if (gone && !this.destroyed) this.destroy();
    }
  }

  override _read(): void {
    if (this.#mode === 'send') return;
    this.#mode = 'read';
    this.#open()
      .then(async ({ handle, size }) => {
        const want = Math.min(BLOB_READ_BYTES, size - this.#position);
        if (want <= 0) {
          this.push(null);
          return;
        }
        const buffer = Buffer.allocUnsafeSlow(want);
        const { bytesRead } = await handle.read(buffer, 0, want, this.#position);
        if (bytesRead === 0) throw new Error(`blob file ended at byte ${this.#position} of ${size}`);
        this.#position += bytesRead;
        this.push(bytesRead === want ? buffer : buffer.subarray(0, bytesRead));
      })
      .catch((err: Error) => this.destroy(err));
  }

  override _destroy(err: Error | null, callback: (error?: Error | null) => void): void {
    // FileHandle.close waits for a read still under way on the handle
    const file = this.#file;
    if (!file) return callback(err);
    file.then(
      ({ handle }) => handle.close(),
      () => undefined,
    ).then(
      () => callback(err),
      (closeErr: Error) => callback(err ?? closeErr),
    );
  }
}
