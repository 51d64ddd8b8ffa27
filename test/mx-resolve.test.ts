import t, { type Test } from 'tap';
import { MxResolver, RouteError, type MxHost } from '../src/deliver/mx/dns.js';
import { startDns } from './helpers/dns-server.js';

/**
 * MX routing (RFC 5321 §5.1, RFC 7505) against a real DNS server on loopback
 * (dns2, test/helpers/dns-server.ts): preference order with equal preferences
 * shuffled, A before AAAA, hosts without an address left out, the implicit MX,
 * and every failure as a RouteError with an SMTP-style reply naming the domain.
 */

function resolverFor(servers: string[]): MxResolver {
  return new MxResolver({
    servers: servers.map((s) => {
      const [host, port] = s.split(/:(?=\d+$)/);
      return { host: host!, port: Number(port) };
    }),
    timeout: 1_000,
    tries: 1,
  });
}

async function routeError(t: Test, promise: Promise<unknown>): Promise<RouteError> {
  try {
    await promise;
  } catch (err) {
    t.type(err, RouteError);
    return err as RouteError;
  }
  throw new Error('route() resolved, a RouteError was expected');
}

t.test('MX hosts in preference order, A before AAAA, equal preferences shuffled, a host without addresses left out', async (t) => {
  const dns = await startDns(t, {
    'example.nl': {
      MX: [
        { exchange: 'mx30.example.nl', priority: 30 },
        { exchange: 'mx10.example.nl', priority: 10 },
        { exchange: 'noaddr.example.nl', priority: 5 },
        { exchange: 'mx20a.example.nl', priority: 20 },
        { exchange: 'mx20b.example.nl', priority: 20 },
        { exchange: 'gone.example.nl', priority: 15 },
      ],
      A: ['127.0.0.99'],
    },
    'mx10.example.nl': { A: ['127.0.0.10', '127.0.0.11'], AAAA: ['::1'] },
    'mx20a.example.nl': { A: ['127.0.0.20'] },
    'mx20b.example.nl': { AAAA: ['::1'] },
    'mx30.example.nl': { AAAA: ['::1'], A: ['127.0.0.30'] },
    // known, but neither A nor AAAA (ENODATA); gone.example.nl is not in the zone at all (NXDOMAIN)
    'noaddr.example.nl': { TXT: [['not an address']] },
  });
  const resolver = resolverFor(dns.servers);

  const hosts = await resolver.route('Example.NL.');
  t.same(
    hosts.map((h) => h.preference),
    [10, 20, 20, 30],
    'preference order; the hosts without an address (5 ENODATA, 15 NXDOMAIN) are left out',
  );
  const first = hosts[0]!;
  t.same(first, { name: 'mx10.example.nl', preference: 10, addresses: ['127.0.0.10', '127.0.0.11', '::1'], implicit: false }, 'A then AAAA');
  t.same(hosts[3], { name: 'mx30.example.nl', preference: 30, addresses: ['127.0.0.30', '::1'], implicit: false }, 'A before AAAA whatever the zone order');
  t.same(new Set(hosts.slice(1, 3).map((h) => h.name)), new Set(['mx20a.example.nl', 'mx20b.example.nl']));
  t.ok(dns.queries.includes('noaddr.example.nl A') && dns.queries.includes('gone.example.nl AAAA'), 'the skipped hosts were asked for');

  // equal preferences: both orders show up (P(one order only in 60 tries) = 2^-59)
  const seen = new Set<string>();
  for (let i = 0; i < 60 && seen.size < 2; i++) {
    const again = await resolver.route('example.nl');
    seen.add(again.slice(1, 3).map((h: MxHost) => h.name).join(','));
    t.equal(again[0]!.name, 'mx10.example.nl');
    t.equal(again[3]!.name, 'mx30.example.nl');
  }
  t.equal(seen.size, 2, 'hosts of equal preference are shuffled (RFC 5321 §5.1)');
});

