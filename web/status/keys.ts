/**
 * The sender's half of the key schedule on the status page, with WebCrypto
 * only (src/secure/status-keys.ts and src/crypto/key-schedule.ts are the
 * server's; test/status-keys.test.ts pins them together):
 *
 *   token = HKDF-SHA256(ikm = K_link_s, salt = empty, info = "zegel/v1/status" ‖ statusId, 32 bytes)
 *   W'    = nonce (12) ‖ AES-256-GCM(KEK', nonce, K, aad = info') ‖ tag (16),
 *   KEK'  = HKDF-SHA256(K_link' ‖ K_srv', info' = "zegel/v1" ‖ secureId ‖ newLinkId)
 *
 * No DOM access here, so Node tests can import it.
 */
import { KEY_BYTES, wrapInfo } from '../crypto.js';

type Subtle = typeof globalThis.crypto.subtle;
const NONCE_BYTES = 12;

/** A status id from `/s/<id>`: 22 base64url characters, or null. */
export function parseStatusId(pathname: string): string | null {
  const m = /^\/s\/([A-Za-z0-9_-]{22})\/?$/.exec(pathname);
  return m ? (m[1] as string) : null;
}

export async function statusToken(kLinkS: Uint8Array, statusId: string, subtle: Subtle = globalThis.crypto.subtle): Promise<Uint8Array<ArrayBuffer>> {
  if (kLinkS.length !== KEY_BYTES) throw new RangeError('K_link_s is 32 bytes');
  const base = await subtle.importKey('raw', new Uint8Array(kLinkS), 'HKDF', false, ['deriveBits']);
  const info = new Uint8Array(new TextEncoder().encode(`zegel/v1/status${statusId}`));
  const bits = await subtle.deriveBits({ name: 'HKDF', hash: 'SHA-256', salt: new Uint8Array(0), info }, base, KEY_BYTES * 8);
  return new Uint8Array(bits);
}

export function randomBytes(n: number): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(n);
  globalThis.crypto.getRandomValues(out);
  return out;
}

/** Wraps the content key K for a new link: the same derivation as the server's wrapKey. */
export async function wrapContentKey(
  contentKey: Uint8Array,
  kLink: Uint8Array,
  kSrv: Uint8Array,
  secureId: string,
  linkId: string,
  subtle: Subtle = globalThis.crypto.subtle,
): Promise<Uint8Array<ArrayBuffer>> {
  if (contentKey.length !== KEY_BYTES || kLink.length !== KEY_BYTES || kSrv.length !== KEY_BYTES) throw new RangeError('keys are 32 bytes each');
  const ikm = new Uint8Array(KEY_BYTES * 2);
  ikm.set(kLink, 0);
  ikm.set(kSrv, KEY_BYTES);
  const info = wrapInfo(secureId, linkId);
  const base = await subtle.importKey('raw', ikm, 'HKDF', false, ['deriveKey']);
  ikm.fill(0);
  const kek = await subtle.deriveKey({ name: 'HKDF', hash: 'SHA-256', salt: new Uint8Array(0), info }, base, { name: 'AES-GCM', length: 256 }, false, ['encrypt']);
  const nonce = randomBytes(NONCE_BYTES);
  const sealed = new Uint8Array(await subtle.encrypt({ name: 'AES-GCM', iv: nonce, additionalData: info, tagLength: 128 }, kek, new Uint8Array(contentKey)));
  const out = new Uint8Array(NONCE_BYTES + sealed.length);
  out.set(nonce, 0);
  out.set(sealed, NONCE_BYTES);
  return out;
}
