import crypto from 'node:crypto';
import { KEY_BYTES, newKey, newSecureId, wrapKey } from '../crypto/key-schedule.js';

/**
 * The sender's status link (DESIGN "Key schedule", "Sender"):
 * `<publicUrl>/s/<statusId>#<K_link_s>`. Like a recipient's link it carries
 * its own K_link_s, which only the receipt mail holds; the server stores
 * `W_s = wrapKey(K, K_link_s, K_srv_s, secureId, statusId)` and K_srv_s.
 *
 * The server checks the status page's requests with a token derived from
 * the fragment, so that the fragment itself never leaves the browser:
 *   token = HKDF-SHA256(ikm = K_link_s, salt = empty, info = "zegel/v1/status" ‖ statusId, 32 bytes)
 * and stores only SHA-256(token) (hex). web/status/keys.ts derives
 * the same token with WebCrypto.
 */

export const STATUS_ID = /^[A-Za-z0-9_-]{22}$/;
/** 32 bytes as base64url without padding. */
export const STATUS_TOKEN = /^[A-Za-z0-9_-]{43}$/;

export function statusTokenInfo(statusId: string): Buffer {
  return Buffer.from(`zegel/v1/status${statusId}`, 'utf8');
}

export function statusToken(kLinkS: Buffer, statusId: string): Buffer {
  if (kLinkS.length !== KEY_BYTES) throw new RangeError('K_link_s is 32 bytes');
  return Buffer.from(crypto.hkdfSync('sha256', kLinkS, Buffer.alloc(0), statusTokenInfo(statusId), KEY_BYTES));
}

export function statusTokenHash(token: Buffer): string {
  return crypto.createHash('sha256').update(token).digest('hex');
}

/** Constant-time comparison of a presented token (base64url) with a stored hash. */
export function statusTokenMatches(presented: string, storedHash: string | null | undefined): boolean {
  if (!storedHash || !STATUS_TOKEN.test(presented)) return false;
  const a = Buffer.from(statusTokenHash(Buffer.from(presented, 'base64url')), 'hex');
  const b = Buffer.from(storedHash, 'hex');
  return a.length === b.length && crypto.timingSafeEqual(a, b);
}

export interface MintedStatusLink {
  statusId: string;
  /** Only for the receipt mail; never stored. */
  kLink: Buffer;
  kSrv: Buffer;
  wrap: Buffer;
  tokenHash: string;
}

/** Mints the sender's status link for a secure message whose content key is `contentKey`. */
export function mintStatusLink(contentKey: Buffer, secureId: string): MintedStatusLink {
  const statusId = newSecureId();
  const kLink = newKey();
  const kSrv = newKey();
  return { statusId, kLink, kSrv, wrap: wrapKey(contentKey, kLink, kSrv, secureId, statusId), tokenHash: statusTokenHash(statusToken(kLink, statusId)) };
}

export function statusUrl(publicUrl: string, statusId: string, kLink: Buffer): string {
  return `${publicUrl.replace(/\/+$/, '')}/s/${statusId}#${kLink.toString('base64url')}`;
}
