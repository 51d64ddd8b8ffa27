import t, { type Test } from 'tap';
import { MxResolver } from '../src/deliver/mx/dns.js';
import { MtaSts } from '../src/deliver/mx/mta-sts.js';
import { startDns, type TestDns } from './helpers/dns-server.js';
import { MtaStsServer, policyText } from './helpers/mta-sts-server.js';
import { createPki, type TestPki } from './helpers/test-pki.js';

/**
 * MTA-STS policy discovery (RFC 8461 §3-5) with real parts: the
 * `_mta-sts` TXT record and the `mta-sts.<domain>` address from a dns2 server
 * on loopback, the policy from an HTTPS server on 127.0.0.60:443 with a
 * certificate of a test CA made with openssl. The relay trusts that CA only
 * through the `ca` option; the clock is a variable, so max_age is tested
 * without waiting.
 */

const HTTPS_ADDRESS = '127.0.0.60';

interface Fixture {
  dns: TestDns;
  pki: TestPki;
  web: MtaStsServer;
  resolver: MxResolver;
  clock: { now: number };
  sts: MtaSts;
}

// one CA and one HTTPS server (port 443 on this file's address) for the whole file
const pki = createPki(t);
const web = await MtaStsServer.start(t, HTTPS_ADDRESS, pki);

/** A fresh DNS server and MtaSts (empty cache, own clock) per test. */
async function fixture(t: Test): Promise<Fixture> {
  const dns = await startDns(t);
  const resolver = new MxResolver({ servers: [{ host: dns.host, port: dns.port }], timeout: 1_000, tries: 1 });
  const clock = { now: Date.UTC(2026, 11, 4, 12) };
  const sts = new MtaSts({ resolver, ca: pki.ca.cert, timeout: 3_000, clock: () => clock.now });
  return { dns, pki, web, resolver, clock, sts };
}

/** Publishes `_mta-sts.<domain>` with `id` and `mta-sts.<domain>` at the HTTPS server. */
function publish(f: Fixture, domain: string, id: string | undefined): void {
  if (id === undefined) f.dns.zone.delete(`_mta-sts.${domain}`);
  else f.dns.zone.set(`_mta-sts.${domain}`, { TXT: [[`v=STSv1; id=${id};`]] });
  f.dns.zone.set(`mta-sts.${domain}`, { A: [HTTPS_ADDRESS] });
}

t.test('enforce, testing and none are parsed, with max_age and expiry from the clock', async (t) => {
  const f = await fixture(t);
  const cases = [
    { domain: 'enforce.test', mode: 'enforce', mx: ['MX1.enforce.test', '*.backup.enforce.test'], maxAge: 604_800 },
    { domain: 'testing.test', mode: 'testing', mx: ['mx.testing.test'], maxAge: 86_400 },
    { domain: 'none.test', mode: 'none', mx: [], maxAge: 3_600 },
  ] as const;
  for (const c of cases) {
    publish(f, c.domain, 'v1');
    f.web.set(c.domain, { body: policyText(c.mode, [...c.mx], c.maxAge) });
    const found = await f.sts.lookup(c.domain);
    t.equal(found.source, 'fetched', `${c.domain}: fetched`);
    t.same(found.policy, {
      id: 'v1',
      mode: c.mode,
      mx: c.mx.map((m) => m.toLowerCase()),
      maxAge: c.maxAge,
      fetchedAt: f.clock.now,
      expires: f.clock.now + c.maxAge * 1000,
    });
  }
  // text/plain with parameters is text/plain (RFC 8461 §3.3)
  publish(f, 'charset.test', 'c1');
  f.web.set('charset.test', { body: policyText('enforce', ['mx.charset.test']), contentType: 'text/plain; charset=utf-8' });
  t.equal((await f.sts.policy('charset.test'))?.mode, 'enforce', 'text/plain; charset=utf-8 accepted');
  t.same(f.sts.counters, { cacheHits: 0, fetches: 4, fetchFailures: 0, cached: 4 });
});

