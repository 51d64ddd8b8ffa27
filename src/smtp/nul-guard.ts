import { Transform, type TransformCallback } from 'node:stream';
import { ZegelError } from '../errors.js';

/**
 * Throws at the first NUL byte. Zegel offers no BINARYMIME (RFC 3030), so a
 * NUL has no place in a message (RFC 5321 section 4.1.4: SMTP text is
 * NUL-free), and passing one on is dangerous: some next hops drop NULs before
 * they look for the end of data, so `\r\n\0.\r\n` would end DATA there and
 * smuggle what follows as a second transaction. Refused in both
 * `smtp.bareLineEndings` modes; there is nothing safe to normalise it to.
 * The ingress runs it inside its one pass over DATA (src/smtp/intake.ts).
 */
export function assertNoNul(chunk: Buffer): void {
  if (chunk.indexOf(0) !== -1) throw new ZegelError('ZEGEL_NUL_BYTE', 'message contains a NUL byte');
}

/** `assertNoNul` as a Transform stream: fails the stream at the first NUL byte. */
export class NulGuard extends Transform {
  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    try {
      assertNoNul(chunk);
    } catch (err) {
      return callback(err as Error);
    }
    callback(null, chunk);
  }
}
