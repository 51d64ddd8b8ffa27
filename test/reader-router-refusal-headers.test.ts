import t from 'tap';
import { CONTENT_SECURITY_POLICY } from '../src/reader/server.js';
import { ReaderFixture } from './helpers/reader-fixture.js';

/**
 * Fastify's router answers some requests itself, before any hook runs: a
 * path parameter longer than maxParamLength (414) and a path whose
 * percent-encoding does not decode (400). Those answers carry the reader's
 * security headers too, say nothing of the path they refused, and are
 * readable (JSON under /api/, a short nl/en line elsewhere).
 */
t.test('the router refusals carry the security headers and do not echo the path', async (t) => {
  const f = new ReaderFixture(t, { reader: { publicUrl: 'https://lezen.noord.nl' } });
  await f.start();
  const secret = 'Z'.repeat(150);
  const cases = [
    { path: `/m/${secret}`, status: 414, api: false },
    { path: `/api/links/${secret}/open`, status: 414, api: true, method: 'POST' },
    { path: '/m/%E0%A4%A', status: 400, api: false },
    { path: '/api/links/%E0%A4%A/open', status: 400, api: true, method: 'POST' },
  ];
  for (const c of cases) {
    const res = await fetch(`${f.url}${c.path}`, { method: c.method ?? 'GET', headers: { 'x-zegel-reader': '1' } });
    const body = await res.text();
    t.equal(res.status, c.status, `${c.path.slice(0, 30)}…: ${c.status}`);
    t.equal(res.headers.get('content-security-policy'), CONTENT_SECURITY_POLICY, 'CSP');
    t.equal(res.headers.get('x-frame-options'), 'DENY');
    t.equal(res.headers.get('x-content-type-options'), 'nosniff');
    t.equal(res.headers.get('referrer-policy'), 'no-referrer');
    t.equal(res.headers.get('strict-transport-security'), 'max-age=31536000');
    t.notMatch(body, /ZZZZ|%E0/, 'the refused path is not echoed');
    if (c.api) {
      t.same(JSON.parse(body), { error: 'bad-request' });
      t.equal(res.headers.get('cache-control'), 'no-store');
    } else {
      t.match(res.headers.get('content-type') ?? '', /^text\/plain/);
      t.match(body, /Ongeldig adres|Adres te lang/, 'a Dutch line');
      t.match(body, /Bad address|Address too long/, 'an English line');
    }
  }
});
