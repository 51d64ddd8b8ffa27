import { Transform, type TransformCallback } from 'node:stream';
import { ZegelError } from '../errors.js';

const CR = 0x0d;
const LF = 0x0a;
const CRLF = Buffer.from('\r\n');
const EMPTY = Buffer.alloc(0);

export type BareLineEndingMode = 'normalise' | 'reject';

/**
 * Guards against SMTP smuggling at the next hop: smtp-server ends DATA only on
 * <CRLF>.<CRLF>, and this pass makes sure no bare CR or bare LF survives into
 * the spool. `normalise` turns each into CRLF (so `\n.\n` becomes an ordinary
 * line holding a dot, which the next hop receives dot-stuffed); `reject` fails
 * the message with ZEGEL_BARE_LINE_ENDING.
 *
 * Synchronous, chunk by chunk: `process` returns the chunk's bytes as they go
 * on (a CR at the end of a chunk waits for the next one), `finish` what is
 * left at the end; both throw the ZegelError. The ingress runs it inside its
 * one pass over DATA (src/smtp/intake.ts); `LineEndingGuard` is the same as a
 * Transform.
 */
export class LineEndings {
  readonly #mode: BareLineEndingMode;
  #pendingCR = false;
  /** Bare CR or LF seen so far (normalise mode). */
  repaired = 0;

  constructor(mode: BareLineEndingMode) {
    this.#mode = mode;
  }

  process(chunk: Buffer): Buffer {
    if (!chunk.length) return EMPTY;
    let out: Buffer[] | undefined;
    let start = 0;
    let i = 0;
    if (this.#pendingCR) {
      this.#pendingCR = false;
      out = [];
      if (chunk[0] === LF) {
        out.push(CRLF);
        start = i = 1;
      } else {
        this.#bare(out);
      }
    }
    // the common case (CRLF only, no CR at the end) returns the chunk itself, no copy
    for (; i < chunk.length; i++) {
      const byte = chunk[i];
      if (byte === CR) {
        if (i + 1 === chunk.length) {
          // decide when the next chunk arrives
          (out ??= []).push(chunk.subarray(start, i));
          this.#pendingCR = true;
          start = chunk.length;
          break;
        }
        if (chunk[i + 1] === LF) {
          i++;
          continue;
        }
        (out ??= []).push(chunk.subarray(start, i));
        this.#bare(out);
        start = i + 1;
      } else if (byte === LF) {
        (out ??= []).push(chunk.subarray(start, i));
        this.#bare(out);
        start = i + 1;
      }
    }
    if (!out) return chunk;
    if (start < chunk.length) out.push(start === 0 ? chunk : chunk.subarray(start));
    return out.length === 1 ? out[0]! : Buffer.concat(out);
  }

  finish(): Buffer {
    if (!this.#pendingCR) return EMPTY;
    this.#pendingCR = false;
    this.#bare([]);
    return CRLF;
  }

  #bare(out: Buffer[]): void {
    if (this.#mode === 'reject') throw new ZegelError('ZEGEL_BARE_LINE_ENDING', 'message contains a bare CR or LF line ending');
    this.repaired++;
    out.push(CRLF);
  }
}

/** `LineEndings` as a Transform stream. */
export class LineEndingGuard extends Transform {
  readonly #pass: LineEndings;

  constructor(mode: BareLineEndingMode) {
    super();
    this.#pass = new LineEndings(mode);
  }

  /** Bare CR or LF seen so far (normalise mode). */
  get repaired(): number {
    return this.#pass.repaired;
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    let data: Buffer;
    try {
      data = this.#pass.process(chunk);
    } catch (err) {
      return callback(err as Error);
    }
    if (data.length) this.push(data);
    callback();
  }

  override _flush(callback: TransformCallback): void {
    let data: Buffer;
    try {
      data = this.#pass.finish();
    } catch (err) {
      return callback(err as Error);
    }
    if (data.length) this.push(data);
    callback();
  }
}
