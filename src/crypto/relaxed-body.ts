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

/** The relaxed body hash of a body held in memory. */
export async function relaxedBodyHash(body: Buffer): Promise<Buffer> {
  const hash = new RelaxedBodyHash();
  hash.update(body);
  return hash.digest();
}
