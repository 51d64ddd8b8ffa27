import t from 'tap';
import { policyText, startMtaStsServer } from './helpers/mta-sts-server.js';
import { startMxWorld, submitMail } from './helpers/mx-world.js';
import { startRelay, waitFor } from './helpers/relay.js';
import { storeView } from './helpers/store-view.js';

// MTA-STS (RFC 8461) over mx, with the policy served over HTTPS on loopback
// and its TXT record from the test DNS: enforce keeps mail away from an MX the
// policy does not list (even one with a valid certificate and the better
// preference) and raises the level to verify; no listed MX defers with
// 4.7.5; testing delivers and reports; the policy is fetched once and cached.
const NET = '127.0.20';
const FROM = 'jan@zorg.test';

const world = await startMxWorld(t);
const sts = await startMtaStsServer(t, `${NET}.1`, world.pki);
function publish(domain: string, mode: 'enforce' | 'testing', mx: string[], id = '20261204'): void {
  world.dns.zone.set(`_mta-sts.${domain}`, { TXT: [[`v=STSv1; id=${id}`]] });
  world.dns.zone.set(`mta-sts.${domain}`, { A: [`${NET}.1`] });
  sts.set(domain, { body: policyText(mode, mx) });
}

const rogue = await world.host('rogue.sts.test', `${NET}.11`);
const listed = await world.host('mx1.sts.test', `${NET}.12`);
world.mx('sts.test', [['rogue.sts.test', 10], ['mx1.sts.test', 20]]);
publish('sts.test', 'enforce', ['mx1.sts.test']);

const strict = await world.host('mx.strict.test', `${NET}.13`);
world.mx('strict.test', [['mx.strict.test', 10]]);
publish('strict.test', 'enforce', ['mail.elders.test']);

const trial = await world.host('rogue.proef.test', `${NET}.14`);
world.mx('proef.test', [['rogue.proef.test', 10]]);
publish('proef.test', 'testing', ['mx.proef.test']);

const low = await world.host('mx.laag.test', `${NET}.15`, { pair: world.pki.selfSigned(['mx.laag.test']) });
world.mx('laag.test', [['mx.laag.test', 10]]);
publish('laag.test', 'enforce', ['*.laag.test']);

const { relay, port, logs } = await startRelay(
  t,
  world.config({ receipts: { sender: false }, delivery: { mx: { mtaSts: { ca: world.pki.ca.certFile } }, tls: { policies: { 'laag.test': 'may' } } } }),
);
const view = storeView(relay.sqlite);

t.test('enforce: only the MX the policy lists, verified', async (t) => {
  const id = await submitMail(t, port, FROM, ['piet@sts.test']);
  await waitFor(() => view.getRecipients(id)[0]!.state === 'delivered', 15_000, 'delivered');
  t.equal(listed.messages.length, 1, 'mx1.sts.test (listed, preference 20) took it');
  t.equal(rogue.connections, 0, 'rogue.sts.test (not listed, preference 10) was never contacted');
  t.match(view.events(id).find((e) => e.type === 'delivered')!.detail, { remoteMta: 'mx1.sts.test', tls: { verified: true, mtaSts: 'enforce', policy: 'verify' } });
  t.match(logs(), /"unlisted":\["rogue\.sts\.test"\].*MTA-STS enforce: MX hosts not in the policy are not used/);

  const again = await submitMail(t, port, FROM, ['els@sts.test']);
  await waitFor(() => view.getRecipients(again)[0]!.state === 'delivered', 15_000, 'the second delivered');
  t.equal(sts.count('sts.test'), 1, 'the policy was fetched once: the second delivery used the cache (same TXT id)');
});

t.test('enforce with no MX in the policy: deferred with 4.7.5, nothing sent', async (t) => {
  const id = await submitMail(t, port, FROM, ['kees@strict.test']);
  const deferred = await waitFor(() => view.events(id).find((e) => e.type === 'deferred'), 15_000, 'deferred');
  t.match(String(deferred.detail.reply), /^454 4\.7\.5 MTA-STS enforce: no MX of strict\.test is listed in its policy \(MX mx\.strict\.test; policy allows mail\.elders\.test\)/);
  t.match(deferred.detail.tls, { mtaSts: 'enforce', verified: false, error: 'MTA-STS-MX-MISMATCH' });
  t.equal(strict.connections, 0, 'the unlisted MX was never contacted');
});

t.test('enforce raises a domain the admin set to may to verify', async (t) => {
  const id = await submitMail(t, port, FROM, ['anna@laag.test']);
  const deferred = await waitFor(() => view.events(id).find((e) => e.type === 'deferred'), 15_000, 'deferred');
  t.match(String(deferred.detail.reply), /^454 4\.7\.5 TLS policy verify: the certificate of mx\.laag\.test is not trusted/);
  t.match(deferred.detail.tls, { mtaSts: 'enforce', policy: 'verify' });
  t.equal(low.messages.length, 0);
});

t.test('testing: delivered to an unlisted MX, and reported', async (t) => {
  const id = await submitMail(t, port, FROM, ['bert@proef.test']);
  await waitFor(() => view.getRecipients(id)[0]!.state === 'delivered', 15_000, 'delivered');
  t.equal(trial.messages.length, 1);
  t.match(view.events(id).find((e) => e.type === 'delivered')!.detail.tls, { mtaSts: 'testing', verified: true });
  t.match(logs(), /"domain":"proef\.test".*MTA-STS testing: MX hosts not in the policy \(delivered anyway\)/);
});
