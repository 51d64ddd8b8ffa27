import t from 'tap';
import { hashSessionId } from '../src/secure/sessions.js';
import { Browser, ReaderFixture } from './helpers/reader-fixture.js';

/**
 * A request without a session writes no session row: open, code, wrong or
 * empty verifies, forgot, blobs and replies leave reader_sessions as it was
 * (raw rows counted), with no cookie, a made-up cookie or a tampered
 * pre-session. Only a passed check stores a session.
 */

const many = { reader: { rateLimit: { pages: { perAddress: 10_000, perLink: 10_000 }, api: { perAddress: 10_000, perLink: 10_000 }, checks: { perAddress: 10_000, perLink: 10_000 } } } };

function sessionRows(f: ReaderFixture): number {
  return (f.db.prepare('SELECT COUNT(*) AS n FROM reader_sessions').get() as { n: number }).n;
}

async function call(f: ReaderFixture, method: string, path: string, cookie?: string, body?: string): Promise<{ status: number; setCookie: string | null }> {
  const headers: Record<string, string> = {};
  if (method === 'POST') headers['x-zegel-reader'] = '1';
  if (body !== undefined) headers['content-type'] = 'application/json';
  if (cookie) headers.cookie = cookie;
  const res = await fetch(`${f.url}${path}`, { method, headers, body });
  await res.arrayBuffer();
  return { status: res.status, setCookie: res.headers.get('set-cookie') };
}

t.test('300 cookie-less POST /open calls write no session row', async (t) => {
  const f = new ReaderFixture(t, many);
  await f.start();
  const link = await f.link({ method: 'email-code' });
  const before = sessionRows(f);
  for (let i = 0; i < 300; i++) {
    const res = await call(f, 'POST', `/api/links/${link.linkId}/open`);
    if (res.status !== 200) t.fail(`open ${i}: ${res.status}`);
  }
  t.equal(sessionRows(f), before, 'reader_sessions unchanged');
  t.equal(before, 0);
});

t.test('every reader route, without a cookie or with a forged one, leaves reader_sessions unchanged', async (t) => {
  const f = new ReaderFixture(t, many);
  await f.start();
  const email = await f.link({ method: 'email-code' });
  const access = await f.link({ method: 'access-code', address: 'piet@elders.nl' });
  const none = await f.link({ method: 'none', address: 'kees@elders.nl' });
  await f.setAccessCode('piet@elders.nl', 'geheim-piet-123');

  // a pre-session of the email link, and the same one tampered with and moved to another link
  const pre = (await call(f, 'POST', `/api/links/${email.linkId}/open`)).setCookie!.split(';')[0]!;
  const tampered = pre.replace(/.$/, (c) => (c === 'A' ? 'B' : 'A'));
  const cookies: Array<string | undefined> = [undefined, `zegel_rs=${'A'.repeat(43)}`, tampered, pre.replace(email.linkId, access.linkId), 'zegel_rs=p.x.y.z'];
  const before = sessionRows(f);
  t.equal(before, 0);
  for (const cookie of cookies) {
    for (const link of [email, access, none]) {
      const id = link.linkId;
      await call(f, 'GET', `/m/${id}`, cookie);
      await call(f, 'POST', `/api/links/${id}/open`, cookie);
      await call(f, 'POST', `/api/links/${id}/code`, cookie);
      await call(f, 'POST', `/api/links/${id}/forgot`, cookie);
      await call(f, 'GET', `/api/links/${id}/blobs/${link.bodyBlob}`, cookie);
      await call(f, 'GET', `/api/links/${id}/replies`, cookie);
      await call(f, 'POST', `/api/links/${id}/replies`, cookie);
      if (link !== none) {
        await call(f, 'POST', `/api/links/${id}/verify`, cookie, '{}');
        await call(f, 'POST', `/api/links/${id}/verify`, cookie, JSON.stringify({ code: link === email ? '000000' : 'fout' }));
      }
    }
    t.equal(sessionRows(f), before, `no row with cookie ${cookie === undefined ? '(none)' : cookie.slice(0, 12)}…`);
  }
  // the pre-session of one link is nothing on another: opening that link starts a new one
  const moved = await call(f, 'POST', `/api/links/${access.linkId}/open`, pre);
  t.ok(moved.setCookie && !moved.setCookie.startsWith(pre), 'a pre-session of link A is not taken on link B');

  // only a passed check stores a session: exactly one row, for the new cookie
  // (a fresh link: the wrong tries above locked the first one)
  const fresh = await f.link({ method: 'access-code', address: 'piet@elders.nl' });
  const b = new Browser(f);
  await b.open(fresh.linkId);
  const preValue = b.cookie!;
  t.equal((await b.verify(fresh.linkId, 'geheim-piet-123')).status, 200);
  t.equal(sessionRows(f), 1, 'one row after the passed check');
  const row = f.db.prepare('SELECT id_hash, verified_at FROM reader_sessions').get() as { id_hash: string; verified_at: number | null };
  t.equal(row.id_hash, hashSessionId(b.cookie!), 'the row is the new cookie');
  t.ok(row.verified_at !== null, 'stored as verified');
  t.not(b.cookie, preValue);
});

t.test('a pre-session lapses after 12 hours and is bound to its link', async (t) => {
  const f = new ReaderFixture(t, many);
  await f.start();
  const link = await f.link({ method: 'email-code' });
  const b = new Browser(f);
  await b.open(link.linkId);
  const first = b.cookie!;
  t.match(first, /^p\./);
  t.equal((await b.code(link.linkId)).status, 200);
  t.equal(b.cookie, first, 'the same pre-session is kept while it lives');
  f.clock.advance(12 * 3600e3 + 1000);
  await b.open(link.linkId);
  t.not(b.cookie, first, 'after 12 hours a new pre-session');
  t.equal(sessionRows(f), 0);
});
