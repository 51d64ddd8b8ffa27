import fs from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { unwrapKey } from '../src/crypto/key-schedule.js';
import { CONTENT_SECURITY_POLICY } from '../src/reader/server.js';
import { Browser, ReaderFixture } from './helpers/reader-fixture.js';

t.test('an unknown link id and a malformed one get the same answer', async (t) => {
  const f = new ReaderFixture(t);
  await f.start();
  const b = new Browser(f);
  const unknown = await b.open('AAAAAAAAAAAAAAAAAAAAAA');
  const malformed = await b.open('not-a-link');
  const tooLong = await b.open('A'.repeat(90));
  for (const res of [unknown, malformed, tooLong]) {
    t.equal(res.status, 404);
    t.same(res.json, { error: 'unknown-link' });
  }
  t.equal(b.cookie, undefined, 'no session for an unknown link');
  t.equal((await b.blob('AAAAAAAAAAAAAAAAAAAAAA', 'x')).status, 404);
});

t.test('every POST needs X-Zegel-Reader: 1', async (t) => {
  const f = new ReaderFixture(t);
  await f.start();
  const link = await f.link({ method: 'none' });
  const b = new Browser(f);
  for (const route of ['open', 'code', 'verify', 'forgot']) {
    const missing = await b.request('POST', `/api/links/${link.linkId}/${route}`, {}, { 'x-zegel-reader': '0' });
    t.equal(missing.status, 403, route);
    t.same(missing.json, { error: 'csrf' });
  }
  const res = await fetch(`${f.url}/api/links/${link.linkId}/verify`, { method: 'POST', body: '{}', headers: { 'content-type': 'application/json' } });
  t.equal(res.status, 403);
  t.equal(b.cookie, undefined, 'a refused POST starts no session');
});

