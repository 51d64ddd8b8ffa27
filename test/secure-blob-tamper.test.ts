import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { Readable } from 'node:stream';
import * as openpgp from 'openpgp';
import t from 'tap';
import { newKey } from '../src/crypto/key-schedule.js';
import { decryptBytes, decryptConfig, encryptStream } from '../src/crypto/payload.js';
import { BlobStore } from '../src/store/blobs.js';
import { tempDir } from './helpers/relay.js';

t.test('blobs are SEIPDv2 AES-256-GCM under the content key, with no key packets; one flipped byte fails without plaintext', async (t) => {
  const blobs = new BlobStore(tempDir(t));
  const key = newKey();
  const plaintext = crypto.randomBytes(3 * 1024 * 1024 + 17);
  // the source arrives in pieces, as an attachment does: it is never handed over whole
  const pieces = Array.from({ length: 50 }, (_, i) => plaintext.subarray(Math.floor((i * plaintext.length) / 50), Math.floor(((i + 1) * plaintext.length) / 50)));
  const bytes = await blobs.write('msg', 'blob', await encryptStream(key, Readable.from(pieces)));
  const file = path.join(blobs.dir, 'msg', 'blob.pgp');
  const stored = fs.readFileSync(file);
  t.equal(stored.length, bytes, 'the returned size is the stored size');

  const message = await openpgp.readMessage({ binaryMessage: stored, config: decryptConfig });
  const packets = [...message.packets];
  t.equal(packets.length, 1, 'one packet: no password (SKESK) or public-key (PKESK) packets');
  const seipd = packets[0] as unknown as { constructor: { tag: number }; version: number; aeadAlgorithm: number; cipherAlgorithm: number };
  t.equal(seipd.constructor.tag, openpgp.enums.packet.symEncryptedIntegrityProtectedData, 'SEIPD');
  t.equal(seipd.version, 2, 'version 2 (AEAD)');
  t.equal(seipd.aeadAlgorithm, openpgp.enums.aead.gcm, 'GCM');
  t.equal(seipd.cipherAlgorithm, openpgp.enums.symmetric.aes256, 'AES-256');

  t.ok(Buffer.from(await decryptBytes(key, stored)).equals(plaintext), 'the content key decrypts it');
  await t.rejects(decryptBytes(newKey(), stored), 'another key does not');

  for (const at of [40, Math.floor(stored.length / 2), stored.length - 5]) {
    const tampered = Buffer.from(stored);
    tampered[at]! ^= 0x01;
    let out: Uint8Array | undefined;
    await t.rejects(
      (async () => {
        out = await decryptBytes(key, tampered);
      })(),
      `a flipped byte at ${at} of ${stored.length} fails`,
    );
    t.equal(out, undefined, 'and yields no plaintext');
  }
});

t.test('a blob that is not AEAD (SEIPDv1 with MDC) is refused even under the right key', async (t) => {
  const key = newKey();
  const message = await openpgp.createMessage({ binary: Buffer.from('geheim') });
  const v1 = await openpgp.encrypt({ message, sessionKey: { data: key, algorithm: 'aes256' }, format: 'binary', config: { aeadProtect: false } });
  await t.rejects(decryptBytes(key, v1), /exactly one SEIPDv2/);
});
