import fs from 'node:fs';
import path from 'node:path';
import { simpleParser } from 'mailparser';
import t from 'tap';
import { stringify } from 'yaml';
import { runZegel } from './helpers/child-relay.js';
import { startMxWorld, submitMail } from './helpers/mx-world.js';
import { startRelay, tempDir, waitFor } from './helpers/relay.js';
import { storeView } from './helpers/store-view.js';

// Mail that carries a link key (a notification) leaves over mx only with a
// verified certificate, even where the admin's default is `may`: the plain
// message to the same host goes (recorded as unverified), the notification
// waits with 4.7.5 and never reaches the host. Proven on the host's own
// received bytes.
const NET = '127.0.21';
const FROM = 'jan@zorg.test';

const world = await startMxWorld(t);
const host = await world.host('mx.zelfgetekend.test', `${NET}.11`, { pair: world.pki.selfSigned(['mx.zelfgetekend.test']) });
world.mx('zelfgetekend.test', [['mx.zelfgetekend.test', 10]]);
const good = await world.host('mx.goed.test', `${NET}.12`);
world.mx('goed.test', [['mx.goed.test', 10]]);

const dir = tempDir(t);
const dataDir = path.join(dir, 'data');
const { relay, port } = await startRelay(t, world.config({ receipts: { sender: false }, delivery: { tls: { default: 'may' } } }), { dataDir });
const view = storeView(relay.sqlite);
const notifications = (): string[] => (relay.sqlite.db.prepare(`SELECT id FROM messages WHERE origin = 'notification' ORDER BY received_at`).all() as Array<{ id: string }>).map((r) => r.id);

t.test('plain mail goes under may; the notification to the same host waits for verify', async (t) => {
  const plainId = await submitMail(t, port, FROM, ['els@zelfgetekend.test'], 'Afspraak om tien uur.');
  await waitFor(() => view.getRecipients(plainId)[0]!.state === 'delivered', 15_000, 'the plain message delivered');
  t.match(view.events(plainId).find((e) => e.type === 'delivered')!.detail.tls, { verified: false, policy: 'may', error: 'DEPTH_ZERO_SELF_SIGNED_CERT' });

  const secureId = await submitMail(t, port, FROM, ['piet@zelfgetekend.test'], 'Het BSN is 123456782.', 'Dossier');
  const notification = await waitFor(() => notifications().find((id) => view.getRecipients(id)[0]?.address === 'piet@zelfgetekend.test'), 20_000, 'the notification queued');
  await waitFor(() => view.events(notification).some((e) => e.type === 'deferred'), 15_000, 'its first attempt');
  const deferred = view.events(notification).find((e) => e.type === 'deferred')!;
  t.match(String(deferred.detail.reply), /^454 4\.7\.5 TLS policy verify: the certificate of mx\.zelfgetekend\.test is not trusted/);
  t.match(deferred.detail.tls, { policy: 'verify', verified: false });
  t.equal(host.messages.length, 1, 'only the plain message reached the host');
  for (const m of host.messages) t.notMatch((await simpleParser(m.raw)).text ?? '', /\/m\/[A-Za-z0-9_-]{22}#/, 'no link crossed the unverified session');
  t.ok(secureId);
});

t.test('a notification to a host with a trusted certificate is delivered verified', async (t) => {
  const queueId = await submitMail(t, port, FROM, ['kees@goed.test'], 'Het BSN is 123456782.', 'Dossier');
  await waitFor(() => good.messages.length === 1, 20_000, 'the notification delivered');
  t.match((await simpleParser(good.messages[0]!.raw)).text ?? '', /\/m\/[A-Za-z0-9_-]{22}#/, 'it is the notification with its link');
  const id = notifications().find((n) => view.getRecipients(n)[0]?.address === 'kees@goed.test')!;
  await waitFor(() => view.getRecipients(id)[0]!.state === 'delivered', 10_000, 'its delivery recorded');
  t.match(view.events(id).find((e) => e.type === 'delivered')!.detail.tls, { verified: true, verifiedBy: 'delivery.tls.ca', policy: 'verify' });

  const configFile = path.join(dir, 'zegel.yaml');
  fs.writeFileSync(configFile, stringify({ data: { dir: dataDir } }));
  const shown = await runZegel(['messages', 'show', queueId, '--json', '--config', configFile]);
  t.equal(shown.code, 0, shown.stderr);
  const out = JSON.parse(shown.stdout) as { recipients: Array<{ address: string; notification: { state: string; tls: Record<string, unknown> | null } }> };
  t.match(out.recipients, [{ address: 'kees@goed.test', notification: { state: 'delivered', tls: { version: /^TLSv1\.[23]$/, verified: true, verifiedBy: 'delivery.tls.ca', mtaSts: 'none', policy: 'verify' } } }], 'zegel messages show gives the notification\'s TLS');
  const human = await runZegel(['messages', 'show', queueId, '--config', configFile]);
  t.match(human.stdout, /kees@goed\.test .*notification delivered.*\n {4}notification TLS: TLSv1\.[23] \S+, verified by delivery\.tls\.ca, MTA-STS none\n/);
});
