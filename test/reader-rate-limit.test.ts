import t from 'tap';
import { parseConfig } from '../src/config/load.js';
import { ReaderFixture } from './helpers/reader-fixture.js';
import { httpFrom } from './helpers/http-from.js';

/**
 * reader.rateLimit over real HTTP: per client address (a second loopback
 * address is another client) and per link, pages and API alike, with a
 * readable 429 (Retry-After; JSON for the API, a page in Dutch and English
 * for page loads); reader.trustedProxies makes X-Forwarded-For the client.
 */

const post = (from: string, url: string, headers: Record<string, string> = {}) => httpFrom(from, url, { method: 'POST', headers });

t.test('defaults: the check endpoints are stricter than page loads, and one user is never limited', async (t) => {
  const { reader } = parseConfig({});
  t.ok(reader.rateLimit.enabled);
  t.ok(reader.rateLimit.checks.perAddress < reader.rateLimit.pages.perAddress, 'checks per address below pages');
  t.ok(reader.rateLimit.checks.perLink < reader.rateLimit.pages.perLink, 'checks per link below pages');
  t.ok(reader.rateLimit.checks.perAddress < reader.rateLimit.api.perAddress, 'checks per address below api');

  const f = new ReaderFixture(t);
  await f.start();
  const link = await f.link({ method: 'access-code' });
  // with the defaults: twenty checks on one link pass, the next is refused; page loads go on
  for (let i = 0; i < reader.rateLimit.checks.perLink; i++) {
    const res = await post('127.0.0.1', `${f.url}/api/links/${link.linkId}/forgot`);
    t.equal(res.status, 200, `check ${i + 1}`);
  }
  const over = await post('127.0.0.1', `${f.url}/api/links/${link.linkId}/forgot`);
  t.equal(over.status, 429, 'one check over the per-link default');
  t.equal(over.json.error, 'rate-limited');
  for (let i = 0; i < 30; i++) t.equal((await httpFrom('127.0.0.1', `${f.url}/m/${link.linkId}`)).status, 200, `page load ${i + 1}`);
});

t.test('a burst from one address gets 429 with Retry-After; a second address is unaffected', async (t) => {
  const f = new ReaderFixture(t, { reader: { rateLimit: { api: { perAddress: 5, perLink: 1000, window: '1m' } } } });
  await f.start();
  const link = await f.link({ method: 'email-code' });
  const statuses: number[] = [];
  for (let i = 0; i < 8; i++) statuses.push((await post('127.0.0.1', `${f.url}/api/links/${link.linkId}/open`)).status);
  t.same(statuses, [200, 200, 200, 200, 200, 429, 429, 429], 'five pass, the rest are refused');
  const limited = await post('127.0.0.1', `${f.url}/api/links/${link.linkId}/open`);
  t.equal(limited.status, 429);
  t.match(limited.headers['content-type'], /application\/json/);
  t.equal(limited.json.error, 'rate-limited');
  const retryAfter = Number(limited.headers['retry-after']);
  t.ok(retryAfter >= 1 && retryAfter <= 60, `Retry-After is 1..60 s (${limited.headers['retry-after']})`);
  t.equal(limited.json.retryAfter, retryAfter, 'the body names the same wait');
  t.equal(limited.headers['cache-control'], 'no-store');

  const other = await post('127.0.0.2', `${f.url}/api/links/${link.linkId}/open`);
  t.equal(other.status, 200, '127.0.0.2 is another client');
  t.equal(other.json.state, 'pending-check');
  await f.flush();
  t.match(f.logs(), /reader: rate limit reached/);
  const lines = f.logLines.filter((l) => l.includes('rate limit reached'));
  t.ok(lines.length >= 1);
  for (const l of lines) t.notMatch(l, /127\.0\.0\./, 'the log line names no client address');
});

t.test('a rate-limited page load gets a readable page in Dutch and English', async (t) => {
  const f = new ReaderFixture(t, { reader: { rateLimit: { pages: { perAddress: 3, perLink: 1000, window: '10m' } } } });
  await f.start();
  const id = 'AAAAAAAAAAAAAAAAAAAAAA';
  for (let i = 0; i < 3; i++) t.equal((await httpFrom('127.0.0.1', `${f.url}/m/${id}`)).status, 200);
  const nl = await httpFrom('127.0.0.1', `${f.url}/m/${id}`, { headers: { 'accept-language': 'nl-NL,nl;q=0.9,en;q=0.5' } });
  t.equal(nl.status, 429);
  t.match(nl.headers['content-type'], /text\/html; charset=utf-8/);
  const wait = Number(nl.headers['retry-after']);
  t.ok(wait > 60 && wait <= 600, `Retry-After within the 10 minute window (${wait})`);
  t.match(nl.text, /<html lang="nl">/);
  t.match(nl.text, /Even geduld/);
  t.match(nl.text, /Probeer het over \d+ minuten opnieuw/);
  t.match(nl.text, /Please wait a moment/);
  t.ok(nl.text.indexOf('Even geduld') < nl.text.indexOf('Please wait'), 'Dutch first for a Dutch browser');
  t.notMatch(nl.text, /<script/i, 'no script');
  t.match(nl.headers['content-security-policy'], /^default-src 'none'; style-src 'sha256-[A-Za-z0-9+/=]+'/, 'only its own inline style');
  const en = await httpFrom('127.0.0.1', `${f.url}/assets/reader.js`, { headers: { 'accept-language': 'en-GB,en;q=0.9' } });
  t.equal(en.status, 429, 'assets count as page loads');
  t.match(en.text, /<html lang="en">/);
  t.ok(en.text.indexOf('Please wait') < en.text.indexOf('Even geduld'), 'English first for an English browser');
  t.equal((await httpFrom('127.0.0.2', `${f.url}/m/${id}`)).status, 200, 'another address still loads the page');
});

