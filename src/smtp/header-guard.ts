import { Transform, type TransformCallback } from 'node:stream';
import { ZegelError } from '../errors.js';
import { sameBodyHash, type OriginSigner } from '../crypto/origin.js';
import { RelaxedBodyHash } from '../crypto/relaxed-body.js';

const HEADER_END = Buffer.from('\r\n\r\n');

export interface HeaderFacts {
  /** Received: fields in the message as it arrived (the loop guard counts them). */
  hops: number;
  /** The Message-ID field value, if any (an identifier, not content). */
  messageId: string | undefined;
  /** X-Zegel-* fields removed because they were not the relay's own. */
  removed: number;
  /**
   * True when X-Zegel-Origin verified for this Message-ID, these envelope
   * recipients and this body: the relay made exactly this mail. Known once the
   * body has streamed through (the process job still has to consume the
   * relay's record of the mail, so it counts once).
   */
  relayOrigin: boolean;
}

export interface HeaderGuardOptions {
  signer: OriginSigner;
  /** The envelope recipients (RCPT TO): X-Zegel-Origin verifies only for the ones it was made for. */
  recipients: readonly string[];
  /** The trace field to put first, complete with its CRLF. */
  received: string;
  maxHeaderBytes: number;
}

interface Field {
  name: string;
  raw: Buffer;
}

/** Splits a header block (CRLF line endings, without the blank line) into fields, keeping their bytes. */
export function splitFields(block: Buffer): Field[] {
  const fields: Field[] = [];
  let start = 0;
  let pos = 0;
  while (pos < block.length) {
    let eol = block.indexOf('\r\n', pos);
    eol = eol === -1 ? block.length : eol + 2;
    const next = block[eol];
    const continues = eol < block.length && (next === 0x20 || next === 0x09);
    if (!continues) {
      const raw = block.subarray(start, eol);
      const colon = raw.indexOf(':');
      fields.push({ name: colon > 0 ? raw.subarray(0, colon).toString('latin1').trim().toLowerCase() : '', raw });
      start = eol;
    }
    pos = eol;
  }
  return fields;
}

function fieldValue(field: Field): string {
  const raw = field.raw.toString('latin1');
  return raw.slice(raw.indexOf(':') + 1).replace(/\r\n[ \t]/g, ' ').trim();
}

/**
 * Reads the top-level header block of an incoming message, removes every
 * X-Zegel-* field that the relay did not sign itself, counts hops, notes the
 * Message-ID and puts the relay's own Received: field first. The body passes
 * through untouched. Input must already have CRLF line endings.
 *
 * An X-Zegel-Origin whose MAC verifies for the Message-ID and the envelope
 * recipients is kept, and the body is then hashed on its way through (relaxed
 * canonicalisation, src/crypto/relaxed-body.ts): `facts.relayOrigin` is set by
 * `settle()` at the end only if that hash is the one the mark vouches for.
 * Mail without such a mark is not hashed.
 *
 * Synchronous, chunk by chunk: `process` appends what goes on to `out` (the
 * header block once its end is seen, then the body chunks as they are) and
 * throws ZEGEL_HEADER_TOO_LONG; `finish` ends the input. The ingress runs it
 * inside its one pass over DATA (src/smtp/intake.ts); `HeaderGuard` is the
 * same as a Transform.
 */
export class HeaderScan {
  readonly #options: HeaderGuardOptions;
  #buffered: Buffer[] = [];
  #bufferedBytes = 0;
  #done = false;
  /** Set while a verified mark waits for its body: the hash it vouches for, and the running hash of the body. */
  #origin: { expected: Buffer; hash: RelaxedBodyHash } | undefined;
  facts: HeaderFacts = { hops: 0, messageId: undefined, removed: 0, relayOrigin: false };

  constructor(options: HeaderGuardOptions) {
    this.#options = options;
  }

  /** True once the header block has been read (and passed on). */
  get headerDone(): boolean {
    return this.#done;
  }

  process(chunk: Buffer, out: Buffer[]): void {
    if (this.#done) {
      this.#origin?.hash.update(chunk);
      out.push(chunk);
      return;
    }
    const searchFrom = Math.max(0, this.#bufferedBytes - 3);
    this.#buffered.push(chunk);
    this.#bufferedBytes += chunk.length;
    const all = this.#buffered.length === 1 ? chunk : Buffer.concat(this.#buffered, this.#bufferedBytes);
    this.#buffered = [all];
    const end = all.length >= 2 && all[0] === 0x0d && all[1] === 0x0a ? 0 : all.indexOf(HEADER_END, searchFrom);
    if (end === -1) {
      if (this.#bufferedBytes > this.#options.maxHeaderBytes) throw tooLong();
      return;
    }
    const blockEnd = end === 0 ? 0 : end + 2;
    if (blockEnd > this.#options.maxHeaderBytes) throw tooLong();
    this.#emit(all.subarray(0, blockEnd), all.subarray(blockEnd), out);
  }

  /** Ends the input: a message that is all header and no body is passed on now. */
  finish(out: Buffer[]): void {
    if (this.#done) return;
    const all = Buffer.concat(this.#buffered, this.#bufferedBytes);
    this.#emit(all, Buffer.alloc(0), out);
  }

  /** After `finish`: sets `facts.relayOrigin` once the body's hash is known (at once for mail without a mark). */
  async settle(): Promise<void> {
    const origin = this.#origin;
    if (!origin) return;
    this.#origin = undefined;
    this.facts.relayOrigin = sameBodyHash(await origin.hash.digest(), origin.expected);
  }

  #emit(block: Buffer, rest: Buffer, out: Buffer[]): void {
    this.#done = true;
    this.#buffered = [];
    const fields = splitFields(block);
    const facts = this.facts;
    const messageIdField = fields.find((f) => f.name === 'message-id');
    facts.messageId = messageIdField ? fieldValue(messageIdField) : undefined;
    const kept: Buffer[] = [Buffer.from(this.#options.received, 'latin1')];
    for (const field of fields) {
      if (field.name === 'received') facts.hops++;
      if (field.name.startsWith('x-zegel-')) {
        const expected =
          field.name === 'x-zegel-origin' && !this.#origin
            ? this.#options.signer.verify(fieldValue(field), { messageId: facts.messageId, recipients: this.#options.recipients })
            : undefined;
        if (expected) {
          this.#origin = { expected, hash: new RelaxedBodyHash() };
        } else {
          facts.removed++;
          continue;
        }
      }
      kept.push(field.raw);
    }
    out.push(Buffer.concat(kept));
    // `rest` starts with the empty line that ends the header block; the body follows it
    if (rest.length >= 2) this.#origin?.hash.update(rest.subarray(2));
    if (rest.length) out.push(rest);
  }
}

function tooLong(): ZegelError {
  return new ZegelError('ZEGEL_HEADER_TOO_LONG', 'message header is too large');
}

/** `HeaderScan` as a Transform stream. */
export class HeaderGuard extends Transform {
  readonly #scan: HeaderScan;

  constructor(options: HeaderGuardOptions) {
    super();
    this.#scan = new HeaderScan(options);
  }

  get facts(): HeaderFacts {
    return this.#scan.facts;
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    const out: Buffer[] = [];
    try {
      this.#scan.process(chunk, out);
    } catch (err) {
      return callback(err as Error);
    }
    for (const data of out) this.push(data);
    callback();
  }

  override _flush(callback: TransformCallback): void {
    const out: Buffer[] = [];
    this.#scan.finish(out);
    for (const data of out) this.push(data);
    this.#scan.settle().then(
      () => callback(),
      (err: Error) => callback(err),
    );
  }
}
