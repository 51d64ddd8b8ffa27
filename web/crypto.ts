/**
 * The browser half of the key schedule (DESIGN "Key schedule",
 * src/crypto/key-schedule.ts), with WebCrypto only:
 *
 *   KEK = HKDF-SHA256(ikm = K_link ‖ K_srv, salt = empty,
 *                     info = "zegel/v1" ‖ secure message id ‖ link id, 32 bytes)
 *   W   = nonce (12) ‖ AES-256-GCM(KEK, nonce, K, aad = info) ‖ tag (16)
 *
 * No DOM access here, so the Node tests can import it and use Node's
 * globalThis.crypto.subtle.
 */

export const KEY_BYTES = 32;
const NONCE_BYTES = 12;
const TAG_BYTES = 16;
export const WRAP_BYTES = NONCE_BYTES + KEY_BYTES + TAG_BYTES;

const B64URL = /^[A-Za-z0-9_-]*$/;

/** Strict base64url without padding; throws on anything else. */
export function base64urlDecode(text: string): Uint8Array<ArrayBuffer> {
  if (!B64URL.test(text) || text.length % 4 === 1) throw new SyntaxError('not base64url');
  const b64 = text.replace(/-/g, '+').replace(/_/g, '/') + '='.repeat((4 - (text.length % 4)) % 4);
  const binary = atob(b64);
  const out = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) out[i] = binary.charCodeAt(i);
  return out;
}

export function base64urlEncode(bytes: Uint8Array): string {
  let binary = '';
  for (let i = 0; i < bytes.length; i++) binary += String.fromCharCode(bytes[i] as number);
  return btoa(binary).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

/**
 * K_link from the location's fragment (`#<43 base64url characters>`), or null
 * when it is missing or malformed. Never logged, never sent anywhere.
 */
export function parseLinkKey(hash: string): Uint8Array<ArrayBuffer> | null {
  const text = hash.startsWith('#') ? hash.slice(1) : hash;
  if (!/^[A-Za-z0-9_-]{43}$/.test(text)) return null;
  try {
    const key = base64urlDecode(text);
    return key.length === KEY_BYTES ? key : null;
  } catch {
    return null;
  }
}

/** A link id from `/m/<id>`: 22 base64url characters (128 bits), or null. */
export function parseLinkId(pathname: string): string | null {
  const m = /^\/m\/([A-Za-z0-9_-]{22})\/?$/.exec(pathname);
  return m ? (m[1] as string) : null;
}

function copy(bytes: Uint8Array): Uint8Array<ArrayBuffer> {
  return new Uint8Array(bytes);
}

export function wrapInfo(secureId: string, linkId: string): Uint8Array<ArrayBuffer> {
  return copy(new TextEncoder().encode(`zegel/v1${secureId}${linkId}`));
}

type Subtle = typeof globalThis.crypto.subtle;

/**
 * Unwraps the content key K. Throws (a DOMException or RangeError) when any
 * input is wrong: a wrong fragment, a wrong K_srv, other ids or a tampered wrap.
 */
export async function unwrapContentKey(
  wrap: Uint8Array,
  kLink: Uint8Array,
  kSrv: Uint8Array,
  secureId: string,
  linkId: string,
  subtle: Subtle = globalThis.crypto.subtle,
): Promise<Uint8Array<ArrayBuffer>> {
  if (wrap.length !== WRAP_BYTES) throw new RangeError('a wrap is 60 bytes');
  if (kLink.length !== KEY_BYTES || kSrv.length !== KEY_BYTES) throw new RangeError('K_link and K_srv are 32 bytes each');
  const ikm = new Uint8Array(KEY_BYTES * 2);
  ikm.set(kLink, 0);
  ikm.set(kSrv, KEY_BYTES);
  const info = wrapInfo(secureId, linkId);
  const base = await subtle.importKey('raw', ikm, 'HKDF', false, ['deriveKey']);
  ikm.fill(0);
  const kek = await subtle.deriveKey(
    { name: 'HKDF', hash: 'SHA-256', salt: new Uint8Array(0), info },
    base,
    { name: 'AES-GCM', length: 256 },
    false,
    ['decrypt'],
  );
  const w = copy(wrap);
  const plain = await subtle.decrypt(
    { name: 'AES-GCM', iv: w.slice(0, NONCE_BYTES), additionalData: info, tagLength: TAG_BYTES * 8 },
    kek,
    w.slice(NONCE_BYTES),
  );
  const key = new Uint8Array(plain);
  if (key.length !== KEY_BYTES) throw new RangeError('the wrapped key is not 32 bytes');
  return key;
}