t.test('security headers, cookie attributes and bodies', async (t) => {
  const f = new ReaderFixture(t, { reader: { publicUrl: 'https://lezen.noord.nl' } });
  await f.start();
  const link = await f.link({ method: 'none' });
  const b = new Browser(f);
  const open = await b.open(link.linkId);
  t.equal(open.status, 200);
  t.equal(open.headers.get('content-security-policy'), CONTENT_SECURITY_POLICY);
  t.equal(open.headers.get('referrer-policy'), 'no-referrer');
  t.equal(open.headers.get('x-content-type-options'), 'nosniff');
  t.equal(open.headers.get('x-frame-options'), 'DENY');
  t.equal(open.headers.get('cache-control'), 'no-store');
  t.equal(open.headers.get('strict-transport-security'), 'max-age=31536000', 'HSTS with an https publicUrl');
  // before the check: a stateless pre-session under the __Host- prefix, nothing stored
  t.match(b.lastSetCookie ?? '', /^__Host-zegel_rs=p\.[A-Za-z0-9_-]{43}\.[0-9a-z]+\.[A-Za-z0-9_-]{43};/);
  t.equal((f.db.prepare('SELECT COUNT(*) AS n FROM reader_sessions').get() as { n: number }).n, 0);
  t.equal((await b.verify(link.linkId)).status, 200);
  const cookie = b.lastSetCookie ?? '';
  t.match(cookie, /^__Host-zegel_rs=[A-Za-z0-9_-]{43};/);
  t.match(cookie, /HttpOnly/);
  t.match(cookie, /SameSite=Strict/);
  t.match(cookie, /Path=\//);
  t.match(cookie, /Secure/);
  t.notMatch(cookie, /Domain=/i, '__Host- cookies carry no Domain');
  const stored = f.db.prepare('SELECT id_hash FROM reader_sessions WHERE link_id = ?').all(link.linkId) as Array<{ id_hash: string }>;
  t.equal(stored.length, 1);
  t.not(stored[0]!.id_hash, b.cookie, 'the database holds the hash, not the cookie');
  t.match(stored[0]!.id_hash, /^[0-9a-f]{64}$/);

  const big = await b.request('POST', `/api/links/${link.linkId}/verify`, { code: 'x'.repeat(5000) });
  t.equal(big.status, 413);
  t.same(big.json, { error: 'bad-request' });
  const notJson = await b.request('POST', `/api/links/${link.linkId}/verify`, undefined, { 'content-type': 'text/plain' });
  t.equal(notJson.status, 415);
  const broken = await fetch(`${f.url}/api/links/${link.linkId}/verify`, {
    method: 'POST',
    body: '{nope',
    headers: { 'content-type': 'application/json', 'x-zegel-reader': '1' },
  });
  t.equal(broken.status, 400);
  t.same(await broken.json(), { error: 'bad-request' });
  const wrongType = await b.request('POST', `/api/links/${link.linkId}/verify`, { code: 5 });
  t.equal(wrongType.status, 400);
});

t.test('cookies are not Secure for an http publicUrl', async (t) => {
  const f = new ReaderFixture(t);
  await f.start();
  const link = await f.link({ method: 'none' });
  const b = new Browser(f);
  const open = await b.open(link.linkId);
  t.notMatch(b.lastSetCookie ?? '', /Secure/);
  t.match(b.lastSetCookie ?? '', /^zegel_rs=/, 'no __Host- prefix without https');
  t.equal(open.headers.get('strict-transport-security'), null, 'no HSTS without https');
});

t.test('page shell and assets', async (t) => {
  const f = new ReaderFixture(t);
  await f.start();
  const a = await fetch(`${f.url}/m/AAAAAAAAAAAAAAAAAAAAAA`);
  const b = await fetch(`${f.url}/m/whatever`);
  const textA = await a.text();
  t.equal(a.status, 200);
  t.match(a.headers.get('content-type'), /text\/html/);
  t.equal(textA, await b.text(), 'same bytes for every id');
  t.equal(a.headers.get('content-security-policy'), CONTENT_SECURITY_POLICY);
  const js = await fetch(`${f.url}/assets/reader.js`);
  t.equal(js.status, 200);
  t.match(js.headers.get('content-type'), /text\/javascript/);
  t.equal(js.headers.get('x-content-type-options'), 'nosniff');
  const missing = await fetch(`${f.url}/assets/reader.css`);
  t.equal(missing.status, 404);
  t.match(missing.headers.get('content-type'), /text\/plain/);
  for (const p of ['/assets/..%2Fdata%2Fzegel.db', '/assets/../data/zegel.db', '/assets/.hidden', '/assets/']) {
    const res = await fetch(`${f.url}${p}`);
    t.equal(res.status, 404, p);
  }
  fs.rmSync(path.join(f.assetsDir, 'index.html'));
  const gone = await fetch(`${f.url}/m/x`);
  t.equal(gone.status, 404, 'missing bundle: 404, no crash');
  t.equal((await fetch(`${f.url}/assets/reader.js`)).status, 200, 'still serving');
  t.equal((await fetch(`${f.url}/nothing`)).status, 404);
});

t.test('method none: verify without a code releases the key; blobs after that only', async (t) => {
  const f = new ReaderFixture(t);
  await f.start();
  const link = await f.link({ method: 'none' });
  const b = new Browser(f);
  const before = await b.blob(link.linkId, link.bodyBlob);
  t.equal(before.status, 403);
  t.same(before.json, { error: 'not-verified' });
  const open = await b.open(link.linkId);
  t.same(open.json, { state: 'pending-check', method: 'none', language: 'nl', organisation: { name: 'Zorggroep Noord' } });
  t.equal((await b.blob(link.linkId, link.bodyBlob)).status, 403, 'opened but not verified');
  const verify = await b.verify(link.linkId);
  t.equal(verify.status, 200);
  t.equal(verify.json.state, 'verified');
  t.equal(verify.json.body, link.bodyBlob);
  t.equal(verify.json.key.secureId, link.secureId);
  t.equal(verify.json.key.linkId, link.linkId);
  const k = unwrapKey(Buffer.from(verify.json.key.wrap, 'base64url'), link.kLink, Buffer.from(verify.json.key.kSrv, 'base64url'), link.secureId, link.linkId);
  t.ok(k.equals(link.contentKey), 'the browser can unwrap K with the fragment');
  t.equal((await b.open(link.linkId)).json.state, 'verified');

  const body = await b.blob(link.linkId, link.bodyBlob);
  t.equal(body.status, 200);
  t.equal(body.headers.get('content-type'), 'application/octet-stream');
  t.equal(body.text, `body-ciphertext-${link.secureId}`);
  const att = await b.blob(link.linkId, link.attachmentBlob);
  t.equal(att.status, 200);
  t.equal(att.text, `attachment-ciphertext-${link.secureId}`);
  t.equal((await b.blob(link.linkId, 'notlisted')).status, 404, 'only blobs listed for the message');

  const row = f.db.prepare('SELECT first_opened_at, last_opened_at, failures FROM secure_links WHERE id = ?').get(link.linkId) as Record<string, number>;
  t.equal(row.first_opened_at, f.clock.now());
  t.equal(row.failures, 0);

  await f.flush();
  const events = f.events(link.queueId);
  t.same(
    events.map((e) => e.type),
    ['check-passed', 'opened', 'downloaded'],
  );
  for (const e of events) {
    t.equal(e.recipient, link.address);
    t.equal(e.detail.linkId, link.linkId);
    t.match(e.detail.clientIp, /127\.0\.0\.1/);
    const text = JSON.stringify(e);
    t.notMatch(text, verify.json.key.wrap);
    t.notMatch(text, verify.json.key.kSrv);
  }
});

t.test('a session belongs to one link; blobs of another link stay closed', async (t) => {
  const f = new ReaderFixture(t);
  await f.start();
  const a = await f.link({ method: 'none' });
  const other = await f.link({ method: 'access-code' });
  const sibling = await f.link({ method: 'access-code', address: 'piet@elders.nl', sameMessageAs: a });
  await f.setAccessCode('piet@elders.nl', 'geheim-piet-123');
  const b = new Browser(f);
  await b.open(a.linkId);
  t.equal((await b.verify(a.linkId)).status, 200);
  const cookieA = b.cookie;
  // the verified cookie of A opens nothing of B, even a link to the same message
  for (const target of [other, sibling]) {
    t.equal((await b.blob(target.linkId, target.bodyBlob)).status, 403);
    const v = await new Browser(f).request('POST', `/api/links/${target.linkId}/verify`, {}, { cookie: `zegel_rs=${cookieA}` });
    t.equal(v.status, 400, 'not verified on B: a code is asked for');
    t.same(v.json, { error: 'no-code' });
  }
  t.equal((await b.blob(a.linkId, other.bodyBlob)).status, 404, 'a blob id of another message is not served through link A');
  const openB = await b.open(sibling.linkId);
  t.equal(openB.json.state, 'pending-check');
  t.not(b.cookie, cookieA, 'opening link B makes a new session');
  t.equal((await b.verify(sibling.linkId, 'geheim-piet-123')).status, 200);
  t.equal((await b.blob(sibling.linkId, sibling.bodyBlob)).status, 200);
});

t.test('access codes: the address first, then the shared @domain code', async (t) => {
  const f = new ReaderFixture(t);
  await f.start();
  await f.setAccessCode('jan@voorbeeld.nl', 'jans-eigen-code');
  await f.setAccessCode('@voorbeeld.nl', 'gedeelde-code-2026');
  const own = await f.link({ method: 'access-code', address: 'jan@voorbeeld.nl' });
  const shared = await f.link({ method: 'access-code', address: 'kees@voorbeeld.nl' });

  const b = new Browser(f);
  t.equal((await b.open(own.linkId)).json.method, 'access-code');
  t.equal((await b.open(own.linkId)).json.destination, undefined);
  t.same((await b.verify(own.linkId)).json, { error: 'no-code' });
  const wrong = await b.verify(own.linkId, 'iets-anders');
  t.equal(wrong.status, 401);
  t.same(wrong.json, { error: 'wrong-code', attemptsLeft: 4 });
  t.equal((await b.verify(own.linkId, 'jans-eigen-code')).status, 200);
  t.equal(
    (f.db.prepare('SELECT failures FROM secure_links WHERE id = ?').get(own.linkId) as { failures: number }).failures,
    0,
    'success resets failures',
  );
  t.equal((await b.verify(own.linkId)).status, 200, 'a verified session gets the key again without a code');

  const c = new Browser(f);
  await c.open(shared.linkId);
  t.equal((await c.verify(shared.linkId, 'gedeelde-code-2026')).status, 200, 'the domain-shared code');
  await f.flush();
  const log = f.logs();
  t.notMatch(log, 'gedeelde-code-2026');
  t.notMatch(log, 'jans-eigen-code');
  t.notMatch(log, 'iets-anders');
  t.notMatch(JSON.stringify(f.events(own.queueId)), 'iets-anders');
});

t.test('forgot: access-code only, the sender hears at most once per hour', async (t) => {
  const f = new ReaderFixture(t);
  await f.start();
  const link = await f.link({ method: 'access-code' });
  const emailLink = await f.link({ method: 'email-code' });
  const b = new Browser(f);
  t.same((await b.forgot(emailLink.linkId)).json, { error: 'bad-request' });
  t.same((await b.forgot(link.linkId)).json, { notified: true });
  t.same((await b.forgot(link.linkId)).json, { notified: true });
  t.same(f.mail.filter((m) => m.kind === 'forgot'), [{ kind: 'forgot', linkId: link.linkId, sender: 'zorg@noord.nl' }]);
  await f.flush();
  await f.restart();
  f.clock.advance(30 * 60e3);
  t.same((await b.forgot(link.linkId)).json, { notified: true });
  t.equal(f.mail.filter((m) => m.kind === 'forgot').length, 1, 'not again within the hour, also after a restart');
  f.clock.advance(31 * 60e3);
  await b.forgot(link.linkId);
  t.equal(f.mail.filter((m) => m.kind === 'forgot').length, 2, 'again after an hour');
  await f.flush();
  t.same(
    f.events(link.queueId).map((e) => e.type),
    ['forgot-code', 'forgot-code'],
  );
});

t.test('revoked and expired links answer 410; replaced links answer like unknown ones', async (t) => {
  const f = new ReaderFixture(t);
  await f.start();
  const b = new Browser(f);

  const revokedMsg = await f.link({ method: 'none' });
  await b.open(revokedMsg.linkId);
  t.equal((await b.verify(revokedMsg.linkId)).status, 200);
  f.db.prepare(`UPDATE secure_messages SET state = 'revoked' WHERE id = ?`).run(revokedMsg.secureId);
  for (const res of [await b.open(revokedMsg.linkId), await b.verify(revokedMsg.linkId), await b.blob(revokedMsg.linkId, revokedMsg.bodyBlob)]) {
    t.equal(res.status, 410);
    t.same(res.json, { error: 'revoked' });
  }

  const revokedLink = await f.link({ method: 'none' });
  f.db.prepare(`UPDATE secure_links SET state = 'revoked', wrap = NULL, k_srv = NULL WHERE id = ?`).run(revokedLink.linkId);
  t.same((await b.open(revokedLink.linkId)).json, { error: 'revoked' });

  const expiredLink = await f.link({ method: 'none' });
  f.db.prepare(`UPDATE secure_links SET state = 'expired' WHERE id = ?`).run(expiredLink.linkId);
  t.same((await b.open(expiredLink.linkId)).json, { error: 'expired' });

  const expiredMsg = await f.link({ method: 'none' });
  f.db.prepare(`UPDATE secure_messages SET state = 'expired' WHERE id = ?`).run(expiredMsg.secureId);
  t.same((await b.open(expiredMsg.linkId)).json, { error: 'expired' });

  const byClock = await f.link({ method: 'none', expiresIn: 3600e3 });
  t.equal((await b.open(byClock.linkId)).status, 200);
  t.equal((await b.verify(byClock.linkId)).status, 200);
  f.clock.advance(3600e3);
  const late = await b.blob(byClock.linkId, byClock.bodyBlob);
  t.equal(late.status, 410, 'expires_at reached by the clock');
  t.same(late.json, { error: 'expired' });

  const replaced = await f.link({ method: 'none' });
  f.db.prepare(`UPDATE secure_links SET state = 'replaced' WHERE id = ?`).run(replaced.linkId);
  const res = await b.open(replaced.linkId);
  t.equal(res.status, 404);
  t.same(res.json, { error: 'unknown-link' });
});

t.test('close does not wait for keep-alive connections after a blob download', async (t) => {
  const f = new ReaderFixture(t);
  await f.start();
  const link = await f.link({ method: 'none' });
  const b = new Browser(f);
  await b.open(link.linkId);
  await b.verify(link.linkId);
  t.equal((await b.blob(link.linkId, link.bodyBlob)).status, 200);
  const started = Date.now();
  await f.stop();
  t.ok(Date.now() - started < 5_000, `closed in ${Date.now() - started} ms`);
  t.equal((await fetch(`${f.url}/m/x`).catch(() => undefined))?.status, undefined, 'no longer listening');
});
