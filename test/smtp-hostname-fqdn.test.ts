import fs from 'node:fs';
import path from 'node:path';
import nodemailer from 'nodemailer';
import { SMTPServer } from 'smtp-server';
import t from 'tap';
import { stringify } from 'yaml';
import { defaultHostname, isFqdn, systemResolver, type HostnameResolver } from '../src/config/hostname.js';
import { freePort, runZegel, startChildRelay } from './helpers/child-relay.js';
import { tempDir, waitFor, type Teardown } from './helpers/relay.js';

/*
 * A proper greeting: smtp.hostname defaults to this host's fully qualified
 * name when it has one, so a next hop with Postfix's
 * reject_non_fqdn_helo_hostname accepts the relay's EHLO; a dotless name is
 * said by `zegel start` (a warn line naming the key) and `zegel check-config`
 * (stderr). The EHLO a real next hop sees and the Message-ID of relay-made
 * mail carry the name.
 */

/** A resolver with fixed answers: `hosts` maps a name to its addresses, `names` an address to its canonical name. */
function fakeResolver(short: string, hosts: Record<string, string[]>, names: Record<string, string>, calls: string[] = []): HostnameResolver {
  return {
    hostname: () => short,
    lookup: async (name) => {
      calls.push(`lookup ${name}`);
      if (!hosts[name]) throw Object.assign(new Error(`getaddrinfo ENOTFOUND ${name}`), { code: 'ENOTFOUND' });
      return hosts[name]!;
    },
    lookupService: async (address) => {
      calls.push(`lookupService ${address}`);
      if (!names[address]) throw Object.assign(new Error(`getnameinfo ENOTFOUND ${address}`), { code: 'ENOTFOUND' });
      return names[address]!;
    },
  };
}

t.test('the default: the kernel name when dotted, else the resolver\'s canonical name, else the short name', async (t) => {
  const calls: string[] = [];
  t.same(await defaultHostname(fakeResolver('mail.zorg.test', {}, {}, calls)), { name: 'mail.zorg.test', from: 'hostname' }, 'a dotted host name is kept');
  t.same(calls, [], 'and no lookup is made for it');

  // Debian's /etc/hosts: 127.0.1.1 mail.zorg.test mail
  t.same(await defaultHostname(fakeResolver('mail', { mail: ['127.0.1.1'] }, { '127.0.1.1': 'mail.zorg.test' })), { name: 'mail.zorg.test', from: 'resolver' }, 'short name + FQDN in the resolver: the FQDN');
  t.same(
    await defaultHostname(fakeResolver('mail', { mail: ['127.0.0.1', '192.0.2.7'] }, { '127.0.0.1': 'localhost', '192.0.2.7': 'MAIL.zorg.test.' })),
    { name: 'MAIL.zorg.test', from: 'resolver' },
    'loopback aliases are passed over; a trailing dot is dropped',
  );
  t.same(await defaultHostname(fakeResolver('mail', { mail: ['192.0.2.7'] }, { '192.0.2.7': 'dhcp-7.isp.test' })), { name: 'mail', from: 'short' }, 'a reverse name of another host is not taken');
  t.same(await defaultHostname(fakeResolver('mail', {}, {})), { name: 'mail', from: 'short' }, 'short name + nothing found: the short name');
  t.same(await defaultHostname(fakeResolver('mail', { mail: ['127.0.0.1'] }, { '127.0.0.1': 'localhost.localdomain' })), { name: 'mail', from: 'short' }, 'localhost.localdomain is no FQDN of this host');

  // a resolver that never answers does not hold up start for long
  const hanging: HostnameResolver = { hostname: () => 'mail', lookup: () => new Promise(() => undefined), lookupService: () => new Promise(() => undefined) };
  const started = Date.now();
  t.same(await defaultHostname(hanging, 200), { name: 'mail', from: 'short' }, 'a hanging resolver: the short name');
  t.ok(Date.now() - started < 2_000, `bounded (${Date.now() - started} ms)`);

  t.ok(isFqdn('relay.zorg.test'));
  t.notOk(isFqdn('relay'));
  t.notOk(isFqdn('localhost.localdomain'));
});

