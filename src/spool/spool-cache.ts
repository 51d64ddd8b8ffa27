import { Transform, type TransformCallback } from 'node:stream';

/**
 * A bounded in-memory copy of small spool files. The spool file on disk stays
 * the durable record; the copy only saves the process and deliver jobs from
 * reading a small message back (two opens, reads and closes each). Large
 * messages are never copied: they stream from disk.
 */
export class SpoolCache {
  readonly #entries = new Map<string, Buffer>();
  readonly #maxEntryBytes: number;
  readonly #maxTotalBytes: number;
  #totalBytes = 0;

  constructor(options: { maxEntryBytes?: number; maxTotalBytes?: number } = {}) {
    this.#maxEntryBytes = options.maxEntryBytes ?? 64 * 1024;
    this.#maxTotalBytes = options.maxTotalBytes ?? 32 * 1024 * 1024;
  }

  get maxEntryBytes(): number {
    return this.#maxEntryBytes;
  }

  get(id: string): Buffer | undefined {
    return this.#entries.get(id);
  }

  set(id: string, bytes: Buffer): void {
    if (bytes.length > this.#maxEntryBytes) return;
    this.delete(id);
    this.#entries.set(id, bytes);
    this.#totalBytes += bytes.length;
    // oldest first out (Map keeps insertion order)
    for (const [oldId, old] of this.#entries) {
      if (this.#totalBytes <= this.#maxTotalBytes) break;
      this.#entries.delete(oldId);
      this.#totalBytes -= old.length;
    }
  }

  delete(id: string): void {
    const old = this.#entries.get(id);
    if (!old) return;
    this.#entries.delete(id);
    this.#totalBytes -= old.length;
  }
}

/** Passes bytes through and keeps a copy while they stay under `limit`. */
export class CaptureSmall extends Transform {
  readonly #limit: number;
  #chunks: Buffer[] | undefined = [];
  #bytes = 0;

  constructor(limit: number) {
    super();
    this.#limit = limit;
  }

  /** The whole stream, or undefined when it outgrew the limit. */
  get captured(): Buffer | undefined {
    return this.#chunks ? Buffer.concat(this.#chunks, this.#bytes) : undefined;
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    if (this.#chunks) {
      this.#bytes += chunk.length;
      if (this.#bytes > this.#limit) this.#chunks = undefined;
      else this.#chunks.push(chunk);
    }
    callback(null, chunk);
  }
}
