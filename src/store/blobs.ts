import fs from 'node:fs';
import fsp from 'node:fs/promises';
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
/** One read of a blob for a download (see `open`). */
export const BLOB_READ_BYTES = 1 << 20;

export class BlobStore {
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

  /**
   * Reads a blob for a download in 1 MiB pieces, the size of one OpenPGP AEAD
   * chunk (src/crypto/payload.ts): with the 64 KiB default a 200 MiB download
   * over loopback ran at about a sixth of a disk read (bench/reader.mjs); the
   * cost is 1 MiB of buffer per download in flight.
   */
  open(secureId: string, blobId: string): Readable {
    return fs.createReadStream(this.#path(secureId, blobId), { highWaterMark: BLOB_READ_BYTES });
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
}
