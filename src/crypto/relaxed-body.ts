import crypto from 'node:crypto';
import RelaxedBody from 'nodemailer/lib/dkim/relaxed-body';

/**
 * SHA-256 over a message body in DKIM's "relaxed" body canonicalisation
 * (RFC 6376 section 3.4.4): whitespace at the end of a line is dropped, runs of
 * whitespace within a line become one space, every line ends in CRLF (a bare
 * LF counts as a line end), empty lines at the end are ignored and a non-empty
 * body ends in CRLF. The canonicaliser is nodemailer's, the one its DKIM
 * signer uses (src/notify/dkim.ts), fed chunk by chunk in constant memory.
 *
 * The body is everything after the blank line that ends the header block
 * (`bodyOf`); a message without one has an empty body.
 */
export class RelaxedBodyHash {
  readonly #stream = new RelaxedBody({ hashAlgo: 'sha256' });
  readonly #digest: Promise<Buffer>;
  #ended = false;

  constructor() {
    this.#digest = new Promise((resolve, reject) => {
      this.#stream.once('hash', (hash: string) => resolve(Buffer.from(hash, 'base64')));
      this.#stream.once('error', reject);
    });
    // the canonicaliser passes the body through as well; only its hash is wanted here
    this.#stream.resume();
  }

  update(chunk: Buffer): void {
    if (this.#ended) throw new Error('RelaxedBodyHash: update after digest');
    if (chunk.length) this.#stream.write(chunk);
  }

  /** The 32-byte digest; ends the input. */
  digest(): Promise<Buffer> {
    if (!this.#ended) {
      this.#ended = true;
      this.#stream.end();
    }
    return this.#digest;
  }
}

const HEADER_END = Buffer.from('\r\n\r\n');

/** The body of a raw message (CRLF line endings): what follows the first empty line, or nothing. */
export function bodyOf(raw: Buffer): Buffer {
  if (raw.length >= 2 && raw[0] === 0x0d && raw[1] === 0x0a) return raw.subarray(2);
  const end = raw.indexOf(HEADER_END);
  return end === -1 ? Buffer.alloc(0) : raw.subarray(end + 4);
}

const CR = 0x0d;
const LF = 0x0a;
const SP = 0x20;
const TAB = 0x09;

/**
 * The relaxed canonical form of a body held in memory, in one synchronous
 * pass: the same rules as nodemailer's streaming canonicaliser above (a bare
 * LF ends a line; a CR not followed by LF is content; spaces and tabs before a
 * line end are dropped and runs of them inside a line become one space; empty
 * lines at the end are dropped; a non-empty body ends in CRLF).
 * `test/relaxed-body-hash-sync.test.ts` proves it hashes every body to the
 * streaming class's digest. For the relay's own small mails, where the
 * stream's setup and event hops cost more than the hashing (issue 15).
 */
export function relaxedCanonical(body: Buffer): Buffer {
  const out = Buffer.allocUnsafe(body.length * 2 + 2);
  let at = 0;
  // empty lines since the last line with content: written only when content follows them
  let pendingEmpty = 0;
  let lineHasContent = false;
  let pendingWsp = false;
  let pendingCr = false;
  const content = (c: number): void => {
    if (!lineHasContent) {
      while (pendingEmpty > 0) {
        out[at++] = CR;
        out[at++] = LF;
        pendingEmpty--;
      }
      lineHasContent = true;
    }
    if (pendingWsp) {
      out[at++] = SP;
      pendingWsp = false;
    }
    out[at++] = c;
  };
  for (let i = 0; i < body.length; i++) {
    const c = body[i]!;
    if (c === LF) {
      if (lineHasContent) {
        out[at++] = CR;
        out[at++] = LF;
        lineHasContent = false;
      } else pendingEmpty++;
      pendingWsp = false;
      pendingCr = false;
      continue;
    }
    if (pendingCr) {
      content(CR);
      pendingCr = false;
    }
    if (c === CR) pendingCr = true;
    else if (c === SP || c === TAB) pendingWsp = true;
    else content(c);
  }
  if (pendingCr) content(CR);
  if (lineHasContent) {
    out[at++] = CR;
    out[at++] = LF;
  }
  return out.subarray(0, at);
}

/** SHA-256 of the relaxed canonical form of a body held in memory (synchronous). */
export function relaxedBodyHashSync(body: Buffer): Buffer {
  return crypto.createHash('sha256').update(relaxedCanonical(body)).digest();
}

/** The relaxed body hash of a body held in memory. */
export async function relaxedBodyHash(body: Buffer): Promise<Buffer> {
  return relaxedBodyHashSync(body);
}
