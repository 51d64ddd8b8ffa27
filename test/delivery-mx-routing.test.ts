import fs from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { stringify } from 'yaml';
import { runZegel } from './helpers/child-relay.js';
import { startMxWorld, submitMail } from './helpers/mx-world.js';
import { startRelay, tempDir, waitFor } from './helpers/relay.js';
import { storeView } from './helpers/store-view.js';

// delivery.target mx: MX preference and fallback, the implicit MX, null MX, one
// transaction per domain, verified TLS to the MX name, and the TLS facts in the
// events, `zegel messages show` and `zegel audit`. Every host is a real SMTP
// server with a certificate from a test CA, found through a real DNS server.
const NET = '127.0.18';
const FROM = 'jan@zorg.test';

const world = await startMxWorld(t);
const a = await world.host('a.order.test', `${NET}.11`);
const b = await world.host('b.order.test', `${NET}.12`);
world.mx('order.test', [['b.order.test', 20], ['a.order.test', 10]]);

world.dns.zone.set('mx1.down.test', { A: [`${NET}.13`] }); // nothing listens there
const downMx2 = await world.host('mx2.down.test', `${NET}.14`);
world.mx('down.test', [['mx1.down.test', 10], ['mx2.down.test', 20]]);

const busy1 = await world.host('mx1.busy.test', `${NET}.15`, { refuseConnect: true });
const busy2 = await world.host('mx2.busy.test', `${NET}.16`);
world.mx('busy.test', [['mx1.busy.test', 10], ['mx2.busy.test', 20]]);

const rude = await world.host('mx1.rude.test', `${NET}.18`, { refuseConnect: { code: 554, message: '5.7.1 No SMTP service here' } });
const polite = await world.host('mx2.rude.test', `${NET}.19`);
world.mx('rude.test', [['mx1.rude.test', 10], ['mx2.rude.test', 20]]);
world.dns.zone.set('onlyrude.test', { MX: [{ exchange: 'mx1.rude.test', priority: 10 }] });

const bare = await world.host('bare.test', `${NET}.17`); // no MX: its A record is the implicit MX
world.dns.zone.set('nomail.test', { MX: [{ exchange: '', priority: 0 }] });

const dir = tempDir(t);
const dataDir = path.join(dir, 'data');
const { relay, port, logs } = await startRelay(t, world.config({ receipts: { sender: false }, delivery: { mx: { maxConnectionsPerDomain: 2 } } }), { dataDir });
const view = storeView(relay.sqlite);
const finished = (id: string) => view.getRecipients(id).every((r) => r.state !== 'pending');

t.test('the lowest preference first, over TLS verified against the MX name', async (t) => {
  const id = await submitMail(t, port, FROM, ['piet@order.test']);
  await waitFor(() => finished(id), 15_000, 'delivered');
  t.equal(a.messages.length, 1, 'a.order.test (preference 10) took it');
  t.equal(b.messages.length, 0, 'b.order.test (preference 20) was not needed');
  t.equal(a.messages[0]!.secure, true, 'over TLS');
  t.equal(a.messages[0]!.servername, 'a.order.test', 'SNI is the MX name, not the address');
  const delivered = view.events(id).find((e) => e.type === 'delivered')!;
  t.match(delivered.detail, { remoteMta: 'a.order.test', tls: { version: /^TLSv1\.[23]$/, cipher: /\w/, verified: true, verifiedBy: 'delivery.tls.ca', mtaSts: 'none', policy: 'verify' } });
  t.match(logs(), new RegExp(`"queueId":"${id}".*"result":"delivered".*"remoteMta":"a\\.order\\.test","tls":\\{"version":"TLSv1\\.[23]","cipher":"[^"]+","verified":true,"verifiedBy":"delivery\\.tls\\.ca"`), 'the delivery attempt log line carries the TLS facts');
});

t.test('at most maxConnectionsPerDomain sessions to a domain, reused', async (t) => {
  const before = { connections: a.connections, messages: a.messages.length };
  const ids = await Promise.all(Array.from({ length: 12 }, (_, i) => submitMail(t, port, FROM, [`r${i}@order.test`])));
  await waitFor(() => ids.every(finished), 20_000, 'all delivered');
  const mine = a.messages.slice(before.messages);
  t.equal(mine.length, 12);
  const sessions = new Set(mine.map((m) => m.sessionId));
  t.ok(sessions.size <= 2, `12 messages over ${sessions.size} sessions (at most 2)`);
  t.ok(a.connections - before.connections <= 2, `${a.connections - before.connections} new connections`);
});

t.test('an MX that does not answer or greets with 421 is passed over for the next', async (t) => {
  const first = await submitMail(t, port, FROM, ['els@down.test']);
  const second = await submitMail(t, port, FROM, ['els@busy.test']);
  await waitFor(() => finished(first) && finished(second), 20_000, 'both delivered');
  t.equal(downMx2.messages.length, 1, 'mx2.down.test took it after mx1 refused the connection');
  t.ok(busy1.connections >= 1, 'mx1.busy.test was tried');
  t.equal(busy1.messages.length, 0);
  t.equal(busy2.messages.length, 1, 'mx2.busy.test took it after the 421');
  t.match(logs(), /"mx":"mx1\.down\.test".*"MX host passed over"/);
});

