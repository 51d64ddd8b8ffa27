/**
 * Blob decryption (src/crypto/payload.ts): a binary OpenPGP message with one
 * SEIPDv2 AES-256-GCM packet, the content key K as its session key. OpenPGP.js
 * is passed in so that the page uses its browser build and the Node tests the
 * Node build. Whole blobs only: either all plaintext or an exception, never
 * part of it.
 */
import type * as OpenPGP from 'openpgp';
import type { SecureContent } from '../src/crypto/content.js';

type OpenPGPModule = Pick<typeof OpenPGP, 'readMessage' | 'decrypt' | 'enums'>;

// as src/crypto/payload.ts decryptConfig
const config = {
  allowUnauthenticatedMessages: false,
  allowUnauthenticatedStream: false,
  ignoreUnsupportedPackets: false,
  ignoreMalformedPackets: false,
  enforceGrammar: true,
};

/** As payload.ts assertZegelBlob: exactly one SEIPDv2 (AEAD) packet, nothing else (no v1 SEIPD, no SED, no key packets). */
function assertZegelBlob(openpgp: OpenPGPModule, message: { packets: Iterable<unknown> }): void {
  const packets = [...message.packets] as unknown as Array<{ constructor: { tag?: number }; version?: number }>;
  const only = packets[0];
  if (packets.length !== 1 || only?.constructor.tag !== openpgp.enums.packet.symEncryptedIntegrityProtectedData || only.version !== 2) {
    throw new Error('not a Zegel blob: expected exactly one SEIPDv2 (AEAD) packet');
  }
}

export async function decryptBlob(openpgp: OpenPGPModule, contentKey: Uint8Array, ciphertext: Uint8Array): Promise<Uint8Array> {
  const message = await openpgp.readMessage({ binaryMessage: ciphertext, config });
  assertZegelBlob(openpgp, message);
  const { data } = await openpgp.decrypt({
    message,
    sessionKeys: { data: contentKey, algorithm: 'aes256', aeadAlgorithm: 'gcm' },
    format: 'binary',
    config,
  });
  return data as Uint8Array;
}

function isStringArray(v: unknown): v is string[] {
  return Array.isArray(v) && v.every((x) => typeof x === 'string');
}

/** Parses and checks the decrypted body blob; throws when it is not a SecureContent v1. */
export function parseSecureContent(bytes: Uint8Array): SecureContent {
  const value: unknown = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes));
  if (typeof value !== 'object' || value === null) throw new TypeError('content is not an object');
  const c = value as Record<string, unknown>;
  if (c.v !== 1) throw new TypeError('unknown content version');
  if (typeof c.from !== 'string' || typeof c.date !== 'string' || typeof c.subject !== 'string') throw new TypeError('content headers missing');
  if (!isStringArray(c.to) || !isStringArray(c.cc)) throw new TypeError('content addresses malformed');
  if (c.text !== undefined && typeof c.text !== 'string') throw new TypeError('content text malformed');
  if (c.html !== undefined && typeof c.html !== 'string') throw new TypeError('content html malformed');
  if (!Array.isArray(c.attachments)) throw new TypeError('content attachments malformed');
  for (const a of c.attachments as unknown[]) {
    const x = a as Record<string, unknown>;
    if (typeof a !== 'object' || a === null || typeof x.blob !== 'string' || typeof x.name !== 'string' || typeof x.contentType !== 'string' || typeof x.size !== 'number') {
      throw new TypeError('attachment malformed');
    }
  }
  return value as SecureContent;
}
