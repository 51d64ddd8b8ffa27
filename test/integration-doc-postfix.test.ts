import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import Database from 'better-sqlite3';
import t from 'tap';
import { parse } from 'yaml';
import { freePort, startChildRelay, type ChildRelay } from './helpers/child-relay.js';
import { cfLines, docBlock, substitute } from './helpers/integration-doc.js';
import { POSTFIX, postfixInstalled, startPostfix, type PostfixInstance } from './helpers/postfix.js';
import { tempDir, waitFor } from './helpers/relay.js';
import { RawSmtp, run } from './helpers/smtp-client.js';
import { startSink, type Received, type TestSink } from './helpers/sink.js';

/**
 * docs/integration.md followed literally: its main.cf, master.cf and Zegel
 * blocks (marked `<!-- test:… -->`) are read from the document at test time,
 * never copied here, and run on a real private Postfix and the real CLI
 * (`bin/zegel start --config FILE`). The test changes only:
 *
 * - the documented ports 2525 (Zegel), 10026 (re-injection), 8080 (reader) and
 *   25 (Postfix, in the swaks lines) to free loopback ports, and `data.dir`
 *   (`/var/lib/zegel`) to a temporary folder;
 * - the site around the blocks, as an operator's main.cf has it: Postfix is
 *   `mx.zorg.example`, the Internet is its relayhost (a test SMTP server) and
 *   the organisation's mailboxes a second one (`transport_maps`), and the
 *   site-wide hardening `smtpd_helo_required = yes`,
 *   `smtpd_helo_restrictions = reject_non_fqdn_helo_hostname` applies to
 *   every smtpd that does not override it.
 *
 * It submits the doc's own swaks lines, mail from cron/root through `pickup`
 * (the doc's `myorigin`), and proves every message arrives where the doc says
 * (original for plain mail and internal recipients, a notification for an
 * external recipient of a BSN) and that nothing is bounced, deferred or left
 * behind. Without the doc's empty smtpd_*_restrictions on the re-injection
 * listener, the site's HELO check refuses a Zegel that greets with a short
 * host name (issue 13's lost mail): the probe below fails.
 */

const DOC_PORTS = { zegel: '2525', reinject: '10026', reader: '8080', postfix: '25' };
const DOC_DATA_DIR = '/var/lib/zegel';

interface Setup {
  dir: string;
  postfix: PostfixInstance;
  zegel: ChildRelay;
  dataDir: string;
  internet: TestSink;
  mailbox: TestSink;
  reinjectPort: number;
  check: string;
}

async function setup(): Promise<Setup> {
  const dir = tempDir(t, 'zegel-doc-postfix-');
  const internet = await startSink(t);
  const mailbox = await startSink(t);
  const [zegelPort, reinjectPort, readerPort, postfixPort] = [await freePort(), await freePort(), await freePort(), await freePort()];
  const dataDir = path.join(dir, 'zegel', 'data');
  fs.mkdirSync(path.dirname(dataDir), { recursive: true });

  const yaml = substitute(docBlock('zegel.yaml'), { [DOC_PORTS.zegel]: zegelPort, [DOC_PORTS.reinject]: reinjectPort, [DOC_PORTS.reader]: readerPort }, { [DOC_DATA_DIR]: dataDir }, 'Zegel block');
  const zegel = await startChildRelay(t, path.join(dir, 'zegel', 'zegel.yaml'), parse(yaml) as Record<string, unknown>);

  fs.mkdirSync(path.join(dir, 'postfix'));
  const postfix = await startPostfix(t, path.join(dir, 'postfix'), {
    port: postfixPort,
    main: [
      // the site (not from the doc)
      'myhostname = mx.zorg.example',
      'mydomain = zorg.example',
      'relay_domains = zorg.example',
      `relayhost = [127.0.0.1]:${internet.port}`,
      `transport_maps = inline:{ zorg.example=smtp:[127.0.0.1]:${mailbox.port} }`,
      'smtpd_helo_required = yes',
      'smtpd_helo_restrictions = reject_non_fqdn_helo_hostname',
      // the doc
      ...cfLines(substitute(docBlock('main.cf'), { [DOC_PORTS.zegel]: zegelPort }, {}, 'main.cf block')),
    ],
    master: cfLines(substitute(docBlock('master.cf'), { [DOC_PORTS.reinject]: reinjectPort }, {}, 'master.cf block')),
  });
  const check = substitute(docBlock('check'), { [DOC_PORTS.postfix]: postfixPort }, {}, '"Checking it" block');
  return { dir, postfix, zegel, dataDir, internet, mailbox, reinjectPort, check };
}

const text = (m: Received) => m.raw.toString('utf8');
const isNotification = (m: Received) => /^X-Zegel-Origin: v2[ \r\n]/m.test(m.raw.toString('latin1'));