t.test('a 5xx greeting is passed over, and alone it defers (never a bounce before TLS)', async (t) => {
  const id = await submitMail(t, port, FROM, ['jet@rude.test']);
  await waitFor(() => finished(id), 15_000, 'delivered');
  t.ok(rude.connections >= 1, 'mx1.rude.test was tried');
  t.equal(polite.messages.length, 1, 'mx2.rude.test took it');
  const only = await submitMail(t, port, FROM, ['jet@onlyrude.test']);
  const deferred = await waitFor(() => view.events(only).find((e) => e.type === 'deferred' || e.type === 'bounced'), 15_000, 'the attempt');
  t.equal(deferred.type, 'deferred', 'temporary: anyone on the path can inject a 5xx greeting');
  t.match(String(deferred.detail.reply), /^451 4\.4\.0 mx1\.rude\.test refused the session: 554 5\.7\.1 No SMTP service here/);
});

t.test('a domain without MX records is delivered to its own address (implicit MX)', async (t) => {
  const id = await submitMail(t, port, FROM, ['kees@bare.test']);
  await waitFor(() => finished(id), 15_000, 'delivered');
  t.equal(bare.messages.length, 1);
  t.equal(bare.messages[0]!.servername, 'bare.test');
});

t.test('one transaction per recipient domain', async (t) => {
  const before = { a: a.messages.length, bare: bare.messages.length };
  const id = await submitMail(t, port, FROM, ['een@order.test', 'twee@bare.test', 'drie@order.test']);
  await waitFor(() => finished(id), 15_000, 'delivered');
  t.same(a.messages.slice(before.a).map((m) => m.to), [['een@order.test', 'drie@order.test']], 'both order.test recipients in one transaction');
  t.same(bare.messages.slice(before.bare).map((m) => m.to), [['twee@bare.test']]);
  t.same(view.getRecipients(id).map((r) => [r.address, r.state, r.remoteMta]), [
    ['een@order.test', 'delivered', 'a.order.test'],
    ['twee@bare.test', 'delivered', 'bare.test'],
    ['drie@order.test', 'delivered', 'a.order.test'],
  ]);
});

t.test('a null MX (RFC 7505) bounces at once with 5.1.10 and a DSN', async (t) => {
  const id = await submitMail(t, port, FROM, ['niemand@nomail.test']);
  await waitFor(() => finished(id), 15_000, 'bounced');
  const [rcpt] = view.getRecipients(id);
  t.equal(rcpt!.state, 'bounced');
  t.match(rcpt!.lastReply, /^556 5\.1\.10 nomail\.test/);
  t.equal(view.events(id).filter((e) => e.type === 'deferred').length, 0, 'no retry');
  const dsn = await waitFor(() => world.internal.messages.find((m) => m.to.includes(FROM) && m.raw.toString().includes('niemand@nomail.test')), 10_000, 'the DSN');
  t.match(dsn.raw.toString(), /Status: 5\.1\.10/);
});

t.test('the TLS facts in zegel messages show and the audit export', async (t) => {
  const id = await submitMail(t, port, FROM, ['audit@order.test']);
  await waitFor(() => finished(id), 15_000, 'delivered');
  const configFile = path.join(dir, 'zegel.yaml');
  fs.writeFileSync(configFile, stringify({ data: { dir: dataDir } }));
  const shown = await runZegel(['messages', 'show', id, '--json', '--config', configFile]);
  t.equal(shown.code, 0, shown.stderr);
  const out = JSON.parse(shown.stdout) as { queueId: string; recipients: Array<{ address: string; state: string; tls: Record<string, unknown> }> };
  t.equal(out.queueId, id);
  t.match(out.recipients, [{ address: 'audit@order.test', state: 'delivered', tls: { version: /^TLSv1\.[23]$/, verified: true, verifiedBy: 'delivery.tls.ca', mtaSts: 'none', policy: 'verify' } }]);
  const human = await runZegel(['messages', 'show', id, '--config', configFile]);
  t.match(human.stdout, /audit@order\.test {2}delivered .*via a\.order\.test\n {4}TLS: TLSv1\.[23] \S+, verified by delivery\.tls\.ca, MTA-STS none\n/);
  const exported = await runZegel(['audit', '--message', id, '--event', 'delivered', '--config', configFile]);
  t.equal(exported.code, 0, exported.stderr);
  const records = exported.stdout.trim().split('\n').map((line) => JSON.parse(line) as { tls?: Record<string, unknown> });
  t.equal(records.length, 1);
  t.match(records[0]!.tls, { version: /^TLSv1\.[23]$/, cipher: /\w/, verified: true, verifiedBy: 'delivery.tls.ca', mtaSts: 'none' });
});
