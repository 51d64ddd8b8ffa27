import { createInflateRaw } from 'node:zlib';
import iconv from 'iconv-lite';
import yauzl from 'yauzl';
import { pieces } from './bytes.js';
import { ExtractError, corrupt, type ExtractContext, type Place } from './limits.js';

/**
 * ZIP containers (archives, DOCX/XLSX/PPTX, ODT/ODS) with yauzl. The
 * container is held as one buffer (counted against the message's byte
 * budget where it was produced); the central directory is read with yauzl,
 * entry data is located through its local header and inflated here, as a
 * stream, counting every inflated byte:
 *
 * - against the message-wide budget (`limit:totalBytes`);
 * - against the compressed bytes zlib actually consumed so far
 *   (`limit:ratio`): sizes in the headers are not trusted, a bomb is stopped
 *   while it expands and never sits in memory;
 * - against the attachment's clock (`limit:timeout`).
 */

/** Inflated bytes an entry may produce before its ratio is judged (small, very regular XML parts compress well). */
export const RATIO_FLOOR = 1024 * 1024;

export interface ZipEntry {
  /** The entry's path inside the archive, `/`-separated. */
  name: string;
  directory: boolean;
  encrypted: boolean;
  method: number;
  raw: yauzl.Entry;
}

function decodeName(raw: Buffer, flags: number): string {
  let name: string;
  if (flags & 0x800) name = raw.toString('utf8');
  else {
    try {
      // Many tools write UTF-8 without setting the flag.
      name = new TextDecoder('utf-8', { fatal: true }).decode(raw);
    } catch {
      name = iconv.decode(raw, 'cp437');
    }
  }
  return name.replace(/\\/g, '/');
}

function nextEntry(zip: yauzl.ZipFile, failed: () => Error | undefined): Promise<yauzl.Entry | undefined> {
  return new Promise((resolve, reject) => {
    const earlier = failed();
    if (earlier) return reject(earlier);
    const cleanup = (): void => {
      zip.off('entry', onEntry);
      zip.off('end', onEnd);
      zip.off('error', onError);
    };
    const onEntry = (entry: yauzl.Entry): void => {
      cleanup();
      resolve(entry);
    };
    const onEnd = (): void => {
      cleanup();
      resolve(undefined);
    };
    const onError = (err: Error): void => {
      cleanup();
      reject(err);
    };
    zip.on('entry', onEntry);
    zip.on('end', onEnd);
    zip.on('error', onError);
    zip.readEntry();
  });
}

export class ZipArchive {
  private constructor(
    private readonly zip: yauzl.ZipFile,
    private readonly buf: Buffer,
    readonly entries: ZipEntry[],
  ) {}

  /**
   * Reads the central directory of the ZIP in `buf`. More entries than
   * `limits.entries` → `limit:entries`; not a readable ZIP → `corrupt`.
   */
  static async open(buf: Buffer, place: Place, ctx: ExtractContext): Promise<ZipArchive> {
    let zip: yauzl.ZipFile;
    try {
      zip = await yauzl.fromBufferPromise(buf, { lazyEntries: true, decodeStrings: false, validateEntrySizes: false, strictFileNames: false });
    } catch (err) {
      throw corrupt(err, place.path);
    }
    // A late error must never go unheard (an 'error' without listener would crash the process).
    let failure: Error | undefined;
    zip.on('error', (err: Error) => {
      failure = err;
    });
    try {
      if (zip.entryCount > ctx.limits.entries) throw new ExtractError('limit:entries', false, place.path);
      const entries: ZipEntry[] = [];
      for (;;) {
        place.deadline.check();
        let raw: yauzl.Entry | undefined;
        try {
          raw = await nextEntry(zip, () => failure);
        } catch (err) {
          throw corrupt(err, place.path);
        }
        if (!raw) break;
        // The count in the end record may lie; count what is there.
        if (entries.length >= ctx.limits.entries) throw new ExtractError('limit:entries', false, place.path);
        const name = decodeName(raw.fileNameRaw, raw.generalPurposeBitFlag);
        entries.push({ name, directory: name.endsWith('/'), encrypted: raw.isEncrypted(), method: raw.compressionMethod, raw });
      }
      return new ZipArchive(zip, buf, entries);
    } catch (err) {
      zip.close();
      throw err;
    }
  }

  find(name: string): ZipEntry | undefined {
    return this.entries.find((e) => e.name === name);
  }

  close(): void {
    if (this.zip.isOpen) this.zip.close();
  }

  /**
   * The entry's uncompressed bytes, inflated step by step under the limits.
   * `origin` is the location errors belong to (the entry for an archive
   * member, the document for an OOXML/ODF part). Encrypted → `encrypted`;
   * unknown compression method or broken data → `corrupt`.
   */
  async *read(entry: ZipEntry, origin: string, place: Place, ctx: ExtractContext): AsyncGenerator<Buffer> {
    if (entry.encrypted) throw new ExtractError('encrypted', false, origin);
    let header: yauzl.LocalFileHeader;
    try {
      header = await this.zip.readLocalFileHeaderPromise(entry.raw);
    } catch (err) {
      throw corrupt(err, origin);
    }
    if (header.generalPurposeBitFlag & 1) throw new ExtractError('encrypted', false, origin);
    const start = header.fileDataStart;
    const end = start + entry.raw.compressedSize;
    if (end > this.buf.length) throw corrupt(new Error('entry data beyond the end of the archive'), origin);
    const data = this.buf.subarray(start, end);

    if (entry.method === 0) {
      for (const piece of pieces(data)) {
        ctx.budget.consume(piece.length, origin);
        place.deadline.check();
        yield piece;
      }
      return;
    }
    if (entry.method !== 8) throw corrupt(new Error(`unsupported compression method ${entry.method}`), origin);

    // zlib respects the reader's back-pressure, so at most one output chunk waits while we count.
    const inflater = createInflateRaw({ chunkSize: 64 * 1024 });
    inflater.end(data);
    let out = 0;
    try {
      const it = inflater[Symbol.asyncIterator]() as AsyncIterator<Buffer>;
      for (;;) {
        let step: IteratorResult<Buffer>;
        try {
          step = await it.next();
        } catch (err) {
          throw corrupt(err, origin);
        }
        if (step.done) break;
        const chunk = step.value;
        out += chunk.length;
        ctx.budget.consume(chunk.length, origin);
        if (out > RATIO_FLOOR && out > ctx.limits.ratio * Math.max(1, inflater.bytesWritten)) {
          throw new ExtractError('limit:ratio', false, origin);
        }
        place.deadline.check();
        yield chunk;
      }
    } finally {
      inflater.destroy();
    }
  }
}
