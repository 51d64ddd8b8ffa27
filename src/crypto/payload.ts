import { Readable } from 'node:stream';
import * as openpgp from 'openpgp';

/**
 * Payload encryption (DESIGN "Key schedule"): every blob is a binary OpenPGP
 * message holding one SEIPDv2 packet, AES-256 with GCM (OCB is an order of
 * magnitude slower in OpenPGP.js), encrypted directly under the message's
 * content key `K` as session key: no password or public-key packets at all.
 * Decryption refuses anything but that one AEAD packet (no v1 SEIPD, no SED).
 * The reader's page code decrypts the same format with OpenPGP.js.
 */

const AEAD_CHUNK_SIZE_BYTE = 14; // 2^(14+6) = 1 MiB per authenticated chunk

const encryptConfig = {
  aeadProtect: true,
  preferredAEADAlgorithm: openpgp.enums.aead.gcm,
  preferredSymmetricAlgorithm: openpgp.enums.symmetric.aes256,
  aeadChunkSizeByte: AEAD_CHUNK_SIZE_BYTE,
};

export const decryptConfig = {
  allowUnauthenticatedMessages: false,
  allowUnauthenticatedStream: false,
  ignoreUnsupportedPackets: false,
  ignoreMalformedPackets: false,
  enforceGrammar: true,
};

/**
 * A Zegel blob is exactly one SEIPDv2 (AEAD) packet. Anything else (a v1
 * SEIPD with its MDC, the unauthenticated SED, extra key packets) is refused
 * before any decryption is tried.
 */
export function assertZegelBlob(message: { packets: Iterable<unknown> }): void {
  const packets = [...message.packets] as unknown as Array<{ constructor: { tag?: number }; version?: number }>;
  const only = packets[0];
  if (packets.length !== 1 || only?.constructor.tag !== openpgp.enums.packet.symEncryptedIntegrityProtectedData || only.version !== 2) {
    throw new Error('not a Zegel blob: expected exactly one SEIPDv2 (AEAD) packet');
  }
}

function sessionKey(contentKey: Uint8Array) {
  return { data: contentKey, algorithm: 'aes256' as const, aeadAlgorithm: 'gcm' as const };
}

/**
 * Encrypts a byte stream without buffering it: yields the ciphertext as it is
 * produced, so the caller can write it to disk chunk by chunk.
 */
export async function encryptStream(contentKey: Uint8Array, source: AsyncIterable<Uint8Array> | Readable): Promise<Readable> {
  const readable = source instanceof Readable ? source : Readable.from(source);
  const message = await openpgp.createMessage({ binary: Readable.toWeb(readable) as unknown as ReadableStream<Uint8Array> });
  const out = await openpgp.encrypt({ message, sessionKey: sessionKey(contentKey), format: 'binary', config: encryptConfig });
  return Readable.fromWeb(out as unknown as import('node:stream/web').ReadableStream<Uint8Array>);
}

export async function encryptBytes(contentKey: Uint8Array, data: Uint8Array): Promise<Uint8Array> {
  const message = await openpgp.createMessage({ binary: data });
  return openpgp.encrypt({ message, sessionKey: sessionKey(contentKey), format: 'binary', config: encryptConfig });
}

/** Decrypts a whole blob; throws on any tampering, before returning any plaintext. */
export async function decryptBytes(contentKey: Uint8Array, ciphertext: Uint8Array): Promise<Uint8Array> {
  const message = await openpgp.readMessage({ binaryMessage: ciphertext, config: decryptConfig });
  assertZegelBlob(message);
  const { data } = await openpgp.decrypt({ message, sessionKeys: sessionKey(contentKey), format: 'binary', config: decryptConfig });
  return data;
}