t.test('the cache: same id served without a fetch, a new id fetched again, concurrent lookups share one fetch', async (t) => {
  const f = await fixture(t);
  publish(f, 'cache.test', 'one');
  f.web.set('cache.test', { body: policyText('enforce', ['mx1.cache.test']) });
  const before = f.web.count('cache.test');

  const first = await f.sts.lookup('cache.test');
  t.equal(first.source, 'fetched');
  t.equal(f.web.count('cache.test'), before + 1);

  f.clock.now += 3_600_000;
  const again = await f.sts.lookup('CACHE.test.');
  t.equal(again.source, 'cache', 'same id: from the cache');
  t.equal(again.policy, first.policy);
  t.equal(f.web.count('cache.test'), before + 1, 'no second request to the HTTPS server');
  t.equal(f.sts.counters.cacheHits, 1);

  // a new id in DNS: fetched again, and the new policy replaces the old one
  publish(f, 'cache.test', 'two');
  f.web.respond('cache.test', { body: policyText('testing', ['mx2.cache.test']) });
  const renewed = await f.sts.lookup('cache.test');
  t.equal(renewed.source, 'fetched');
  t.match(renewed.policy, { id: 'two', mode: 'testing', mx: ['mx2.cache.test'], fetchedAt: f.clock.now });
  t.equal(f.web.count('cache.test'), before + 2, 'one more request for the new id');

  // concurrent lookups of a domain not yet cached
  publish(f, 'burst.test', 'b1');
  f.web.set('burst.test', { body: policyText('enforce', ['mx.burst.test']) });
  const burst = await Promise.all(Array.from({ length: 5 }, () => f.sts.policy('burst.test')));
  t.ok(burst.every((p) => p?.id === 'b1'));
  t.equal(f.web.count('burst.test'), 1, 'five lookups at once, one fetch');
  t.same(f.sts.counters, { cacheHits: 1, fetches: 3, fetchFailures: 0, cached: 2 });

  // the cache is bounded: the oldest fetched domain goes first
  const small = new MtaSts({ resolver: f.resolver, ca: f.pki.ca.cert, clock: () => f.clock.now, cacheSize: 2 });
  for (const domain of ['cache.test', 'burst.test']) await small.policy(domain);
  publish(f, 'third.test', 'c3');
  f.web.set('third.test', { body: policyText('enforce', ['mx.third.test']) });
  await small.policy('third.test');
  t.equal(small.counters.cached, 2);
  await small.policy('burst.test');
  t.equal(small.counters.cacheHits, 1, 'the newer two are cached');
  const fetchesBefore = f.web.count('cache.test');
  await small.policy('cache.test');
  t.equal(f.web.count('cache.test'), fetchesBefore + 1, 'the oldest was dropped and is fetched again');
});

t.test('TXT record gone: the cached policy holds until max_age, then there is none', async (t) => {
  const f = await fixture(t);
  publish(f, 'gone.test', 'g1');
  f.web.set('gone.test', { body: policyText('enforce', ['mx.gone.test'], 3_600) });
  const fetched = await f.sts.policy('gone.test');
  t.equal(fetched?.id, 'g1');

  publish(f, 'gone.test', undefined); // _mta-sts.gone.test now NXDOMAIN
  f.clock.now += 3_599_000;
  const held = await f.sts.lookup('gone.test');
  t.equal(held.source, 'cache', 'within max_age the cached policy applies (RFC 8461 §5.1)');
  t.equal(held.policy, fetched);
  t.match(held.reason, /no valid _mta-sts\.gone\.test TXT record; cached policy g1/);

  f.clock.now += 1_000; // max_age reached
  const expired = await f.sts.lookup('gone.test');
  t.equal(expired.policy, undefined, 'after max_age: no policy');
  t.equal(expired.source, 'none');
  t.match(expired.reason, /no valid _mta-sts\.gone\.test TXT record/);
  t.equal(f.web.count('gone.test'), 1, 'no fetch without a TXT record');

  // a domain that never had one
  const never = await f.sts.lookup('never.test');
  t.same(never, { policy: undefined, source: 'none', reason: 'no valid _mta-sts.never.test TXT record' });
});

