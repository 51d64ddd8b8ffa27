import t from 'tap';
import { newKey, newSecureId, unwrapKey, wrapKey } from '../src/crypto/key-schedule.js';
import { mintStatusLink, statusToken, statusTokenHash, statusTokenMatches } from '../src/secure/status-keys.js';
import { statusToken as browserToken, wrapContentKey } from '../web/status/keys.js';
import { unwrapContentKey } from '../web/crypto.js';

t.test("the browser's wrap opens with the server's unwrapKey, and the status token is the same on both sides", async (t) => {
  const [contentKey, kLink, kSrv] = [newKey(), newKey(), newKey()];
  const [secureId, linkId] = [newSecureId(), newSecureId()];
  const wrap = Buffer.from(await wrapContentKey(contentKey, kLink, kSrv, secureId, linkId));
  t.equal(wrap.length, 60);
  t.ok(unwrapKey(wrap, kLink, kSrv, secureId, linkId).equals(contentKey), 'server unwraps the browser wrap');
  t.throws(() => unwrapKey(wrap, kLink, kSrv, secureId, newSecureId()), 'bound to the link id');

  const status = mintStatusLink(contentKey, secureId);
  t.ok(Buffer.from(await unwrapContentKey(status.wrap, status.kLink, status.kSrv, secureId, status.statusId)).equals(contentKey), 'the browser unwraps W_s');
  const token = Buffer.from(await browserToken(status.kLink, status.statusId));
  t.ok(token.equals(statusToken(status.kLink, status.statusId)), 'the same token');
  t.equal(statusTokenHash(token), status.tokenHash, 'stored as its hash');
  t.ok(statusTokenMatches(token.toString('base64url'), status.tokenHash));
  t.notOk(statusTokenMatches(statusToken(newKey(), status.statusId).toString('base64url'), status.tokenHash), 'another key does not match');
  t.notOk(statusTokenMatches(statusToken(status.kLink, newSecureId()).toString('base64url'), status.tokenHash), 'nor another status id');
  t.notOk(statusTokenMatches('', status.tokenHash));
  t.not(status.kLink.toString('base64url'), token.toString('base64url'), 'the token is not the fragment');
  t.ok(wrapKey(contentKey, kLink, kSrv, secureId, linkId).length === 60);
});