t.test('no MX records: the domain itself is the implicit MX, with its A and AAAA', async (t) => {
  const dns = await startDns(t, {
    'implicit.nl': { A: ['127.0.0.51'], AAAA: ['::1'], TXT: [['v=spf1 -all']] },
    'empty.nl': { TXT: [['v=spf1 -all']] },
  });
  const resolver = resolverFor(dns.servers);
  t.same(await resolver.route('implicit.nl'), [{ name: 'implicit.nl', preference: 0, addresses: ['127.0.0.51', '::1'], implicit: true }]);

  const err = await routeError(t, resolver.route('empty.nl'));
  t.equal(err.kind, 'no-address');
  t.equal(err.reply, '550 5.4.4 empty.nl: no mail host with an address');
  t.equal(err.permanent, true);

  // the zone changes while the server runs: an MX appears
  dns.zone.set('implicit.nl', { MX: [{ exchange: 'mx.implicit.nl', priority: 0 }], A: ['127.0.0.51'] });
  dns.zone.set('mx.implicit.nl', { A: ['127.0.0.52'] });
  t.same(await resolver.route('implicit.nl'), [{ name: 'mx.implicit.nl', preference: 0, addresses: ['127.0.0.52'], implicit: false }], 'an MX, once published, wins over the A record');
});

t.test('null MX (RFC 7505) is a permanent 556 5.1.10, for "" and for "."', async (t) => {
  const dns = await startDns(t, {
    'nullmx.nl': { MX: [{ exchange: '', priority: 0 }], A: ['127.0.0.53'] },
    'nullmx-dot.nl': { MX: [{ exchange: '.', priority: 0 }], A: ['127.0.0.53'] },
  });
  const resolver = resolverFor(dns.servers);
  for (const domain of ['nullmx.nl', 'nullmx-dot.nl']) {
    const err = await routeError(t, resolver.route(domain));
    t.equal(err.name, 'RouteError');
    t.equal(err.kind, 'null-mx');
    t.equal(err.code, 556);
    t.equal(err.status, '5.1.10');
    t.equal(err.reply, `556 5.1.10 ${domain} accepts no mail (null MX, RFC 7505)`);
    t.equal(err.permanent, true);
  }
  t.notOk(dns.queries.some((q) => q.endsWith(' A') || q.endsWith(' AAAA')), 'no address lookups for a null MX');

  // a null MX beside a real one (against RFC 7505 §3) names no host: the real one is used
  dns.zone.set('mixed.nl', { MX: [{ exchange: '', priority: 0 }, { exchange: 'mx.mixed.nl', priority: 10 }] });
  dns.zone.set('mx.mixed.nl', { A: ['127.0.0.57'] });
  t.same(await resolver.route('mixed.nl'), [{ name: 'mx.mixed.nl', preference: 10, addresses: ['127.0.0.57'], implicit: false }]);
});

t.test('a domain that does not exist is a permanent 550 5.1.2', async (t) => {
  const dns = await startDns(t, {});
  const resolver = resolverFor(dns.servers);
  const err = await routeError(t, resolver.route('nowhere.example.nl'));
  t.equal(err.kind, 'nxdomain');
  t.equal(err.reply, '550 5.1.2 nowhere.example.nl: domain does not exist (NXDOMAIN)');
  t.equal(err.dnsCode, 'ENOTFOUND');
  t.equal(err.permanent, true);
});

t.test('MX hosts that all lack an address are a permanent 550 5.4.4', async (t) => {
  const dns = await startDns(t, {
    'deadend.nl': { MX: [{ exchange: 'mx1.deadend.nl', priority: 10 }, { exchange: 'mx2.deadend.nl', priority: 20 }], A: ['127.0.0.54'] },
    'mx1.deadend.nl': { TXT: [['no address here']] },
  });
  const resolver = resolverFor(dns.servers);
  const err = await routeError(t, resolver.route('deadend.nl'));
  t.equal(err.kind, 'no-address');
  t.equal(err.reply, '550 5.4.4 deadend.nl: no mail host with an address');
  t.equal(err.permanent, true, 'and the A record of the domain is not used when MX records exist');
});