t.test('a failed fetch falls back to the cached policy; without one there is no policy, and the reason says why', async (t) => {
  const f = await fixture(t);
  publish(f, 'flaky.test', 'f1');
  f.web.set('flaky.test', { body: policyText('enforce', ['mx.flaky.test']) });
  const cached = await f.sts.policy('flaky.test');

  publish(f, 'flaky.test', 'f2');
  f.web.respond('flaky.test', { status: 503, body: 'down for maintenance' });
  const fallback = await f.sts.lookup('flaky.test');
  t.equal(fallback.source, 'cache-after-failure');
  t.equal(fallback.policy, cached, 'the cached policy (id f1) still applies');
  t.equal(fallback.error?.kind, 'http-status');
  t.match(fallback.reason, /https:\/\/mta-sts\.flaky\.test\/\.well-known\/mta-sts\.txt answered HTTP 503; cached policy f1 used/);

  // DNS trouble with the TXT record: the cache too
  f.dns.zone.set('_mta-sts.flaky.test', { servfail: true });
  const dnsDown = await f.sts.lookup('flaky.test');
  t.equal(dnsDown.source, 'cache-after-failure');
  t.equal(dnsDown.error?.kind, 'dns');
  t.match(dnsDown.reason, /TXT lookup of _mta-sts\.flaky\.test failed \(ESERVFAIL\)/);

  // the server recovers: the new id is fetched
  publish(f, 'flaky.test', 'f2');
  f.web.respond('flaky.test', { status: 200, body: policyText('testing', ['mx.flaky.test']) });
  t.match(await f.sts.lookup('flaky.test'), { source: 'fetched', policy: { id: 'f2', mode: 'testing' } });

  // no cache: a failure is "no policy" with the reason
  publish(f, 'fresh.test', 'x1');
  f.web.set('fresh.test', { status: 500, body: 'oops' });
  const none = await f.sts.lookup('fresh.test');
  t.equal(none.policy, undefined);
  t.equal(none.source, 'none');
  t.equal(none.error?.kind, 'http-status');
  t.match(none.reason, /answered HTTP 500/);
  t.same(f.sts.counters, { cacheHits: 2, fetches: 4, fetchFailures: 2, cached: 1 });
});

t.test('certificates: another CA, a self-signed one, a wrong name and the system CAs alone all mean no policy', async (t) => {
  const f = await fixture(t);
  const stranger = createPki(t, 'Some Other CA');

  publish(f, 'otherca.test', 'o1');
  f.web.set('otherca.test', { body: policyText('enforce', ['mx.otherca.test']) }, stranger.leaf(['mta-sts.otherca.test']));
  const otherCa = await f.sts.lookup('otherca.test');
  t.equal(otherCa.policy, undefined, 'a certificate from a CA not trusted: no policy');
  t.equal(otherCa.error?.kind, 'tls');
  t.match(otherCa.reason, /certificate of https:\/\/mta-sts\.otherca\.test\/\.well-known\/mta-sts\.txt refused \(UNABLE_TO_VERIFY_LEAF_SIGNATURE\)/);

  publish(f, 'selfsigned.test', 's1');
  f.web.set('selfsigned.test', { body: policyText('enforce', ['mx.selfsigned.test']) }, f.pki.selfSigned(['mta-sts.selfsigned.test']));
  const self = await f.sts.lookup('selfsigned.test');
  t.equal(self.policy, undefined);
  t.equal(self.error?.kind, 'tls');
  t.equal(self.error?.detail, 'DEPTH_ZERO_SELF_SIGNED_CERT');

  publish(f, 'wrongname.test', 'w1');
  f.web.set('wrongname.test', { body: policyText('enforce', ['mx.wrongname.test']) }, f.pki.leaf(['mta-sts.elsewhere.test']));
  const wrong = await f.sts.lookup('wrongname.test');
  t.equal(wrong.policy, undefined);
  t.equal(wrong.error?.kind, 'tls');
  t.equal(wrong.error?.detail, 'ERR_TLS_CERT_ALTNAME_INVALID');

  // the test CA is trusted only through the `ca` option: without it, the system CAs alone refuse it
  publish(f, 'systemca.test', 'y1');
  f.web.set('systemca.test', { body: policyText('enforce', ['mx.systemca.test']) });
  const systemOnly = new MtaSts({ resolver: f.resolver, timeout: 3_000 });
  const refused = await systemOnly.lookup('systemca.test');
  t.equal(refused.policy, undefined);
  t.equal(refused.error?.kind, 'tls');
  t.equal((await f.sts.lookup('systemca.test')).source, 'fetched', 'the same server with the extra CA: fetched');
  t.equal(f.web.count('otherca.test') + f.web.count('selfsigned.test') + f.web.count('wrongname.test'), 0, 'no request got past a refused handshake');
});

