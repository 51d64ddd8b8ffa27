import { Transform, type TransformCallback } from 'node:stream';
import { ZegelError } from '../errors.js';

const CR = 0x0d;
const LF = 0x0a;
const CRLF = Buffer.from('\r\n');

export type BareLineEndingMode = 'normalise' | 'reject';

/**
 * Guards against SMTP smuggling at the next hop: smtp-server ends DATA only on
 * <CRLF>.<CRLF>, and this transform makes sure no bare CR or bare LF survives
 * into the spool. `normalise` turns each into CRLF (so `\n.\n` becomes an
 * ordinary line holding a dot, which the next hop receives dot-stuffed);
 * `reject` fails the message with ZEGEL_BARE_LINE_ENDING.
 */
export class LineEndingGuard extends Transform {
  readonly #mode: BareLineEndingMode;
  #pendingCR = false;
  /** Bare CR or LF seen so far (normalise mode). */
  repaired = 0;

  constructor(mode: BareLineEndingMode) {
    super();
    this.#mode = mode;
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    if (!chunk.length) return callback();
    const out: Buffer[] = [];
    let start = 0;
    let i = 0;
    if (this.#pendingCR) {
      this.#pendingCR = false;
      if (chunk[0] === LF) {
        out.push(CRLF);
        start = i = 1;
      } else if (!this.#bare(out, CRLF)) {
        return callback(this.#error());
      }
    }
    for (; i < chunk.length; i++) {
      const byte = chunk[i];
      if (byte === CR) {
        if (i + 1 === chunk.length) {
          // decide when the next chunk arrives
          out.push(chunk.subarray(start, i));
          this.#pendingCR = true;
          start = chunk.length;
          break;
        }
        if (chunk[i + 1] === LF) {
          i++;
          continue;
        }
        out.push(chunk.subarray(start, i));
        if (!this.#bare(out, CRLF)) return callback(this.#error());
        start = i + 1;
      } else if (byte === LF) {
        out.push(chunk.subarray(start, i));
        if (!this.#bare(out, CRLF)) return callback(this.#error());
        start = i + 1;
      }
    }
    if (start < chunk.length) out.push(start === 0 ? chunk : chunk.subarray(start));
    const data = out.length === 1 ? out[0]! : Buffer.concat(out);
    if (data.length) this.push(data);
    callback();
  }

  override _flush(callback: TransformCallback): void {
    if (this.#pendingCR) {
      this.#pendingCR = false;
      if (!this.#bare([], CRLF)) return callback(this.#error());
      this.push(CRLF);
    }
    callback();
  }

  #bare(out: Buffer[], replacement: Buffer): boolean {
    if (this.#mode === 'reject') return false;
    this.repaired++;
    out.push(replacement);
    return true;
  }

  #error(): ZegelError {
    return new ZegelError('ZEGEL_BARE_LINE_ENDING', 'message contains a bare CR or LF line ending');
  }
}
