import type { SpoolIntakeWriter } from '../../spool/types.js';

/** Chunk inserts one writer keeps in flight at most (each on its own pooled connection). */
export const SPOOL_WRITES_IN_FLIGHT = 2;

/** How a writer stores its chunks: seal one (synchronously; `last`: the message's last), insert a sealed one (its own commit). */
export interface ChunkStore {
  seal(seq: number, plain: Buffer, last: boolean): Buffer;
  insert(seq: number, sealed: Buffer): Promise<void>;
}

/**
 * Writes one message into `spool_chunks` as its bytes arrive (SMTP DATA, or
 * any source): cuts them into chunks of `chunkBytes` in one reused buffer,
 * seals each full chunk as soon as the next byte arrives (or, at `end`, as
 * the message's last chunk), so the plaintext is overwritten at once, and
 * inserts it, each insert its own autocommitted statement, at most
 * `inFlight` of them at a time on the pool's connections. `write` returns
 * false once `inFlight` chunks are outstanding: the caller pauses its source
 * until `onDrain`. Memory: the plaintext buffer, the sealed chunks in flight,
 * and whatever the source hands over between the `false` and its pause.
 *
 * Chunks may commit out of order; each row is complete on its own and the
 * reader checks the sequence. `end` resolves once every chunk is committed;
 * `destroy` drops what was not sent and resolves once the inserts in flight
 * have settled, so a `remove` after it leaves no chunk behind. The first
 * failed insert stops the writer (`onError`, and `end` rejects).
 */
export class PgSpoolWriter implements SpoolIntakeWriter {
  created = false;
  onDrain: (() => void) | undefined;
  onError: ((err: Error) => void) | undefined;
  /** Plaintext bytes taken. */
  bytes = 0;
  /** Chunks cut (the next chunk's seq). */
  chunks = 0;
  readonly #store: ChunkStore;
  readonly #chunkBytes: number;
  readonly #inFlightMax: number;
  readonly #buffer: Buffer;
  #filled = 0;
  /** Sealed chunks waiting for a free slot. */
  #waiting: Array<{ seq: number; sealed: Buffer }> = [];
  #inFlight = 0;
  #full = false;
  #error: Error | undefined;
  #stopped = false;
  #ending: { resolve: () => void; reject: (err: Error) => void } | undefined;
  #settled: Array<() => void> = [];

  constructor(store: ChunkStore, options: { chunkBytes: number; inFlight?: number | undefined }) {
    this.#store = store;
    this.#chunkBytes = options.chunkBytes;
    this.#inFlightMax = Math.max(1, options.inFlight ?? SPOOL_WRITES_IN_FLIGHT);
    this.#buffer = Buffer.allocUnsafeSlow(this.#chunkBytes);
  }

  /** The first failure, if any (`write` goes on returning true after it, so a paused source is never left waiting). */
  get error(): Error | undefined {
    return this.#error;
  }

  /** Takes a copy of `chunk`; false when the caller should wait for `onDrain` before writing more. */
  write(chunk: Buffer): boolean {
    if (this.#error || this.#ending || this.#stopped) return true;
    this.bytes += chunk.length;
    let at = 0;
    while (at < chunk.length && !this.#error) {
      // a full buffer is cut once more bytes come: only `end` knows which chunk is the last
      if (this.#filled === this.#chunkBytes) this.#cut(false);
      const n = Math.min(this.#chunkBytes - this.#filled, chunk.length - at);
      chunk.copy(this.#buffer, this.#filled, at, at + n);
      this.#filled += n;
      at += n;
    }
    this.#pump();
    if (this.#outstanding() >= this.#inFlightMax) this.#full = true;
    return !this.#full;
  }

  /** Inserts the last (partial) chunk and waits for every insert; resolves once all are committed. */
  end(): Promise<void> {
    return new Promise((resolve, reject) => {
      if (this.#error) return reject(this.#error);
      if (this.#stopped) return reject(new Error('the spool writer was destroyed'));
      if (this.#filled > 0) this.#cut(true);
      this.#ending = { resolve, reject };
      this.#pump();
      this.#settle();
    });
  }

  /** Drops what is not sent yet; resolves (never rejects) once no insert is in flight. */
  destroy(): Promise<void> {
    this.#stopped = true;
    this.#waiting = [];
    this.#wipe();
    return new Promise((resolve) => {
      this.#settled.push(resolve);
      this.#settle();
    });
  }

  #outstanding(): number {
    return this.#inFlight + this.#waiting.length;
  }

  /** Seals the filled buffer as the next chunk (`last`: the message's last) and clears the plaintext (the buffer is reused). */
  #cut(last: boolean): void {
    const seq = this.chunks++;
    const plain = this.#buffer.subarray(0, this.#filled);
    try {
      this.#waiting.push({ seq, sealed: this.#store.seal(seq, plain, last) });
    } catch (err) {
      this.#fail(err as Error);
    }
    this.#filled = 0;
  }

  #pump(): void {
    while (!this.#error && !this.#stopped && this.#inFlight < this.#inFlightMax && this.#waiting.length) {
      const { seq, sealed } = this.#waiting.shift()!;
      this.#inFlight++;
      this.created = true;
      this.#store.insert(seq, sealed).then(
        () => this.#done(undefined),
        (err: Error) => this.#done(err),
      );
    }
  }

  #done(err: Error | undefined): void {
    this.#inFlight--;
    if (err) this.#fail(err);
    this.#pump();
    if (this.#full && !this.#error && !this.#stopped && this.#outstanding() < this.#inFlightMax) {
      this.#full = false;
      this.onDrain?.();
    }
    this.#settle();
  }

  #fail(err: Error): void {
    if (this.#error) return;
    this.#error = err;
    this.#waiting = [];
    this.#wipe();
    this.onError?.(err);
    this.#settle();
  }

  /** Once nothing is in flight: answers `end` and `destroy`. */
  #settle(): void {
    if (this.#inFlight > 0) return;
    for (const resolve of this.#settled.splice(0)) resolve();
    const ending = this.#ending;
    if (!ending || (this.#waiting.length && !this.#error && !this.#stopped)) return;
    this.#ending = undefined;
    this.#wipe();
    if (this.#error) ending.reject(this.#error);
    else if (this.#stopped) ending.reject(new Error('the spool writer was destroyed'));
    else ending.resolve();
  }

  /** The plaintext of a spooled message does not linger in a buffer the GC frees later. */
  #wipe(): void {
    this.#buffer.fill(0);
    this.#filled = 0;
  }
}
