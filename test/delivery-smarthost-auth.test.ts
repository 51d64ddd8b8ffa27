import fs from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { freePort } from './helpers/child-relay.js';
import { submitMail } from './helpers/mx-world.js';
import { startRelay, tempDir, waitFor } from './helpers/relay.js';
import { startSink } from './helpers/sink.js';
import { storeView } from './helpers/store-view.js';
import { createPki } from './helpers/test-pki.js';
import { SmtpPool } from '../src/deliver/smtp-pool.js';
import { startTlsSink } from './helpers/tls-sink.js';

// A smarthost with a login: smtps:// and smtp:// with STARTTLS, the
// certificate verified against delivery.tls.ca, the login seen at the sink,
// a refused login deferred (4.7.0), a smarthost without STARTTLS never given
// the password, and the password in no log line.
const NET = '127.0.22';
const FROM = 'jan@zorg.test';
const PASSWORD = 'geheim-Wachtwoord-7f3a!';

const dir = tempDir(t);
const pki = createPki(t);
const passwordFile = path.join(dir, 'smarthost.password');
fs.writeFileSync(passwordFile, `${PASSWORD}\n`, { mode: 0o600 });
const cert = pki.leaf(['smarthost.test'], { ips: [`${NET}.11`, `${NET}.12`, `${NET}.13`] });
const port = await freePort();
const smtps = await startTlsSink(t, { host: `${NET}.11`, port, key: cert.key, cert: cert.cert, secure: true, auth: { user: 'zegel', password: PASSWORD } });
const starttls = await startTlsSink(t, { host: `${NET}.12`, port, key: cert.key, cert: cert.cert, auth: { user: 'zegel', password: PASSWORD } });
const noTls = await startTlsSink(t, { host: `${NET}.13`, port, key: cert.key, cert: cert.cert, hideSTARTTLS: true, auth: { user: 'zegel', password: PASSWORD } });
const selfSignedPair = pki.selfSigned(['smarthost.test'], { ips: [`${NET}.14`] });
const selfSigned = await startTlsSink(t, { host: `${NET}.14`, port, key: selfSignedPair.key, cert: selfSignedPair.cert, auth: { user: 'zegel', password: PASSWORD } });
const internal = await startSink(t);

function relayFor(target: string) {
  return startRelay(t, {
    organisation: { name: 'Voorbeeldzorg', domains: ['zorg.test'] },
    receipts: { sender: false },
    delivery: { target, internalTarget: internal.url, auth: { user: 'zegel', passwordFile }, tls: { ca: pki.ca.certFile }, timeout: '5s' },
  });
}

t.test('smtps:// with AUTH: logged in over verified TLS', async (t) => {
  const { relay, port: smtpPort, logs, dataDir } = await relayFor(`smtps://${NET}.11:${port}`);
  const view = storeView(relay.sqlite);
  const id = await submitMail(t, smtpPort, FROM, ['piet@extern.test']);
  await waitFor(() => view.getRecipients(id)[0]!.state === 'delivered', 15_000, 'delivered');
  t.match(smtps.messages[0], { secure: true, user: 'zegel', to: ['piet@extern.test'] }, 'the sink saw the login over TLS');
  t.match(view.events(id).find((e) => e.type === 'delivered')!.detail.tls, { version: /^TLSv1\.[23]$/, verified: true, verifiedBy: 'delivery.tls.ca', mtaSts: null, policy: 'verify' });

  // the smarthost's password changes: the next session's login is refused, and the mail waits
  smtps.options.auth!.password = 'een-ander-wachtwoord';
  await smtps.down();
  await smtps.up();
  const waiting = await submitMail(t, smtpPort, FROM, ['els@extern.test']);
  const deferred = await waitFor(() => view.events(waiting).find((e) => e.type === 'deferred'), 15_000, 'deferred');
  t.match(String(deferred.detail.reply), /^454 4\.7\.0 127\.0\.22\.11 refused the login for zegel: 535 5\.7\.8/);
  t.equal(view.getRecipients(waiting)[0]!.state, 'pending', 'retried later, not bounced');
  t.ok(smtps.authFailures >= 1);
  smtps.options.auth!.password = PASSWORD;
  t.notMatch(logs(), PASSWORD, 'the password is in no log line');
  for (const file of ['zegel.db', 'zegel.db-wal'].map((f) => path.join(dataDir, f)).filter((f) => fs.existsSync(f))) {
    t.notMatch(fs.readFileSync(file).toString('latin1'), PASSWORD, `nor in ${path.basename(file)}`);
  }
});

t.test('smtp:// with STARTTLS and AUTH', async (t) => {
  const { relay, port: smtpPort, logs } = await relayFor(`smtp://${NET}.12:${port}`);
  const view = storeView(relay.sqlite);
  const id = await submitMail(t, smtpPort, FROM, ['kees@extern.test']);
  await waitFor(() => view.getRecipients(id)[0]!.state === 'delivered', 15_000, 'delivered');
  t.match(starttls.messages[0], { secure: true, user: 'zegel' });
  t.notMatch(logs(), PASSWORD);
});

t.test('a smarthost without STARTTLS never gets the password', async (t) => {
  const { relay, port: smtpPort, logs } = await relayFor(`smtp://${NET}.13:${port}`);
  const view = storeView(relay.sqlite);
  const id = await submitMail(t, smtpPort, FROM, ['anna@extern.test']);
  const deferred = await waitFor(() => view.events(id).find((e) => e.type === 'deferred'), 15_000, 'deferred');
  t.match(String(deferred.detail.reply), /^454 4\.7\.4 TLS policy verify: 127\.0\.22\.13 did not start TLS/);
  t.equal(noTls.authFailures, 0, 'no AUTH was tried');
  t.equal(noTls.messages.length, 0);
  t.notMatch(logs(), PASSWORD);
});

t.test('the pool never logs in over a session it did not verify, whatever level it is given', async (t) => {
  const pool = new SmtpPool({ host: `${NET}.14`, port, level: 'encrypt', auth: { user: 'zegel', pass: PASSWORD } }, { hostname: 'zegel.test', maxConnections: 1, timeout: 5_000 });
  t.teardown(() => pool.close());
  const err = await pool.send({ from: FROM, to: ['x@extern.test'] }, { bytes: Buffer.from('Subject: x\r\n\r\nx\r\n') }).catch((e: unknown) => e);
  t.match(err, { code: 454, kind: 'tls', reply: /^454 4\.7\.5 the certificate of 127\.0\.22\.14 is not verified \(DEPTH_ZERO_SELF_SIGNED_CERT\); the login for zegel is only sent over a verified session/ });
  t.equal(selfSigned.authFailures, 0, 'no AUTH was tried');
  t.equal(selfSigned.messages.length, 0);
});

t.test('a password file that cannot be read stops the start with a named error', async (t) => {
  await t.rejects(
    startRelay(t, { organisation: { domains: ['zorg.test'] }, delivery: { target: `smtps://${NET}.11:${port}`, auth: { user: 'zegel', passwordFile: path.join(dir, 'missing') } } }),
    { code: 'ZEGEL_DELIVERY_FILE', message: /delivery\.auth\.passwordFile: cannot read .*missing \(ENOENT\)/ },
  );
});
