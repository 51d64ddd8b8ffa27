import t from 'tap';
import { ManualClock } from '../src/clock.js';
import { startMxWorld, submitMail } from './helpers/mx-world.js';
import { startRelay, waitFor } from './helpers/relay.js';
import { storeView } from './helpers/store-view.js';

// TLS policy verify (the default for mx): a self-signed certificate, one for
// another name, and a host without STARTTLS are each refused with a temporary
// 4.7.x, the message never crosses in plain text, and after giveUpAfter it is
// bounced with a DSN whose diagnostic names the reason. A domain an admin
// lowers to `encrypt` is delivered, recorded as unverified with the reason.
const NET = '127.0.19';
const FROM = 'jan@zorg.test';
const MINUTE = 60_000;

const world = await startMxWorld(t);
const selfSigned = await world.host('mx.selfsigned.test', `${NET}.11`, { pair: world.pki.selfSigned(['mx.selfsigned.test']) });
world.mx('selfsigned.test', [['mx.selfsigned.test', 10]]);
const wrongName = await world.host('mx.wrongname.test', `${NET}.12`, { pair: world.pki.leaf(['mail.elders.test']) });
world.mx('wrongname.test', [['mx.wrongname.test', 10]]);
const plain = await world.host('mx.plain.test', `${NET}.13`, { hideSTARTTLS: true });
world.mx('plain.test', [['mx.plain.test', 10]]);
const lowered = await world.host('mx.lowered.test', `${NET}.14`, { pair: world.pki.selfSigned(['mx.lowered.test']) });
world.mx('lowered.test', [['mx.lowered.test', 10]]);

const clock = new ManualClock(Date.now());
const { relay, port, logs } = await startRelay(t, world.config({ receipts: { sender: false }, delivery: { tls: { policies: { 'lowered.test': 'encrypt' } } } }), { clock });
const view = storeView(relay.sqlite);
const attempts = (id: string) => view.events(id).filter((e) => e.type === 'deferred' || e.type === 'bounced' || e.type === 'delivered');

const cases = [
  { domain: 'selfsigned.test', sink: selfSigned, reply: /^454 4\.7\.5 TLS policy verify: the certificate of mx\.selfsigned\.test is not trusted \(DEPTH_ZERO_SELF_SIGNED_CERT\)/, error: 'DEPTH_ZERO_SELF_SIGNED_CERT' },
  { domain: 'wrongname.test', sink: wrongName, reply: /^454 4\.7\.5 TLS policy verify: the certificate of mx\.wrongname\.test does not name mx\.wrongname\.test/, error: 'ERR_TLS_CERT_ALTNAME_INVALID' },
  { domain: 'plain.test', sink: plain, reply: /^454 4\.7\.4 TLS policy verify: mx\.plain\.test did not start TLS/, error: 'STARTTLS' },
];
const ids = new Map<string, string>();
for (const c of cases) ids.set(c.domain, await submitMail(t, port, FROM, [`piet@${c.domain}`], `Bericht voor ${c.domain}`));

t.test('verify refuses each host with a temporary 4.7.x and sends nothing', async (t) => {
  for (const c of cases) {
    const id = ids.get(c.domain)!;
    await waitFor(() => attempts(id).length === 1, 15_000, `the first attempt to ${c.domain}`);
    const [event] = attempts(id);
    t.equal(event!.type, 'deferred', `${c.domain}: deferred, not bounced`);
    t.match(String(event!.detail.reply), c.reply, `${c.domain}: the reply names the reason`);
    t.match(event!.detail.tls, { verified: false, policy: 'verify', error: c.error, version: null }, `${c.domain}: the facts say why`);
    t.ok(c.sink.connections >= 1, `${c.domain}: the host was contacted`);
    t.equal(c.sink.messages.length, 0, `${c.domain}: no message reached the host, in plain text or otherwise`);
    t.equal(view.getRecipients(id)[0]!.state, 'pending');
  }
});

t.test('after giveUpAfter each is bounced with a DSN that names the TLS failure', async (t) => {
  await relay.backend.queue.idle();
  clock.set(clock.now() + 11 * MINUTE);
  relay.backend.queue.poke();
  for (const c of cases) {
    const id = ids.get(c.domain)!;
    await waitFor(() => view.getRecipients(id)[0]!.state === 'bounced', 15_000, `${c.domain} bounced`);
    const dsn = await waitFor(() => world.internal.messages.find((m) => m.raw.toString().includes(`piet@${c.domain}`) && m.to.includes(FROM)), 10_000, `the DSN for ${c.domain}`);
    const text = dsn.raw.toString().replace(/\r\n\s+/g, ' ');
    t.match(text, /Status: 4\.7\.[45]/, `${c.domain}: the DSN's status is the TLS one`);
    t.match(text, /Diagnostic-Code: smtp; 454 4\.7\.[45] TLS policy verify/, `${c.domain}: the diagnostic names the policy and reason`);
    const human = c.error === 'STARTTLS' ? [/bood geen versleutelde verbinding aan/, /offered no encrypted connection/] : [/zijn certificaat werd niet aanvaard/, /its certificate was not accepted/];
    for (const words of human) t.match(text, words, `${c.domain}: the sender reads why, in Dutch and English`);
    t.equal(c.sink.messages.length, 0, `${c.domain}: still nothing delivered`);
  }
});

t.test('a domain lowered to encrypt is delivered over TLS, recorded as unverified', async (t) => {
  const id = await submitMail(t, port, FROM, ['els@lowered.test']);
  await waitFor(() => view.getRecipients(id)[0]!.state === 'delivered', 15_000, 'delivered');
  t.equal(lowered.messages[0]!.secure, true, 'over TLS');
  const delivered = view.events(id).find((e) => e.type === 'delivered')!;
  t.match(delivered.detail.tls, { version: /^TLSv1\.[23]$/, verified: false, verifiedBy: null, policy: 'encrypt', error: 'DEPTH_ZERO_SELF_SIGNED_CERT' });
  t.match(logs(), /"level":40,[^\n]*delivery\.tls\.policies lowers lowered\.test to encrypt: notifications, receipts and code mails/, 'the start-up warned that notifications to it go unverified');
});
