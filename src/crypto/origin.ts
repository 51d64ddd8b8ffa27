import crypto from 'node:crypto';

export const ORIGIN_HEADER = 'X-Zegel-Origin';

/** What an origin mark vouches for: one mail, by its Message-ID, to exactly these envelope recipients. */
export interface OriginSubject {
  /** The Message-ID field value, `<…>`. */
  messageId: string;
  /** The envelope recipients (compared lower-cased, as a set). */
  recipients: readonly string[];
}

const TOKEN = /^\s*v2\s+([A-Za-z0-9_-]{43})\.([A-Za-z0-9_-]{43})\s*$/;

/**
 * The value a producer writes while the body is still being composed: exactly
 * as long as a real mark and one token without spaces (so folding leaves it
 * whole); `stampOrigin` (src/crypto/origin-stamp.ts) overwrites it in place.
 */
export const ORIGIN_PLACEHOLDER = `v2 ${'0'.repeat(43)}.${'0'.repeat(43)}`;

/** Lower-cased, without duplicates, sorted: the recipient set as the mark covers it. */
export function canonicalRecipients(recipients: readonly string[]): string[] {
  return [...new Set(recipients.map((r) => r.trim().toLowerCase()))].sort();
}

/**
 * X-Zegel-Origin marks mail the relay made itself (notifications, receipts,
 * replies, DSNs, code mails), so that such a mail coming back through the
 * relay is not classified again:
 *
 *   `v2 <bh>.<mac>`, both base64url (43 characters),
 *   bh  = SHA-256 of the body in DKIM relaxed canonicalisation (RFC 6376 §3.4.4, src/crypto/relaxed-body.ts)
 *   mac = HMAC-SHA256(relay secret, JSON ["zegel-origin/v2", Message-ID, sorted lower-cased recipients, bh])
 *
 * So it vouches for one exact mail: another body (new content, a disclaimer
 * added on the way), another Message-ID or other envelope recipients do not
 * verify. Ingress (src/smtp/header-guard.ts) checks the MAC against the
 * envelope when it reads the header and the body hash when the body has
 * streamed by; the process job then consumes the relay's record of the mail,
 * so it counts once. v1 (a MAC over the Message-ID only) is no longer accepted.
 */
export class OriginSigner {
  readonly #secret: Buffer;

  constructor(secret: Buffer) {
    this.#secret = secret;
  }

  /** The header value for a mail whose relaxed body hash is `bodyHash`. */
  sign(subject: OriginSubject, bodyHash: Buffer): string {
    if (bodyHash.length !== 32) throw new Error('origin: the body hash must be 32 bytes');
    const bh = bodyHash.toString('base64url');
    return `v2 ${bh}.${this.#mac(subject, bh)}`;
  }

  /**
   * Checks the MAC of a header value against the Message-ID and envelope
   * recipients; resolves to the body hash it vouches for (still to be compared
   * with the body), or undefined when it does not verify.
   */
  verify(value: string, subject: { messageId: string | undefined; recipients: readonly string[] }): Buffer | undefined {
    const { messageId } = subject;
    if (!messageId || !subject.recipients.length) return undefined;
    const match = TOKEN.exec(value);
    if (!match) return undefined;
    const bh = match[1]!;
    const given = Buffer.from(match[2]!, 'base64url');
    const expected = Buffer.from(this.#mac({ messageId, recipients: subject.recipients }, bh), 'base64url');
    if (given.length !== expected.length || !crypto.timingSafeEqual(given, expected)) return undefined;
    return Buffer.from(bh, 'base64url');
  }

  #mac(subject: OriginSubject, bh: string): string {
    const covered = JSON.stringify(['zegel-origin/v2', subject.messageId.trim(), canonicalRecipients(subject.recipients), bh]);
    return crypto.createHmac('sha256', this.#secret).update(covered).digest('base64url');
  }
}

/** Constant-time comparison of two body hashes. */
export function sameBodyHash(a: Buffer, b: Buffer): boolean {
  return a.length === b.length && crypto.timingSafeEqual(a, b);
}
