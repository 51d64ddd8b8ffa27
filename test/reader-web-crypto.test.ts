import t from 'tap';
import { randomBytes } from 'node:crypto';
import * as openpgp from 'openpgp';
import { newKey, newSecureId, wrapKey } from '../src/crypto/key-schedule.js';
import { encryptBytes } from '../src/crypto/payload.js';
import { base64urlDecode, base64urlEncode, parseLinkId, parseLinkKey, unwrapContentKey } from '../web/crypto.js';
import { decryptBlob, parseSecureContent } from '../web/decrypt.js';

function setup() {
  const k = newKey();
  const kLink = newKey();
  const kSrv = newKey();
  const secureId = newSecureId();
  const linkId = newSecureId();
  const wrap = wrapKey(k, kLink, kSrv, secureId, linkId);
  return { k, kLink, kSrv, secureId, linkId, wrap };
}

t.test('WebCrypto unwraps what key-schedule.ts wrapped', async (t) => {
  const s = setup();
  // through base64url, as the page gets them: fragment and VerifyResponse
  const kLink = parseLinkKey(`#${s.kLink.toString('base64url')}`);
  t.ok(kLink);
  const unwrapped = await unwrapContentKey(base64urlDecode(s.wrap.toString('base64url')), kLink!, base64urlDecode(s.kSrv.toString('base64url')), s.secureId, s.linkId);
  t.same(Buffer.from(unwrapped), s.k);
});

t.test('a wrong K_link, K_srv or id, or a flipped byte, fails', async (t) => {
  const s = setup();
  await t.rejects(unwrapContentKey(s.wrap, newKey(), s.kSrv, s.secureId, s.linkId), 'wrong K_link');
  await t.rejects(unwrapContentKey(s.wrap, s.kLink, newKey(), s.secureId, s.linkId), 'wrong K_srv');
  await t.rejects(unwrapContentKey(s.wrap, s.kLink, s.kSrv, newSecureId(), s.linkId), 'other message id');
  await t.rejects(unwrapContentKey(s.wrap, s.kLink, s.kSrv, s.secureId, newSecureId()), 'other link id');
  for (const i of [0, 11, 12, 43, 44, 59]) {
    const bad = Buffer.from(s.wrap);
    bad[i] = (bad[i] as number) ^ 0x01;
    await t.rejects(unwrapContentKey(bad, s.kLink, s.kSrv, s.secureId, s.linkId), `flipped byte ${i}`);
  }
  await t.rejects(unwrapContentKey(s.wrap.subarray(0, 59), s.kLink, s.kSrv, s.secureId, s.linkId), 'short wrap');
});

t.test('fragment and path parsing', async (t) => {
  const key = randomBytes(32);
  t.same(Buffer.from(parseLinkKey(`#${key.toString('base64url')}`)!), key);
  t.same(Buffer.from(parseLinkKey(key.toString('base64url'))!), key, 'without #');
  t.equal(parseLinkKey(''), null, 'missing');
  t.equal(parseLinkKey('#'), null, 'empty');
  t.equal(parseLinkKey(`#${key.toString('base64url').slice(1)}`), null, 'too short');
  t.equal(parseLinkKey(`#${key.toString('base64url')}A`), null, 'too long');
  t.equal(parseLinkKey(`#${key.toString('base64')}`), null, 'base64 with padding or +/ is not base64url');
  t.equal(parseLinkKey(`#${key.toString('base64url').slice(0, 42)}!`), null, 'bad character');
  const id = newSecureId();
  t.equal(parseLinkId(`/m/${id}`), id);
  t.equal(parseLinkId(`/m/${id}/`), id);
  t.equal(parseLinkId(`/m/${id}x`), null);
  t.equal(parseLinkId('/m/'), null);
  t.equal(parseLinkId(`/x/${id}`), null);
});

t.test('base64url round trip and strictness', async (t) => {
  for (const n of [0, 1, 2, 3, 31, 32, 60]) {
    const b = randomBytes(n);
    t.equal(base64urlEncode(b), b.toString('base64url'));
    t.same(Buffer.from(base64urlDecode(b.toString('base64url'))), b);
  }
  t.throws(() => base64urlDecode('ab=='));
  t.throws(() => base64urlDecode('a+b/'));
  t.throws(() => base64urlDecode('abcde'));
});

t.test('blobs from payload.ts decrypt with the page code; tampering yields nothing', async (t) => {
  const k = newKey();
  const content = { v: 1, from: 'Jan <jan@zorg.nl>', to: ['a@b.nl'], cc: [], date: '2025-03-12T13:05:00Z', subject: 'Overdracht', text: 'Hallo\nwereld', attachments: [{ blob: 'b1', name: 'a.pdf', contentType: 'application/pdf', size: 3 }] };
  const blob = await encryptBytes(k, Buffer.from(JSON.stringify(content)));
  const plain = await decryptBlob(openpgp, k, blob);
  t.same(parseSecureContent(plain), content);

  await t.rejects(decryptBlob(openpgp, newKey(), blob), 'wrong key');
  for (const i of [blob.length - 1, blob.length - 20, Math.floor(blob.length / 2)]) {
    const bad = new Uint8Array(blob);
    bad[i] = (bad[i] as number) ^ 0x01;
    await t.rejects(decryptBlob(openpgp, k, bad), `flipped byte ${i}`);
  }
  await t.rejects(decryptBlob(openpgp, k, blob.subarray(0, blob.length - 16)), 'truncated');

  // a multi-chunk blob (1 MiB chunks) with its last chunk damaged gives no plaintext at all
  const big = await encryptBytes(k, randomBytes(2.5 * 1024 * 1024));
  const damaged = new Uint8Array(big);
  damaged[damaged.length - 30] = (damaged[damaged.length - 30] as number) ^ 0xff;
  await t.rejects(decryptBlob(openpgp, k, damaged));
  t.equal((await decryptBlob(openpgp, k, big)).length, 2.5 * 1024 * 1024);

  // the same key but an older, weaker packet (SEIPDv1 with MDC) is refused
  const v1 = await openpgp.encrypt({
    message: await openpgp.createMessage({ binary: Buffer.from('{}') }),
    sessionKey: { data: k, algorithm: 'aes256' },
    format: 'binary',
    config: { aeadProtect: false },
  });
  await t.rejects(decryptBlob(openpgp, k, v1), /SEIPDv2/, 'SEIPDv1 refused');
});

t.test('parseSecureContent refuses what is not a SecureContent v1', async (t) => {
  const enc = (v: unknown) => new TextEncoder().encode(JSON.stringify(v));
  t.throws(() => parseSecureContent(enc({ v: 2 })));
  t.throws(() => parseSecureContent(enc({ v: 1, from: 'x', to: [], cc: [], date: 'd', subject: 's' })), 'no attachments list');
  t.throws(() => parseSecureContent(enc({ v: 1, from: 'x', to: [1], cc: [], date: 'd', subject: 's', attachments: [] })));
  t.throws(() => parseSecureContent(new Uint8Array([0xff, 0xfe])), 'not UTF-8');
});
