import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { SEAL_OVERHEAD, StorageKey, loadStorageKey, openChunk, sealChunk } from '../src/crypto/storage-key.js';
import { tempDir } from './helpers/relay.js';

/** The code of what `fn` throws, or 'none'. */
function refusal(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    return (err as { code?: string }).code ?? 'no code';
  }
  return 'none';
}

const key = new StorageKey(crypto.randomBytes(32));
const context = 'spool:msg-1:0';
// text that cannot occur by chance, so finding it in the sealed bytes means it was stored in the clear
const plaintext = Buffer.from(`Subject: salary review\r\n\r\n${'CANARY-7f3a9e '.repeat(300)}IBAN NL91ABNA0417164300\r\n`);

t.test('a sealed chunk opens with the same key and context', async (t) => {
  const sealed = sealChunk(key, context, plaintext);
  t.equal(sealed.length, plaintext.length + SEAL_OVERHEAD, 'version, nonce and tag added, nothing else');
  t.equal(sealed[0], 0x01, 'version byte first');
  t.ok(openChunk(key, context, sealed).equals(plaintext), 'round trip');
  t.ok(openChunk(key, Buffer.from(context), sealed).equals(plaintext), 'the context as bytes is the same context');
  t.ok(openChunk(key, 'ksrv:x', sealChunk(key, 'ksrv:x', Buffer.alloc(0))).equals(Buffer.alloc(0)), 'an empty chunk round-trips');
  const again = sealChunk(key, context, plaintext);
  t.not(again.subarray(1, 13).toString('hex'), sealed.subarray(1, 13).toString('hex'), 'a fresh nonce each time');
  t.not(again.toString('hex'), sealed.toString('hex'), 'so the same chunk seals differently');
});

t.test('the sealed bytes never contain the plaintext', async (t) => {
  const sealed = sealChunk(key, context, plaintext);
  for (const needle of ['CANARY-7f3a9e', 'NL91ABNA0417164300', 'salary review']) {
    t.equal(sealed.indexOf(needle), -1, `${needle} is not in the sealed bytes`);
    t.equal(sealed.toString('latin1').indexOf(needle), -1, `nor in them read as text`);
  }
  // a plaintext of zeros shows the keystream is applied: the ciphertext is not zeros
  const zeros = sealChunk(key, context, Buffer.alloc(4096));
  t.ok(zeros.subarray(13, 13 + 4096).some((b) => b !== 0), 'zeros do not come out as zeros');
});

t.test('another key, another context, a flipped or cut byte: refused with ZEGEL_STORAGE_SEAL', async (t) => {
  const sealed = sealChunk(key, context, plaintext);
  const other = new StorageKey(crypto.randomBytes(32));
  t.equal(refusal(() => openChunk(other, context, sealed)), 'ZEGEL_STORAGE_SEAL', 'wrong key');
  t.equal(refusal(() => openChunk(key, 'spool:msg-2:0', sealed)), 'ZEGEL_STORAGE_SEAL', 'moved to another message');
  t.equal(refusal(() => openChunk(key, 'spool:msg-1:1', sealed)), 'ZEGEL_STORAGE_SEAL', 'moved to another position');
  t.equal(refusal(() => openChunk(key, 'ksrv:msg-1', sealed)), 'ZEGEL_STORAGE_SEAL', 'read as another kind of value');
  // two chunks of one message swapped: each opens only in its own place
  const first = sealChunk(key, 'spool:msg-1:0', Buffer.from('first'));
  const second = sealChunk(key, 'spool:msg-1:1', Buffer.from('second'));
  t.equal(refusal(() => openChunk(key, 'spool:msg-1:0', second)), 'ZEGEL_STORAGE_SEAL', 'swapped chunks do not open');
  t.equal(refusal(() => openChunk(key, 'spool:msg-1:1', first)), 'ZEGEL_STORAGE_SEAL');
  for (const at of [0, 1, 12, 13, 200, sealed.length - 16, sealed.length - 1]) {
    const bad = Buffer.from(sealed);
    bad[at]! ^= 0x01;
    t.equal(refusal(() => openChunk(key, context, bad)), 'ZEGEL_STORAGE_SEAL', `flipped byte at ${at}`);
  }
  for (const length of [0, 1, SEAL_OVERHEAD - 1, SEAL_OVERHEAD, sealed.length - 1]) {
    t.equal(refusal(() => openChunk(key, context, sealed.subarray(0, length))), 'ZEGEL_STORAGE_SEAL', `cut to ${length} bytes`);
  }
  t.equal(refusal(() => openChunk(key, context, Buffer.concat([sealed, Buffer.of(0)]))), 'ZEGEL_STORAGE_SEAL', 'a byte appended');
  t.equal(refusal(() => sealChunk(key, '', plaintext)), 'ZEGEL_STORAGE_SEAL', 'no chunk without a context');
});

t.test('loadStorageKey: exactly 32 bytes, mode 0600 or stricter, else ZEGEL_STORAGE_KEY', async (t) => {
  const dir = tempDir(t);
  const bytes = crypto.randomBytes(32);
  const file = path.join(dir, 'storage.key');
  fs.writeFileSync(file, bytes, { mode: 0o600 });
  const loaded = loadStorageKey(file);
  const sealed = sealChunk(loaded, context, plaintext);
  t.ok(openChunk(new StorageKey(bytes), context, sealed).equals(plaintext), 'the file holds the key that sealed');
  t.equal(JSON.stringify({ loaded }), '{"loaded":"[StorageKey]"}', 'the key does not serialise its bytes');
  fs.chmodSync(file, 0o400);
  t.ok(loadStorageKey(file), '0400 is stricter: accepted');

  for (const mode of [0o640, 0o604, 0o644, 0o700, 0o660]) {
    fs.chmodSync(file, mode);
    t.throws(() => loadStorageKey(file), { code: 'ZEGEL_STORAGE_KEY', message: /must be 0600 or stricter/ }, `mode ${mode.toString(8)} refused`);
  }
  fs.chmodSync(file, 0o600);
  for (const size of [0, 31, 33, 64]) {
    fs.writeFileSync(file, crypto.randomBytes(size));
    t.throws(() => loadStorageKey(file), { code: 'ZEGEL_STORAGE_KEY', message: /exactly 32 bytes/ }, `${size} bytes refused`);
  }
  t.throws(() => loadStorageKey(path.join(dir, 'missing.key')), { code: 'ZEGEL_STORAGE_KEY', message: /no storage key/ }, 'a missing file');
  t.throws(() => loadStorageKey(dir), { code: 'ZEGEL_STORAGE_KEY' }, 'a directory');
  t.throws(() => new StorageKey(Buffer.alloc(16)), { code: 'ZEGEL_STORAGE_KEY' }, 'a short key in memory');
});
