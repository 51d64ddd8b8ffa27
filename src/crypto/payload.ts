import crypto from 'node:crypto';
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

/**
 * Encrypts bytes held in memory (a message's SecureContent, a few KB) to the
 * same blob as `encryptStream`, written directly with node:crypto instead of
 * through OpenPGP.js: its web-stream machinery cost about 0.3 ms of the main
 * thread per message, a hundred times the AES (issue 15). The format is
 * RFC 9580 section 5.13.2, as OpenPGP.js writes it:
 *
 *   literal  = Literal Data packet (tag 11): 'b', no file name, the time, the data
 *   info     = 0xD2 ‖ 2 ‖ 9 (AES-256) ‖ 3 (GCM) ‖ 14 (chunk size byte: 1 MiB)
 *   salt     = 32 random bytes (fresh per blob)
 *   M ‖ IV   = HKDF-SHA256(ikm = K, salt, info, 32 + 12 bytes); the nonce of
 *              chunk i is IV[0..4] ‖ i as 8 bytes big-endian
 *   chunk i  = AES-256-GCM(M, nonce i, literal[i MiB ..], aad = info) ‖ tag
 *   final    = the tag of AES-256-GCM(M, nonce n, empty, aad = info ‖ length of literal as 8 bytes)
 *   packet   = tag 18 ‖ length ‖ 2 ‖ 9 ‖ 3 ‖ 14 ‖ salt ‖ chunks ‖ final
 *
 * `test/payload-bytes-openpgp-reads.test.ts` proves OpenPGP.js (the reader's
 * decryption and `decryptBytes`) reads it, for every chunk boundary, and
 * refuses it tampered.
 */
export async function encryptBytes(contentKey: Uint8Array, data: Uint8Array): Promise<Uint8Array> {
  if (contentKey.length !== 32) throw new RangeError('the content key is 32 bytes');
  const time = Buffer.alloc(4);
  time.writeUInt32BE(Math.floor(Date.now() / 1000));
  const literalBody = Buffer.concat([Buffer.from([0x62, 0x00]), time, data]);
  const literal = Buffer.concat([packetHeader(11, literalBody.length), literalBody]);

  const info = Buffer.from([0xc0 | 18, 2, openpgp.enums.symmetric.aes256, openpgp.enums.aead.gcm, AEAD_CHUNK_SIZE_BYTE]);
  const salt = crypto.randomBytes(32);
  const derived = Buffer.from(crypto.hkdfSync('sha256', contentKey, salt, info, 32 + 12));
  const key = derived.subarray(0, 32);
  const nonce = Buffer.from(derived.subarray(32));
  const chunkSize = 2 ** (AEAD_CHUNK_SIZE_BYTE + 6);
  const parts: Buffer[] = [info.subarray(1), salt];
  const seal = (index: number, plaintext: Uint8Array, aad: Buffer): void => {
    nonce.writeBigUInt64BE(BigInt(index), 4);
    const cipher = crypto.createCipheriv('aes-256-gcm', key, nonce);
    cipher.setAAD(aad);
    parts.push(cipher.update(plaintext), cipher.final(), cipher.getAuthTag());
  };
  let index = 0;
  // at least one chunk, also for an empty literal (OpenPGP.js does the same)
  do {
    seal(index, literal.subarray(index * chunkSize, (index + 1) * chunkSize), info);
    index++;
  } while (index * chunkSize < literal.length);
  const total = Buffer.alloc(8);
  total.writeBigUInt64BE(BigInt(literal.length));
  seal(index, new Uint8Array(0), Buffer.concat([info, total]));
  derived.fill(0);
  const body = Buffer.concat(parts);
  return Buffer.concat([packetHeader(18, body.length), body]);
}

/** An OpenPGP packet header in the new format (RFC 9580 section 4.2.1): tag, then a one-, two- or five-octet length. */
function packetHeader(tag: number, length: number): Buffer {
  const first = 0xc0 | tag;
  if (length < 192) return Buffer.from([first, length]);
  if (length < 8384) return Buffer.from([first, ((length - 192) >> 8) + 192, (length - 192) & 0xff]);
  const header = Buffer.alloc(6);
  header[0] = first;
  header[1] = 0xff;
  header.writeUInt32BE(length, 2);
  return header;
}

/** Decrypts a whole blob; throws on any tampering, before returning any plaintext. */
export async function decryptBytes(contentKey: Uint8Array, ciphertext: Uint8Array): Promise<Uint8Array> {
  const message = await openpgp.readMessage({ binaryMessage: ciphertext, config: decryptConfig });
  assertZegelBlob(message);
  const { data } = await openpgp.decrypt({ message, sessionKeys: sessionKey(contentKey), format: 'binary', config: decryptConfig });
  return data;
}
