import crypto from 'node:crypto';
import { ZegelError } from '../errors.js';
import { readKeyFile } from './key-file.js';

/**
 * The storage key (`store.keyFile`, 32 bytes, mode 0600 or stricter): with
 * the PostgreSQL store it seals every plaintext spool chunk and every K_srv,
 * so a copy of the database, its WAL or a backup opens nothing without the
 * key file every node holds (docs/architecture.md, "Key schedule").
 *
 * A sealed chunk is
 *
 *   version (1 byte, 0x01) ‖ nonce (12 random bytes) ‖ AES-256-GCM ciphertext ‖ tag (16)
 *
 * with the version byte and the caller's context as additional data. The
 * context names where the chunk belongs (`spool:<messageId>:<seq>`,
 * `ksrv:<linkId>`), so a chunk copied to another message or position does not
 * open. Random 96-bit nonces: well below the 2^32 messages per key that NIST
 * SP 800-38D allows for them.
 */

export const STORAGE_KEY_BYTES = 32;
const VERSION = 0x01;
const NONCE_BYTES = 12;
const TAG_BYTES = 16;
/** Bytes a sealed chunk adds to its plaintext. */
export const SEAL_OVERHEAD = 1 + NONCE_BYTES + TAG_BYTES;

/** The storage key, held as a KeyObject so its bytes are not printed or logged by accident. */
export class StorageKey {
  readonly #key: crypto.KeyObject;

  constructor(bytes: Uint8Array) {
    if (bytes.length !== STORAGE_KEY_BYTES) throw new ZegelError('ZEGEL_STORAGE_KEY', `a storage key is exactly ${STORAGE_KEY_BYTES} bytes, got ${bytes.length}`);
    this.#key = crypto.createSecretKey(bytes);
  }

  /** For sealChunk and openChunk only. */
  get keyObject(): crypto.KeyObject {
    return this.#key;
  }

  toJSON(): string {
    return '[StorageKey]';
  }
}

/** Reads `store.keyFile`: exactly 32 bytes, mode 0600 or stricter; every refusal is ZEGEL_STORAGE_KEY. */
export function loadStorageKey(file: string): StorageKey {
  return new StorageKey(
    readKeyFile(file, { code: 'ZEGEL_STORAGE_KEY', what: 'storage key', bytes: STORAGE_KEY_BYTES, missing: 'store.keyFile names a file that must exist on every node (zegel keys generate DIR writes one)' }),
  );
}

function additionalData(aad: string | Uint8Array): Buffer {
  const context = typeof aad === 'string' ? Buffer.from(aad, 'utf8') : Buffer.from(aad);
  if (!context.length) throw new ZegelError('ZEGEL_STORAGE_SEAL', 'a sealed chunk needs a context (e.g. spool:<messageId>:<seq>)');
  return Buffer.concat([Buffer.of(VERSION), context]);
}

/** Seals `plaintext` under the storage key, bound to the context `aad`. */
export function sealChunk(key: StorageKey, aad: string | Uint8Array, plaintext: Uint8Array): Buffer {
  const nonce = crypto.randomBytes(NONCE_BYTES);
  const cipher = crypto.createCipheriv('aes-256-gcm', key.keyObject, nonce, { authTagLength: TAG_BYTES });
  cipher.setAAD(additionalData(aad));
  const body = Buffer.concat([cipher.update(plaintext), cipher.final()]);
  return Buffer.concat([Buffer.of(VERSION), nonce, body, cipher.getAuthTag()]);
}

/**
 * Opens what sealChunk made under the same key and context. Anything else (another key, another
 * context, a changed or cut byte, an unknown version) is refused with ZEGEL_STORAGE_SEAL and
 * yields no plaintext.
 */
export function openChunk(key: StorageKey, aad: string | Uint8Array, sealed: Uint8Array): Buffer {
  const data = Buffer.from(sealed.buffer, sealed.byteOffset, sealed.byteLength);
  if (data.length < SEAL_OVERHEAD) throw new ZegelError('ZEGEL_STORAGE_SEAL', `a sealed chunk is at least ${SEAL_OVERHEAD} bytes, got ${data.length}`);
  if (data[0] !== VERSION) throw new ZegelError('ZEGEL_STORAGE_SEAL', `unknown sealed chunk version ${data[0]}`);
  const nonce = data.subarray(1, 1 + NONCE_BYTES);
  const body = data.subarray(1 + NONCE_BYTES, data.length - TAG_BYTES);
  const decipher = crypto.createDecipheriv('aes-256-gcm', key.keyObject, nonce, { authTagLength: TAG_BYTES });
  decipher.setAAD(additionalData(aad));
  decipher.setAuthTag(data.subarray(data.length - TAG_BYTES));
  const plain = decipher.update(body);
  try {
    return Buffer.concat([plain, decipher.final()]);
  } catch (err) {
    plain.fill(0);
    throw new ZegelError('ZEGEL_STORAGE_SEAL', 'a sealed chunk does not open: another key or context, or changed bytes', { cause: err });
  }
}