t.test('check-config: the default filled in, and a dotless name said on stderr', async (t) => {
  const dir = tempDir(t, 'zegel-hostname-');
  const dotless = path.join(dir, 'dotless.yaml');
  fs.writeFileSync(dotless, stringify({ smtp: { hostname: 'zegelhost' } }));
  let r = await runZegel(['check-config', '--config', dotless]);
  t.equal(r.code, 0, r.stderr);
  t.equal((JSON.parse(r.stdout) as { smtp: { hostname: string } }).smtp.hostname, 'zegelhost');
  t.match(r.stderr, /^warning: smtp\.hostname "zegelhost" has no dot: next hops with reject_non_fqdn_helo_hostname .* refuse it .*set smtp\.hostname to this host's fully qualified name$/m);

  const dotted = path.join(dir, 'dotted.yaml');
  fs.writeFileSync(dotted, stringify({ smtp: { hostname: 'relay.zorg.test' } }));
  r = await runZegel(['check-config', '--config', dotted]);
  t.equal(r.code, 0, r.stderr);
  t.notMatch(r.stderr, /smtp\.hostname/, 'a dotted name: no warning');

  const unset = path.join(dir, 'unset.yaml');
  fs.writeFileSync(unset, stringify({}));
  r = await runZegel(['check-config', '--config', unset]);
  t.equal(r.code, 0, r.stderr);
  const expected = await defaultHostname(systemResolver);
  t.equal((JSON.parse(r.stdout) as { smtp: { hostname: string } }).smtp.hostname, expected.name, `left out: this host's name (${expected.name}, from ${expected.from}) in the effective configuration`);
  t.equal(/smtp\.hostname ".*" has no dot/.test(r.stderr), !expected.name.includes('.'), 'warned exactly when this host has no FQDN');
});

/** A next hop that records the EHLO name of each session and the messages it accepts. */
async function ehloSink(t: Teardown): Promise<{ url: string; ehlo: string[]; messages: Array<{ to: string[]; raw: string }> }> {
  const ehlo: string[] = [];
  const messages: Array<{ to: string[]; raw: string }> = [];
  const server = new SMTPServer({
    authOptional: true,
    disabledCommands: ['STARTTLS', 'AUTH'],
    logger: false,
    onMailFrom: (_address, session, callback) => {
      ehlo.push(session.hostNameAppearsAs);
      callback();
    },
    onData: (stream, session, callback) => {
      const chunks: Buffer[] = [];
      stream.on('data', (c: Buffer) => chunks.push(c));
      stream.on('end', () => {
        messages.push({ to: session.envelope.rcptTo.map((r) => r.address), raw: Buffer.concat(chunks).toString('utf8') });
        callback();
      });
    },
  });
  // a relay stopped with SIGTERM drops its pooled connections: smtp-server reports the reset as an 'error' event
  server.on('error', () => {});
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())));
  return { url: `smtp://127.0.0.1:${(server.server.address() as { port: number }).port}`, ehlo, messages };
}

t.test('zegel start: a dotless name is warned about; the next hop sees the name in EHLO and in Message-IDs', async (t) => {
  const dir = tempDir(t, 'zegel-hostname-start-');
  const sink = await ehloSink(t);
  const base = (data: string) => ({
    organisation: { name: 'Voorbeeldzorg', domains: ['zorg.test'] },
    data: { dir: data },
    delivery: { target: sink.url },
  });

  // a dotless name: start says so, naming the key
  const shortPort = await freePort();
  const short = await startChildRelay(t, path.join(dir, 'short.yaml'), { ...base('short-data'), smtp: { hostname: 'zegelhost', listen: `127.0.0.1:${shortPort}` } });
  const warn = short.output().split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Record<string, unknown>).find((l) => l.setting === 'smtp.hostname');
  t.ok(warn, 'a log line names smtp.hostname');
  t.match(warn, { level: 40, hostname: 'zegelhost', msg: /has no dot: next hops with reject_non_fqdn_helo_hostname .* refuse it/ });
  short.child.kill('SIGTERM');
  await short.exited;

  // a fully qualified name: no warning; EHLO and the notification's Message-ID carry it
  const port = await freePort();
  const readerPort = await freePort();
  const relay = await startChildRelay(t, path.join(dir, 'fqdn.yaml'), {
    ...base('fqdn-data'),
    smtp: { hostname: 'relay.zorg.test', listen: `127.0.0.1:${port}` },
    reader: { listen: `127.0.0.1:${readerPort}`, publicUrl: `http://127.0.0.1:${readerPort}` },
  });
  t.notMatch(relay.output(), /"setting":"smtp\.hostname"/, 'a dotted name: no warning');
  const transport = nodemailer.createTransport({ host: '127.0.0.1', port, secure: false, ignoreTLS: true });
  t.teardown(() => transport.close());
  // one internal recipient (the original) and one external (a notification the relay makes)
  await transport.sendMail({ envelope: { from: 'jan@zorg.test', to: ['piet@zorg.test', 'klant@elders.test'] }, from: 'jan@zorg.test', to: 'piet@zorg.test, klant@elders.test', subject: 'Dossier', text: 'Het BSN is 123456782.', messageId: '<origineel-1@werkplek.zorg.test>' });
  const notification = await waitFor(() => sink.messages.find((m) => m.to.includes('klant@elders.test')), 20_000, 'the notification at the next hop');
  await waitFor(() => sink.messages.find((m) => m.to.includes('piet@zorg.test')), 20_000, 'the original at the next hop');
  t.ok(sink.ehlo.length >= 1, 'the next hop saw an EHLO');
  t.same([...new Set(sink.ehlo)], ['relay.zorg.test'], 'EHLO relay.zorg.test on every session');
  t.match(notification.raw, /^Message-ID: <[A-Za-z0-9_-]+@relay\.zorg\.test>\r?$/im, 'the relay-made notification\'s Message-ID ends in @relay.zorg.test');
  t.match(sink.messages.find((m) => m.to.includes('piet@zorg.test'))!.raw, /^Message-ID: <origineel-1@werkplek\.zorg\.test>\r?$/im, 'the original keeps its own Message-ID');
});
