import t from 'tap';
import { Browser, otherCode, ReaderFixture } from './helpers/reader-fixture.js';

const LOCK_MS = 15 * 60e3;

t.test('five wrong tries across sessions lock the link and void its code; the lock survives a restart', async (t) => {
  const f = new ReaderFixture(t);
  await f.start();
  const link = await f.link({ method: 'email-code' });
  const owner = new Browser(f);
  await owner.open(link.linkId);
  await owner.code(link.linkId);
  const code = f.lastCode(link.linkId)!;

  const attacker = new Browser(f);
  await attacker.open(link.linkId);
  for (let left = 4; left >= 1; left--) {
    // every try from a fresh session: failures count per link, not per session
    const b = left % 2 ? attacker : new Browser(f);
    const res = await b.verify(link.linkId, otherCode(code));
    t.equal(res.status, 401);
    t.same(res.json, { error: 'wrong-code', attemptsLeft: left });
  }
  const fifth = await attacker.verify(link.linkId, otherCode(code));
  const lockedUntil = new Date(f.clock.now() + LOCK_MS).toISOString();
  t.equal(fifth.status, 423);
  t.same(fifth.json, { error: 'locked', lockedUntil });
  const row = f.db.prepare('SELECT failures, locked_until FROM secure_links WHERE id = ?').get(link.linkId) as { failures: number; locked_until: number };
  t.equal(row.failures, 0, 'failures reset at lock');
  t.equal(row.locked_until, f.clock.now() + LOCK_MS);
  t.same(
    (f.db.prepare('SELECT state FROM one_time_codes WHERE link_id = ?').all(link.linkId) as Array<{ state: string }>).map((r) => r.state),
    ['void'],
    'the live code is void',
  );

  // while locked: even the right code is refused, and no new code is sent
  const right = await owner.verify(link.linkId, code);
  t.equal(right.status, 423);
  t.same(right.json, { error: 'locked', lockedUntil });
  t.same((await owner.code(link.linkId)).json, { error: 'locked', lockedUntil });
  const open = await owner.open(link.linkId);
  t.equal(open.status, 200);
  t.equal(open.json.state, 'locked');
  t.equal(open.json.lockedUntil, lockedUntil);

  await f.restart();
  t.equal((await owner.verify(link.linkId, code)).status, 423, 'still locked after a restart');
  f.clock.advance(LOCK_MS - 1);
  t.equal((await owner.verify(link.linkId, code)).status, 423, 'locked until lockFor has passed');
  f.clock.advance(1);
  const after = await owner.verify(link.linkId, code);
  t.equal(after.status, 401, 'unlocked; the voided code stays void');
  t.same(after.json, { error: 'wrong-code', attemptsLeft: 4 });
  f.clock.advance(30_000);
  await owner.code(link.linkId);
  t.equal((await owner.verify(link.linkId, f.lastCode(link.linkId)!)).status, 200, 'a new code works');

  await f.flush();
  const events = f.events(link.queueId);
  const types = events.map((e) => e.type);
  t.equal(types.filter((x) => x === 'check-failed').length, 6);
  t.equal(types.filter((x) => x === 'locked').length, 1);
  t.same(events.find((e) => e.type === 'locked')!.detail.lockedUntil, lockedUntil);
  t.same(
    events.filter((e) => e.type === 'check-failed').map((e) => e.detail.attemptsLeft),
    [4, 3, 2, 1, 0, 4],
  );
  t.notMatch(JSON.stringify(events), code);
  t.notMatch(f.logs(), code);
  t.match(f.logs(), /link locked after too many wrong tries/);
});

t.test('a verified session keeps its key while the link is locked by others', async (t) => {
  const f = new ReaderFixture(t);
  await f.start();
  await f.setAccessCode('jan@voorbeeld.nl', 'juiste-code-1');
  const link = await f.link({ method: 'access-code' });
  const owner = new Browser(f);
  await owner.open(link.linkId);
  t.equal((await owner.verify(link.linkId, 'juiste-code-1')).status, 200);
  const other = new Browser(f);
  for (let i = 0; i < 5; i++) await other.verify(link.linkId, 'fout');
  t.equal((await other.verify(link.linkId, 'juiste-code-1')).status, 423);
  t.equal((await owner.verify(link.linkId)).status, 200);
  t.equal((await owner.blob(link.linkId, link.bodyBlob)).status, 200);
});

t.test('a shared access code is never disabled: it works on other links and after the lock ends', async (t) => {
  const f = new ReaderFixture(t);
  await f.start();
  await f.setAccessCode('@gemeente.nl', 'gedeelde-code-99');
  const kees = await f.link({ method: 'access-code', address: 'kees@gemeente.nl' });
  const ria = await f.link({ method: 'access-code', address: 'ria@gemeente.nl' });
  const b = new Browser(f);
  await b.open(kees.linkId);
  for (let i = 0; i < 4; i++) t.equal((await b.verify(kees.linkId, `fout-${i}`)).status, 401);
  t.equal((await b.verify(kees.linkId, 'fout-4')).status, 423);

  const r = new Browser(f);
  await r.open(ria.linkId);
  t.equal((await r.verify(ria.linkId, 'gedeelde-code-99')).status, 200, "another recipient's link with the shared code is unaffected");

  f.clock.advance(LOCK_MS);
  const k2 = new Browser(f);
  await k2.open(kees.linkId);
  t.equal((await k2.verify(kees.linkId, 'gedeelde-code-99')).status, 200, 'the shared code works again once the lock is over');
  t.equal(f.directory.size, 1);
});

t.test('concurrent wrong tries never test more than maxAttempts codes', async (t) => {
  const f = new ReaderFixture(t, { verification: { ttl: { maxAttempts: 3 } } });
  await f.start();
  await f.setAccessCode('jan@voorbeeld.nl', 'juiste-code-1');
  const link = await f.link({ method: 'access-code' });
  const browsers = Array.from({ length: 10 }, () => new Browser(f));
  const results = await Promise.all(browsers.map((b, i) => b.verify(link.linkId, `fout-${i}`)));
  const statuses = results.map((r) => r.status).sort();
  t.equal(statuses.filter((s) => s === 401).length, 2, 'maxAttempts - 1 wrong-code answers');
  t.equal(statuses.filter((s) => s === 423).length, 8);
  t.equal((await new Browser(f).verify(link.linkId, 'juiste-code-1')).status, 423);
});