t.test('per link: the link has its own allowance; an address over its limit does not use it up', async (t) => {
  const f = new ReaderFixture(t, { reader: { rateLimit: { checks: { perAddress: 4, perLink: 5, window: '1m' } } } });
  await f.start();
  const x = await f.link({ method: 'access-code' });
  const y = await f.link({ method: 'access-code' });
  const a = [] as number[];
  for (let i = 0; i < 10; i++) a.push((await post('127.0.0.1', `${f.url}/api/links/${x.linkId}/forgot`)).status);
  t.same(a, [200, 200, 200, 200, 429, 429, 429, 429, 429, 429], 'address A: four');
  const b = [] as number[];
  for (let i = 0; i < 2; i++) b.push((await post('127.0.0.2', `${f.url}/api/links/${x.linkId}/forgot`)).status);
  t.same(b, [200, 429], 'address B gets what is left of the link (5 - 4): A\'s refused tries did not use it up');
  t.equal((await post('127.0.0.2', `${f.url}/api/links/${y.linkId}/forgot`)).status, 200, 'address B on another link: its own allowance');
});

t.test('reader.trustedProxies: X-Forwarded-For is the client for limits and events; without it the header is ignored', async (t) => {
  const f = new ReaderFixture(t, { reader: { trustedProxies: ['127.0.0.1'], rateLimit: { checks: { perAddress: 2, perLink: 1000, window: '1m' } } } });
  await f.start();
  const link = await f.link({ method: 'access-code' });
  await f.setAccessCode(link.address, 'juiste-code-1');
  const from = (client: string) => ({ 'x-forwarded-for': client, 'content-type': 'application/json' });
  const verify = (client: string) => httpFrom('127.0.0.1', `${f.url}/api/links/${link.linkId}/verify`, { method: 'POST', headers: from(client), body: '{"code":"fout"}' });
  t.equal((await verify('198.51.100.7')).status, 401);
  t.equal((await verify('198.51.100.7')).status, 401);
  t.equal((await verify('198.51.100.7')).status, 429, 'the forwarded client is limited');
  t.equal((await verify('198.51.100.8')).status, 401, 'another forwarded client is not');
  await f.flush();
  const ips = f.events(link.queueId).filter((e) => e.type === 'check-failed').map((e) => (e.detail as { clientIp?: string }).clientIp);
  t.same(ips, ['198.51.100.7', '198.51.100.7', '198.51.100.8'], 'events record the real client address');

  const g = new ReaderFixture(t, { reader: { rateLimit: { checks: { perAddress: 2, perLink: 1000, window: '1m' } } } });
  await g.start();
  const other = await g.link({ method: 'access-code' });
  const direct = (client: string) =>
    httpFrom('127.0.0.1', `${g.url}/api/links/${other.linkId}/verify`, { method: 'POST', headers: from(client), body: '{"code":"fout"}' });
  t.equal((await direct('198.51.100.7')).status, 401);
  t.equal((await direct('198.51.100.8')).status, 401);
  t.equal((await direct('198.51.100.9')).status, 429, 'an untrusted peer cannot escape the limit with the header');
  await g.flush();
  t.same(
    g.events(other.queueId).filter((e) => e.type === 'check-failed').map((e) => (e.detail as { clientIp?: string }).clientIp),
    ['127.0.0.1', '127.0.0.1'],
    'events record the socket peer',
  );
});

t.test('limits off: reader.rateLimit.enabled false', async (t) => {
  const f = new ReaderFixture(t, { reader: { rateLimit: { enabled: false, api: { perAddress: 1, perLink: 1, window: '1m' } } } });
  await f.start();
  const link = await f.link({ method: 'email-code' });
  for (let i = 0; i < 5; i++) t.equal((await post('127.0.0.1', `${f.url}/api/links/${link.linkId}/open`)).status, 200);
});

t.test('a start-up warning for a plain-http publicUrl on a non-loopback host only', async (t) => {
  const cases: Array<[string, boolean]> = [
    ['http://lezen.noord.nl', true],
    ['http://192.0.2.10:8080', true],
    ['https://lezen.noord.nl', false],
    ['http://127.0.0.1:8080', false],
    ['http://localhost:8080', false],
    ['http://[::1]:8080', false],
  ];
  for (const [publicUrl, warns] of cases) {
    const f = new ReaderFixture(t, { reader: { publicUrl } });
    await f.start();
    const warned = /publicUrl is plain http on a non-loopback address/.test(f.logs());
    t.equal(warned, warns, `${publicUrl}: ${warns ? 'warns' : 'quiet'}`);
    await f.stop();
  }
});
