import crypto from 'node:crypto';
import t from 'tap';
import { WRAP_BYTES, deriveKek, newKey, newSecureId, unwrapKey, wrapKey } from '../src/crypto/key-schedule.js';

t.test('a wrap opens only with the same K_link, K_srv, message id and link id', async (t) => {
  const [contentKey, kLink, kSrv] = [newKey(), newKey(), newKey()];
  const [secureId, linkId] = [newSecureId(), newSecureId()];
  t.match(secureId, /^[A-Za-z0-9_-]{22}$/, 'ids are 128 bits as base64url');
  const wrap = wrapKey(contentKey, kLink, kSrv, secureId, linkId);
  t.equal(wrap.length, WRAP_BYTES);
  t.ok(unwrapKey(wrap, kLink, kSrv, secureId, linkId).equals(contentKey), 'the right halves unwrap K');
  t.throws(() => unwrapKey(wrap, newKey(), kSrv, secureId, linkId), 'another K_link fails');
  t.throws(() => unwrapKey(wrap, kLink, newKey(), secureId, linkId), 'another K_srv fails');
  t.throws(() => unwrapKey(wrap, kLink, kSrv, newSecureId(), linkId), 'the wrap of one message does not open under another message id');
  t.throws(() => unwrapKey(wrap, kLink, kSrv, secureId, newSecureId()), 'nor under another link id');
  for (const at of [0, 12, 30, WRAP_BYTES - 1]) {
    const bad = Buffer.from(wrap);
    bad[at]! ^= 0x01;
    t.throws(() => unwrapKey(bad, kLink, kSrv, secureId, linkId), `a flipped byte at ${at} fails`);
  }
  t.not(wrap.subarray(12, 44).toString('hex'), contentKey.toString('hex'), 'K is not in the wrap in the clear');
});

t.test('KEK = HKDF-SHA256(K_link ‖ K_srv, info = "zegel/v1" ‖ message id ‖ link id), as DESIGN says', async (t) => {
  const kLink = Buffer.alloc(32, 1);
  const kSrv = Buffer.alloc(32, 2);
  const expected = Buffer.from(crypto.hkdfSync('sha256', Buffer.concat([kLink, kSrv]), Buffer.alloc(0), Buffer.from('zegel/v1AAAAAAAAAAAAAAAAAAAAAABBBBBBBBBBBBBBBBBBBBBB'), 32));
  t.ok(deriveKek(kLink, kSrv, 'AAAAAAAAAAAAAAAAAAAAAA', 'BBBBBBBBBBBBBBBBBBBBBB').equals(expected));
  t.throws(() => deriveKek(Buffer.alloc(16), kSrv, 'a', 'b'), RangeError, 'short keys are refused');
});

t.test('secure and link ids are 128-bit base64url that never start with "-" (a CLI would read an option)', async (t) => {
  const ids = Array.from({ length: 5000 }, () => newSecureId());
  t.ok(ids.every((id) => /^[A-Za-z0-9_][A-Za-z0-9_-]{21}$/.test(id)), 'base64url of 16 bytes, no leading dash');
  t.equal(new Set(ids).size, ids.length, 'all distinct');
});
