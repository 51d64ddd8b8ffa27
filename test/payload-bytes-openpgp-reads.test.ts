import crypto from 'node:crypto';
import * as openpgp from 'openpgp';
import t from 'tap';
import { newKey } from '../src/crypto/key-schedule.js';
import { decryptBytes, decryptConfig, encryptBytes } from '../src/crypto/payload.js';

/*
 * A message's SecureContent is encrypted with node:crypto directly
 * (encryptBytes, issue 15) rather than through OpenPGP.js, into the blob
 * format the reader decrypts with OpenPGP.js: one SEIPDv2 packet, AES-256,
 * GCM, 1 MiB chunks, no key packets. OpenPGP.js must read every such blob
 * (sizes around each chunk boundary, empty, several chunks), find exactly that
 * packet, and refuse it after any change or under another key; two blobs of
 * the same bytes under the same key differ (a fresh salt each, so a fresh
 * message key and nonces).
 */

const MiB = 1 << 20;

t.test('OpenPGP.js reads what encryptBytes writes, at every chunk boundary', async (t) => {
  const key = newKey();
  // the literal packet adds 6 bytes of its own and a header of 2, 3 or 6 bytes
  const sizes = [0, 1, 185, 186, 190, 191, 8000, 8376, 8377, 8378, 64 * 1024, MiB - 12, MiB - 11, MiB - 10, MiB, MiB + 1, 3 * MiB + 17];
  for (const size of sizes) {
    const plaintext = crypto.randomBytes(size);
    const blob = await encryptBytes(key, plaintext);
    const message = await openpgp.readMessage({ binaryMessage: blob, config: decryptConfig });
    const packets = [...message.packets] as unknown as Array<{ constructor: { tag: number }; version: number; aeadAlgorithm: number; cipherAlgorithm: number; chunkSizeByte: number }>;
    t.equal(packets.length, 1, `${size}: one packet, no key packets`);
    t.match(packets[0], { version: 2, cipherAlgorithm: openpgp.enums.symmetric.aes256, aeadAlgorithm: openpgp.enums.aead.gcm, chunkSizeByte: 14 }, `${size}: SEIPDv2, AES-256, GCM, 1 MiB chunks`);
    t.equal(packets[0]!.constructor.tag, openpgp.enums.packet.symEncryptedIntegrityProtectedData);
    t.ok(Buffer.from(await decryptBytes(key, blob)).equals(plaintext), `${size}: decrypts to the same bytes`);
  }
});

t.test('another key, any flipped byte, a cut or an appended byte: refused, no plaintext', async (t) => {
  const key = newKey();
  const plaintext = Buffer.from(JSON.stringify({ v: 1, text: 'Het BSN is 123456782.'.repeat(100) }));
  const blob = Buffer.from(await encryptBytes(key, plaintext));
  await t.rejects(decryptBytes(newKey(), blob), 'another key');
  const wrong: number[] = [];
  for (let at = 0; at < blob.length; at += Math.max(1, Math.floor(blob.length / 97))) {
    const tampered = Buffer.from(blob);
    tampered[at]! ^= 0x01;
    const out = await decryptBytes(key, tampered).catch(() => undefined);
    if (out !== undefined) wrong.push(at);
  }
  t.same(wrong, [], 'no flipped byte decrypts');
  await t.rejects(decryptBytes(key, blob.subarray(0, blob.length - 1)), 'cut short');
  await t.rejects(decryptBytes(key, Buffer.concat([blob, Buffer.from([0])])), 'a byte appended');
});

t.test('the same bytes twice under one key: two different blobs', async (t) => {
  const key = newKey();
  const plaintext = Buffer.from('zelfde inhoud');
  const [a, b] = [Buffer.from(await encryptBytes(key, plaintext)), Buffer.from(await encryptBytes(key, plaintext))];
  t.notOk(a.equals(b));
  t.notOk(a.subarray(6, 38).equals(b.subarray(6, 38)), 'a fresh salt');
  t.ok(Buffer.from(await decryptBytes(key, a)).equals(plaintext));
  t.ok(Buffer.from(await decryptBytes(key, b)).equals(plaintext));
  await t.rejects(encryptBytes(Buffer.alloc(16), plaintext), 'a short key is refused');
});
