import t from 'tap';
import { hashSessionId } from '../src/secure/sessions.js';
import { Browser, ReaderFixture } from './helpers/reader-fixture.js';

/**
 * The session id rotates when the check passes: the cookie before and after
 * differ, only the new one is stored (as verified), and the value from
 * before the check (planted by someone else, or seen) opens nothing.
 */

function rows(f: ReaderFixture): Array<{ id_hash: string; verified_at: number | null }> {
  return f.db.prepare('SELECT id_hash, verified_at FROM reader_sessions ORDER BY created_at').all() as Array<{ id_hash: string; verified_at: number | null }>;
}

t.test('email code: the cookie before the check is not the cookie after it', async (t) => {
  const f = new ReaderFixture(t);
  await f.start();
  const link = await f.link({ method: 'email-code' });
  const b = new Browser(f);
  await b.open(link.linkId);
  t.equal((await b.code(link.linkId)).status, 200);
  const before = b.cookie!;
  const verified = await b.verify(link.linkId, f.lastCode(link.linkId));
  t.equal(verified.status, 200);
  const after = b.cookie!;
  t.not(after, before, 'the session id differs before and after a successful check');
  t.same(rows(f).map((r) => r.id_hash), [hashSessionId(after)], 'only the new id is stored');
  t.ok(rows(f)[0]!.verified_at !== null);

  // someone holding the value from before the check gets nothing
  const planted = new Browser(f);
  planted.cookie = before;
  t.equal((await planted.blob(link.linkId, link.bodyBlob)).status, 403, 'the old value opens no blob');
  const again = await planted.verify(link.linkId);
  t.equal(again.status, 400, 'the old value is not verified: a code is asked for');
  t.equal((await b.blob(link.linkId, link.bodyBlob)).status, 200, 'the new value opens the blob');
});

t.test('access code and method none rotate too; a verified session keeps its id on reload', async (t) => {
  const f = new ReaderFixture(t);
  await f.start();
  const access = await f.link({ method: 'access-code' });
  await f.setAccessCode(access.address, 'geheim-jan-123');
  const b = new Browser(f);
  await b.open(access.linkId);
  const before = b.cookie;
  t.equal((await b.verify(access.linkId, 'geheim-jan-123')).status, 200);
  t.not(b.cookie, before);
  const verifiedCookie = b.cookie;
  // a reload: open and verify again with the verified cookie, no new id and no new row
  t.equal((await b.open(access.linkId)).json.state, 'verified');
  t.equal((await b.verify(access.linkId)).status, 200);
  t.equal(b.cookie, verifiedCookie, 'no rotation without a new check');
  t.equal(rows(f).length, 1);

  const none = await f.link({ method: 'none', address: 'kees@elders.nl' });
  const c = new Browser(f);
  await c.open(none.linkId);
  const pre = c.cookie;
  t.equal((await c.verify(none.linkId)).status, 200);
  t.not(c.cookie, pre);
  t.equal(rows(f).length, 2);
});

t.test('an unverified session stored by an earlier version is replaced, not verified in place', async (t) => {
  const f = new ReaderFixture(t);
  await f.start();
  const link = await f.link({ method: 'none' });
  const legacy = 'L'.repeat(43);
  const now = f.clock.now();
  f.db.prepare('INSERT INTO reader_sessions (id_hash, link_id, created_at, expires_at) VALUES (?, ?, ?, ?)').run(hashSessionId(legacy), link.linkId, now, now + 3600e3);
  const b = new Browser(f);
  b.cookie = legacy;
  t.equal((await b.open(link.linkId)).json.state, 'pending-check');
  t.equal(b.cookie, legacy, 'the stored session is taken as it is');
  t.equal((await b.verify(link.linkId)).status, 200);
  t.not(b.cookie, legacy);
  t.same(rows(f).map((r) => r.id_hash), [hashSessionId(b.cookie!)], 'the old row is gone, the new one stored');
});