t.test('SERVFAIL, refused and timed-out lookups are a temporary 451 4.4.3', async (t) => {
  const dns = await startDns(t, {
    'broken.nl': { servfail: true },
    'halfbroken.nl': { MX: [{ exchange: 'mx.halfbroken.nl', priority: 10 }] },
    'mx.halfbroken.nl': { servfail: true },
  });
  const resolver = resolverFor(dns.servers);

  const err = await routeError(t, resolver.route('broken.nl'));
  t.equal(err.kind, 'dns-failure');
  t.equal(err.reply, '451 4.4.3 broken.nl: DNS lookup failed (ESERVFAIL)');
  t.equal(err.permanent, false);

  const host = await routeError(t, resolver.route('halfbroken.nl'));
  t.equal(host.reply, '451 4.4.3 halfbroken.nl: DNS lookup failed for mx.halfbroken.nl (ESERVFAIL)', 'the only MX host fails to resolve: temporary, not "no address"');
  t.equal(host.permanent, false);

  // a backup whose lookup fails does not stop delivery to the hosts that resolve
  dns.zone.set('halfbroken.nl', { MX: [{ exchange: 'mx.halfbroken.nl', priority: 10 }, { exchange: 'mx2.halfbroken.nl', priority: 20 }] });
  dns.zone.set('mx2.halfbroken.nl', { A: ['127.0.0.56'] });
  t.same(await resolver.route('halfbroken.nl'), [{ name: 'mx2.halfbroken.nl', preference: 20, addresses: ['127.0.0.56'], implicit: false }], 'the failing host is skipped');

  // nothing listens on the TCP/UDP port of a closed server: refused or timed out, both temporary
  const closed = await startDns(t, { 'x.nl': { A: ['127.0.0.55'] } });
  await closed.close();
  const gone = new MxResolver({ servers: [{ host: closed.host, port: closed.port }], timeout: 300, tries: 1 });
  const down = await routeError(t, gone.route('x.nl'));
  t.equal(down.kind, 'dns-failure');
  t.match(down.reply, /^451 4\.4\.3 x\.nl: DNS lookup failed \((ECONNREFUSED|ETIMEOUT)\)$/);
  t.equal(down.permanent, false);
});

t.test('addresses() and txt() for MTA-STS', async (t) => {
  const dns = await startDns(t, {
    'mta-sts.example.nl': { AAAA: ['::1'], A: ['127.0.0.60'] },
    '_mta-sts.example.nl': { TXT: [['v=STSv1; ', 'id=20261204']] },
    'broken.nl': { servfail: true },
    'v4only.nl': { A: ['127.0.0.61'], servfail: ['AAAA'] },
    'mx.v4only.nl': { A: ['127.0.0.62'], servfail: ['AAAA'] },
  });
  dns.zone.set('v4only.nl', { ...dns.zone.get('v4only.nl'), MX: [{ exchange: 'mx.v4only.nl', priority: 10 }] });
  const resolver = resolverFor(dns.servers);
  t.same(await resolver.addresses('mta-sts.example.nl'), ['127.0.0.60', '::1']);
  t.same(await resolver.addresses('v4only.nl'), ['127.0.0.61'], 'a failed AAAA lookup leaves the A answer usable');
  t.match(await resolver.route('v4only.nl'), [{ name: 'mx.v4only.nl', addresses: ['127.0.0.62'] }], 'and the host is routed to, not skipped');
  t.same(await resolver.addresses('mta-sts.unknown.nl'), [], 'NXDOMAIN: no addresses');
  t.same(await resolver.addresses('_mta-sts.example.nl'), [], 'no A/AAAA (ENODATA): no addresses');
  await t.rejects(resolver.addresses('broken.nl'), { code: 'ESERVFAIL' }, 'a failed lookup is not "no addresses"');
  t.same(await resolver.txt('_mta-sts.example.nl'), [['v=STSv1; ', 'id=20261204']], 'TXT strings as published');
  await t.rejects(resolver.txt('_mta-sts.unknown.nl'), { code: 'ENOTFOUND' });
});