t.test('only 200, text/plain, at most 64 KiB, no redirects, a valid policy', async (t) => {
  const f = await fixture(t);
  const good = policyText('enforce', ['mx.bad.test']);
  publish(f, 'target.test', 't1');
  f.web.set('target.test', { body: good });
  const cases: Array<{ domain: string; response: Parameters<MtaStsServer['set']>[1]; kind: string; reason: RegExp }> = [
    { domain: 'notfound.test', response: { status: 404, body: 'no' }, kind: 'http-status', reason: /answered HTTP 404/ },
    {
      domain: 'redirect.test',
      response: { status: 301, body: '', headers: { location: 'https://mta-sts.target.test/.well-known/mta-sts.txt' } },
      kind: 'http-status',
      reason: /answered HTTP 301/,
    },
    { domain: 'html.test', response: { body: good, contentType: 'text/html' }, kind: 'content-type', reason: /is text\/html, not text\/plain/ },
    { domain: 'json.test', response: { body: good, contentType: 'application/json; charset=utf-8' }, kind: 'content-type', reason: /is application\/json/ },
    { domain: 'large.test', response: { body: good + '#'.repeat(64 * 1024) }, kind: 'too-large', reason: /larger than 64 KiB/ },
    { domain: 'invalid.test', response: { body: 'version: STSv1\nmode: enforce\nmax_age: 86400\n' }, kind: 'invalid-policy', reason: /invalid \(invalid_sts_mx\)/ },
    { domain: 'badage.test', response: { body: 'version: STSv1\nmode: enforce\nmx: mx.x\nmax_age: 1e3\n' }, kind: 'invalid-policy', reason: /invalid_sts_max_age/ },
    { domain: 'noage.test', response: { body: 'version: STSv1\nmode: enforce\nmx: mx.x\nmax_age:\n' }, kind: 'invalid-policy', reason: /invalid_sts_max_age/ },
    { domain: 'badmode.test', response: { body: 'version: STSv1\nmode: strict\nmx: mx.x\nmax_age: 86400\n' }, kind: 'invalid-policy', reason: /invalid_sts_mode/ },
  ];
  for (const c of cases) {
    publish(f, c.domain, 'z1');
    f.web.set(c.domain, c.response);
    const found = await f.sts.lookup(c.domain);
    t.equal(found.policy, undefined, `${c.domain}: no policy`);
    t.equal(found.error?.kind, c.kind, `${c.domain}: ${c.kind}`);
    t.match(found.reason, c.reason);
  }
  t.equal(f.web.count('target.test'), 0, 'the redirect was not followed');

  // mta-sts.<domain> without an address
  f.dns.zone.set('_mta-sts.noaddr.test', { TXT: [['v=STSv1; id=n1']] });
  const noAddress = await f.sts.lookup('noaddr.test');
  t.equal(noAddress.error?.kind, 'no-address');
  t.equal(noAddress.reason, 'MTA-STS: mta-sts.noaddr.test has no address');
});

t.test('matches(): exact names and a wildcard of exactly one label (RFC 8461 §4.1)', async (t) => {
  const f = await fixture(t);
  const policy = { mode: 'enforce' as const, mx: ['mx.example.nl', '*.mail.example.nl'] };
  t.ok(f.sts.matches('mx.example.nl', policy));
  t.ok(f.sts.matches('MX.Example.NL.', policy), 'case and trailing dot do not matter');
  t.ok(f.sts.matches('mx1.mail.example.nl', policy), '*. matches one label');
  t.notOk(f.sts.matches('a.b.mail.example.nl', policy), '*. does not match two labels (mailauth alone would)');
  t.notOk(f.sts.matches('mail.example.nl', policy), '*. does not match the bare parent');
  t.notOk(f.sts.matches('mx.example.nl.evil.test', policy));
  t.notOk(f.sts.matches('xmx.example.nl', policy));
  t.notOk(f.sts.matches('mx2.example.nl', policy));
  t.ok(f.sts.matches('mx1.mail.example.nl', { mode: 'testing', mx: ['*.mail.example.nl'] }), 'testing: checked the same way');
  t.ok(f.sts.matches('anything.test', { mode: 'none', mx: [] }), 'none: nothing to check');
});

t.test('an address of mta-sts.<domain> that cannot be reached gives way to the next one', async (t) => {
  const f = await fixture(t);
  publish(f, 'twohomes.test', 'v1');
  // 127.0.0.69: nothing listens on 443 there (this file's range is 127.0.0.60-69)
  f.dns.zone.set('mta-sts.twohomes.test', { A: ['127.0.0.69', HTTPS_ADDRESS] });
  f.web.set('twohomes.test', { body: policyText('enforce', ['mx.twohomes.test']) });
  const found = await f.sts.lookup('twohomes.test');
  t.equal(found.source, 'fetched');
  t.match(found.policy, { mode: 'enforce', mx: ['mx.twohomes.test'] });
  f.dns.zone.set('mta-sts.twohomes.test', { A: ['127.0.0.69'] });
  publish(f, 'twohomes.test', 'v2');
  f.dns.zone.set('mta-sts.twohomes.test', { A: ['127.0.0.69'] });
  const alone = await f.sts.lookup('twohomes.test');
  t.equal(alone.source, 'cache-after-failure', 'with only the dead address: the cached policy');
  t.match(alone.error, { kind: 'network' });
});