async function main(): Promise<void> {
  const s = await setup();
  const diag = () => `\n--- postfix log ---\n${s.postfix.log().slice(-6000)}\n--- zegel log ---\n${s.zegel.output().slice(-4000)}`;
  const arrived = <T>(check: () => T, what: string) => waitFor(check, 20_000, what).catch((err: Error) => {
    throw new Error(`${err.message}${diag()}`);
  });

  await t.test("the re-injection listener takes what Zegel sends, whatever the site's HELO check", async (t) => {
    // Zegel without smtp.hostname on a host whose name has no dot greets with
    // that short name; the doc's empty smtpd_helo_restrictions let it in, and
    // a DSN (MAIL FROM:<>) to the sender too
    const short = os.hostname().split('.')[0] || 'zegel';
    const smtp = await RawSmtp.connect(s.reinjectPort);
    t.match(await smtp.command(`EHLO ${short}`), /^250/, `EHLO ${short}`);
    t.match(await smtp.command('MAIL FROM:<>'), /^250/, 'MAIL FROM:<> (a DSN)');
    t.match(await smtp.command('RCPT TO:<jan@zorg.example>'), /^250/, 'RCPT TO the sender: not 504 5.5.2 (reject_non_fqdn_helo_hostname)');
    t.match(await smtp.command('RCPT TO:<piet@extern.example>'), /^250/, 'RCPT TO an external recipient (a notification)');
    await smtp.command('RSET');
    smtp.close();
  });

  await t.test('the doc\'s "Checking it" swaks lines: every message arrives where the doc says', async (t) => {
    const lines = s.check.split('\n').filter((l) => l.startsWith('swaks '));
    t.equal(lines.length, 2, 'an ordinary mail and a BSN');
    for (const line of lines) {
      const result = await run('sh', ['-c', line]);
      t.match(result.stdout, /250 2\.0\.0 Ok: queued as/, `Postfix took: ${line.slice(0, 60)}…`);
    }
    const plain = await arrived(() => s.internet.messages.find((m) => text(m).includes('Gewoon een test.')), 'the ordinary mail at the Internet');
    t.equal(plain.from, 'jan@zorg.example');
    t.same(plain.to, ['piet@extern.example'], 'the original, to piet');
    const notification = await arrived(() => s.internet.messages.find((m) => isNotification(m) && m.to.includes('piet@extern.example')), "piet's notification at the Internet");
    t.same(notification.to, ['piet@extern.example'], 'one notification, for the external recipient');
    const original = await arrived(() => s.mailbox.messages.find((m) => m.to.includes('els@zorg.example')), "els's copy at the mailbox server");
    t.match(text(original), /Het BSN is 123456782\./, 'the internal recipient gets the original, though the message was encrypted for piet');
    t.notOk(isNotification(original), 'the original, not a notification');
    const receipt = await arrived(() => s.mailbox.messages.find((m) => m.to.includes('jan@zorg.example')), "jan's receipt at the mailbox server");
    t.ok(isNotification(receipt), "the receipt is Zegel's own mail");
    t.notOk(s.internet.messages.some((m) => text(m).includes('123456782')), 'the BSN reaches nobody outside');
  });

  await t.test("mail from cron or root through pickup passes Zegel (the doc's myorigin)", async (t) => {
    const message = 'Subject: cron-uitvoer\n\nback-up klaar\n';
    const result = await run(path.join(path.dirname(POSTFIX), 'sendmail'), ['-C', s.postfix.conf, '-i', 'piet@extern.example'], { input: message });
    t.equal(result.code, 0, `sendmail: ${result.stdout}${result.stderr}`);
    const cron = await arrived(() => s.internet.messages.find((m) => text(m).includes('back-up klaar')), 'the cron mail at the Internet');
    t.match(cron.from, /^root@zorg\.example$/, 'sender root@ the organisation domain (myorigin)');
  });

  await t.test('nothing bounced, deferred, held or left behind', async (t) => {
    await arrived(() => s.postfix.queued().length === 0, "Postfix's queue to empty");
    const db = new Database(path.join(s.dataDir, 'zegel.db'), { readonly: true, fileMustExist: true });
    t.teardown(() => db.close());
    await arrived(() => (db.prepare("SELECT count(*) AS n FROM jobs WHERE kind IN ('process', 'deliver', 'secure')").get() as { n: number }).n === 0, "Zegel's queue to empty");
    await arrived(() => s.postfix.queued().length === 0, "Postfix's queue to empty again");
    const recipients = db.prepare('SELECT state, count(*) AS n FROM recipients GROUP BY state').all() as Array<{ state: string; n: number }>;
    t.notOk(recipients.some((r) => r.state === 'pending' || r.state === 'bounced'), `every recipient delivered or encrypted: ${JSON.stringify(recipients)}`);
    const bad = db.prepare("SELECT type, detail FROM events WHERE type IN ('bounced', 'deferred', 'dsn-queued', 'held', 'postmaster-queued')").all();
    t.same(bad, [], 'Zegel bounced, deferred and held nothing');
    const logs = { diag: diag() };
    t.notMatch(s.postfix.log(), /status=(bounced|deferred)/, 'Postfix bounced and deferred nothing', logs);
    t.notMatch(s.postfix.log(), /\breject: /, 'Postfix rejected nothing', logs);
    t.match(s.postfix.log(), /postfix\/zegel\/smtp\[\d+\]: .* status=sent \(250 /, 'the log lines the doc names: the hand-over to Zegel');
    t.match(s.postfix.log(), /postfix\/reinject\/smtpd\[\d+\]: /, 'and the re-injection');
    // exactly: the ordinary mail, piet's notification, the cron mail; els's original, jan's receipt
    t.equal(s.internet.messages.length, 3, 'three messages at the Internet');
    t.equal(s.mailbox.messages.length, 2, 'two at the mailbox server');
  });
}

if (!postfixInstalled()) {
  t.plan(0, 'skip: postfix is not installed (Debian package postfix: /usr/sbin/postfix, /etc/postfix/master.cf, user postfix)');
} else {
  t.setTimeout(120_000);
  await main();
}
