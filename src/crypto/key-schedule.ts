import crypto from 'node:crypto';

/**
 * The key schedule of DESIGN.md ("Key schedule"), server side. The reader's
 * page code (web/crypto.ts) implements the same derivation with
 * WebCrypto; test/key-schedule.test.ts pins both to the same vectors.
 *
 * - `K`: 32 random bytes per message, the OpenPGP session key of every blob.
 * - per link `r`: `K_link` (32 bytes, only in the link's #fragment) and
 *   `K_srv` (32 bytes, stored);
 *   `KEK = HKDF-SHA256(ikm = K_link ‖ K_srv, salt = empty,
 *                      info = "zegel/v1" ‖ secure message id ‖ link id, 32 bytes)`.
 *   Both ids are 22-character base64url strings (128 bits), so the
 *   concatenation is unambiguous.
 * - `W = nonce (12) ‖ AES-256-GCM(KEK, nonce, K, aad = info) ‖ tag (16)`: 60 bytes.
 */

export const KEY_BYTES = 32;
const NONCE_BYTES = 12;
const TAG_BYTES = 16;
export const WRAP_BYTES = NONCE_BYTES + KEY_BYTES + TAG_BYTES;

/**
 * 128 random bits as base64url: secure message ids and link ids. Never starting
 * with `-`: an admin types the id after `zegel messages revoke`, where a leading
 * dash reads as an option (1 in 64 ids did; the cost is 0.02 bits).
 */
export function newSecureId(): string {
  for (;;) {
    const id = crypto.randomBytes(16).toString('base64url');
    if (!id.startsWith('-')) return id;
  }
}

export function newKey(): Buffer {
  return crypto.randomBytes(KEY_BYTES);
}

export function wrapInfo(secureId: string, linkId: string): Buffer {
  return Buffer.from(`zegel/v1${secureId}${linkId}`, 'utf8');
}

export function deriveKek(kLink: Buffer, kSrv: Buffer, secureId: string, linkId: string): Buffer {
  if (kLink.length !== KEY_BYTES || kSrv.length !== KEY_BYTES) throw new RangeError('K_link and K_srv are 32 bytes each');
  return Buffer.from(crypto.hkdfSync('sha256', Buffer.concat([kLink, kSrv]), Buffer.alloc(0), wrapInfo(secureId, linkId), KEY_BYTES));
}

export function wrapKey(contentKey: Buffer, kLink: Buffer, kSrv: Buffer, secureId: string, linkId: string): Buffer {
  const kek = deriveKek(kLink, kSrv, secureId, linkId);
  const nonce = crypto.randomBytes(NONCE_BYTES);
  const cipher = crypto.createCipheriv('aes-256-gcm', kek, nonce);
  cipher.setAAD(wrapInfo(secureId, linkId));
  const body = Buffer.concat([cipher.update(contentKey), cipher.final()]);
  return Buffer.concat([nonce, body, cipher.getAuthTag()]);
}

/** Throws when any input is wrong: a wrong fragment, a wrong K_srv or a tampered wrap. */
export function unwrapKey(wrap: Buffer, kLink: Buffer, kSrv: Buffer, secureId: string, linkId: string): Buffer {
  if (wrap.length !== WRAP_BYTES) throw new RangeError('a wrap is 60 bytes');
  const kek = deriveKek(kLink, kSrv, secureId, linkId);
  const decipher = crypto.createDecipheriv('aes-256-gcm', kek, wrap.subarray(0, NONCE_BYTES));
  decipher.setAAD(wrapInfo(secureId, linkId));
  decipher.setAuthTag(wrap.subarray(NONCE_BYTES + KEY_BYTES));
  return Buffer.concat([decipher.update(wrap.subarray(NONCE_BYTES, NONCE_BYTES + KEY_BYTES)), decipher.final()]);
}
