import crypto from 'node:crypto';

export const ORIGIN_HEADER = 'X-Zegel-Origin';

/**
 * X-Zegel-Origin marks mail the relay made itself (notifications, receipts,
 * replies, DSNs): `v1 <base64url HMAC-SHA256(relay secret, Message-ID)>`.
 * Ingress keeps it only when it verifies; everything else named X-Zegel-* is
 * removed there.
 */
export class OriginSigner {
  readonly #secret: Buffer;

  constructor(secret: Buffer) {
    this.#secret = secret;
  }

  sign(messageId: string): string {
    return `v1 ${this.#mac(messageId)}`;
  }

  verify(value: string, messageId: string | undefined): boolean {
    if (!messageId) return false;
    const match = /^\s*v1\s+([A-Za-z0-9_-]{43})\s*$/.exec(value);
    if (!match) return false;
    const given = Buffer.from(match[1]!, 'base64url');
    const expected = Buffer.from(this.#mac(messageId), 'base64url');
    return given.length === expected.length && crypto.timingSafeEqual(given, expected);
  }

  #mac(messageId: string): string {
    return crypto.createHmac('sha256', this.#secret).update(`zegel-origin/v1\n${messageId.trim()}`).digest('base64url');
  }
}
