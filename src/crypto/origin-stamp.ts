import fsp from 'node:fs/promises';
import { Transform, type TransformCallback } from 'node:stream';
import { ZegelError } from '../errors.js';
import { splitFields } from '../smtp/header-guard.js';
import { ORIGIN_PLACEHOLDER, sameBodyHash, type OriginSigner, type OriginSubject } from './origin.js';
import { RelaxedBodyHash, bodyOf, relaxedBodyHash, relaxedBodyHashSync } from './relaxed-body.js';

/**
 * Putting X-Zegel-Origin into a mail the relay composes. The mark covers the
 * body, which is only known once composed, so a producer composes with
 * `X-Zegel-Origin: ${ORIGIN_PLACEHOLDER}` and the placeholder is overwritten
 * afterwards with the real value of the same length: in a buffer
 * (`stampOrigin`), or in the spool file a streamed mail was written to
 * (`OriginStamper`). Nothing else in the mail changes.
 */

const PLACEHOLDER_TOKEN = Buffer.from(ORIGIN_PLACEHOLDER.slice(3), 'latin1');
const HEADER_END = Buffer.from('\r\n\r\n');
const MAX_HEADER_BYTES = 1024 * 1024;
const FIELD = /(?:^|\r\n)x-zegel-origin[ \t]*:/gi;

/** Offset of the placeholder token inside the X-Zegel-Origin field of a header block, or -1. */
function placeholderOffset(header: Buffer): number {
  const text = header.toString('latin1');
  for (const match of text.matchAll(FIELD)) {
    const start = match.index + match[0].length;
    // the field ends at the first line break not followed by whitespace
    let end = start;
    for (;;) {
      end = text.indexOf('\r\n', end);
      if (end === -1 || (text[end + 2] !== ' ' && text[end + 2] !== '\t')) break;
      end += 2;
    }
    const at = header.indexOf(PLACEHOLDER_TOKEN, start);
    if (at !== -1 && (end === -1 || at + PLACEHOLDER_TOKEN.length <= end)) return at;
  }
  return -1;
}

function missing(): ZegelError {
  return new ZegelError('ZEGEL_ORIGIN_STAMP', 'the composed mail has no X-Zegel-Origin placeholder to stamp');
}

/** Returns `raw` with its X-Zegel-Origin placeholder replaced by the mark for this body, Message-ID and recipients. */
export async function stampOrigin(signer: OriginSigner, raw: Buffer, subject: OriginSubject): Promise<Buffer> {
  return stampOriginSync(signer, raw, subject);
}

/** `stampOrigin` in one synchronous pass, for a mail held in memory. */
export function stampOriginSync(signer: OriginSigner, raw: Buffer, subject: OriginSubject): Buffer {
  const end = raw.indexOf(HEADER_END);
  const at = placeholderOffset(raw.subarray(0, end === -1 ? raw.length : end + 2));
  if (at === -1) throw missing();
  const value = signer.sign(subject, relaxedBodyHashSync(bodyOf(raw)));
  const out = Buffer.from(raw);
  out.write(value.slice(3), at, 'latin1');
  return out;
}

/**
 * Passes a composed mail through unchanged on its way to a file, hashing its
 * body and noting where the placeholder is; `stamp(file)` then writes the mark
 * there and fsyncs the file. Holds at most the header block in memory.
 */
export class OriginStamper extends Transform {
  readonly #signer: OriginSigner;
  readonly #subject: OriginSubject;
  readonly #hash = new RelaxedBodyHash();
  #head: Buffer[] = [];
  #headBytes = 0;
  #inHeader = true;
  #offset = -1;

  constructor(signer: OriginSigner, subject: OriginSubject) {
    super();
    this.#signer = signer;
    this.#subject = subject;
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    if (this.#inHeader) {
      const searchFrom = Math.max(0, this.#headBytes - 3);
      this.#head.push(chunk);
      this.#headBytes += chunk.length;
      const all = Buffer.concat(this.#head, this.#headBytes);
      this.#head = [all];
      const end = all.length >= 2 && all[0] === 0x0d && all[1] === 0x0a ? -2 : all.indexOf(HEADER_END, searchFrom);
      if (end !== -1) {
        this.#inHeader = false;
        this.#head = [];
        this.#offset = placeholderOffset(all.subarray(0, end + 2));
        this.#hash.update(all.subarray(end + 4));
      } else if (this.#headBytes > MAX_HEADER_BYTES) {
        return callback(new ZegelError('ZEGEL_HEADER_TOO_LONG', 'the composed header block is too large'));
      }
    } else {
      this.#hash.update(chunk);
    }
    callback(null, chunk);
  }

  override _flush(callback: TransformCallback): void {
    if (this.#inHeader) this.#offset = placeholderOffset(Buffer.concat(this.#head, this.#headBytes));
    callback();
  }

  /** Writes the mark over the placeholder in `file` (what this stream wrote) and fsyncs it. */
  async stamp(file: string): Promise<void> {
    if (this.#offset === -1) throw missing();
    const value = Buffer.from(this.#signer.sign(this.#subject, await this.#hash.digest()).slice(3), 'latin1');
    const handle = await fsp.open(file, 'r+');
    try {
      await handle.write(value, 0, value.length, this.#offset);
      await handle.sync();
    } finally {
      await handle.close();
    }
  }
}

/**
 * Whether a whole mail carries an X-Zegel-Origin that vouches for exactly it
 * (its first Message-ID, its body) sent to `recipients`: the check ingress
 * makes, on a buffer (tests, diagnostics).
 */
export async function verifyOrigin(signer: OriginSigner, raw: Buffer, recipients: readonly string[]): Promise<boolean> {
  const end = raw.indexOf(HEADER_END);
  const fields = splitFields(raw.subarray(0, end === -1 ? raw.length : end + 2));
  const value = (name: string) => {
    const field = fields.find((f) => f.name === name);
    if (!field) return undefined;
    const text = field.raw.toString('latin1');
    return text.slice(text.indexOf(':') + 1).replace(/\r\n[ \t]/g, ' ').trim();
  };
  const mark = value('x-zegel-origin');
  const expected = mark === undefined ? undefined : signer.verify(mark, { messageId: value('message-id'), recipients });
  return expected !== undefined && sameBodyHash(await relaxedBodyHash(bodyOf(raw)), expected);
}
