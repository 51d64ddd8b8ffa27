import { spawnSync } from 'node:child_process';
import { storeView } from './helpers/store-view.js';
import fs from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { stringify } from 'yaml';
import { systemClock } from '../src/clock.js';
import { freePort, runZegel } from './helpers/child-relay.js';
import { POSTFIX, orgMainCf, postfixInstalled, startPostfix } from './helpers/postfix.js';
import { startRelay, tempDir, waitFor } from './helpers/relay.js';
import { startSink } from './helpers/sink.js';
import { swaks } from './helpers/smtp-client.js';

/**
 * Issue 13's exact chain, with a real private Postfix: the site's main.cf
 * carries `smtpd_helo_required = yes` and `smtpd_helo_restrictions =
 * reject_non_fqdn_helo_hostname`, the re-injection listener inherits them,
 * and Zegel greets with a short host name. Postfix and Zegel both said 250;
 * then Postfix answers 504 to Zegel's delivery, Zegel bounces, its DSN goes
 * to the same listener and gets 504, the notice to the postmaster gets 504
 * too. Nothing may be lost: the notice is held and visible (queue list,
 * messages, /readyz, metrics, error log), and once the admin fixes Postfix
 * and runs `zegel queue retry`, the postmaster is told.
 */

if (!postfixInstalled()) {
  t.plan(0, 'postfix is not installed');
} else {
  t.test('504 to a short HELO: message, DSN and postmaster notice refused; the notice is held, then delivered after queue retry', async (t) => {
    const dir = tempDir(t, 'zegel-helo-');
    const internet = await startSink(t);
    const mailbox = await startSink(t);
    const [zegelPort, submitPort, reinjectPort] = [await freePort(), await freePort(), await freePort()];
    const dataDir = path.join(dir, 'zegel', 'data');
    fs.mkdirSync(path.dirname(dataDir), { recursive: true });
    const relay = await startRelay(
      t,
      {
        organisation: { name: 'Voorbeeldzorg', domains: ['zorg.test'] },
        // a short name, as `hostname` gives on many machines: set explicitly, whatever the default becomes
        smtp: { listen: `127.0.0.1:${zegelPort}`, hostname: 'zegel' },
        delivery: { target: `smtp://127.0.0.1:${reinjectPort}`, internalTarget: `smtp://127.0.0.1:${reinjectPort}` },
        metrics: { listen: '127.0.0.1:0' },
        verification: { default: 'none' },
      },
      { clock: systemClock, dataDir },
    );
    const configFile = path.join(dir, 'zegel', 'zegel.yaml');
    fs.writeFileSync(configFile, stringify({ data: { dir: dataDir } }));
    fs.mkdirSync(path.join(dir, 'postfix'));
    const postfix = await startPostfix(t, path.join(dir, 'postfix'), {
      port: submitPort,
      main: [
        ...orgMainCf({ internet: internet.port, mailbox: mailbox.port, zegel: zegelPort }),
        // common site-wide hardening, inherited by every smtpd listener without overrides
        'smtpd_helo_required = yes',
        'smtpd_helo_restrictions = reject_non_fqdn_helo_hostname',
      ],
      master: [
        'zegel     unix  -       -       n       -       10      smtp',
        '  -o smtp_send_xforward_command=yes',
        '  -o disable_mime_output_conversion=yes',
        '  -o syslog_name=postfix/zegel',
        `127.0.0.1:${reinjectPort} inet n - n - - smtpd`,
        '  -o syslog_name=postfix/reinject',
        '  -o content_filter=',
        '  -o receive_override_options=no_unknown_recipient_checks,no_header_body_checks,no_milters',
        '  -o mynetworks=127.0.0.0/8',
        '  -o smtpd_recipient_restrictions=permit_mynetworks,reject',
      ],
    });

    const sent = await swaks(submitPort, ['--ehlo', 'client.zorg.test', '--from', 'arts@zorg.test', '--to', 'patient@example.com', '--header', 'Subject: helo chain', '--body', 'helo chain body']);
    t.equal(sent.code, 0, `Postfix accepted the message: ${sent.stdout}${sent.stderr}`);

    const store = storeView(relay.relay.sqlite);
    const queue = relay.relay.sqlite.queue;
    const held = await waitFor(() => queue.heldSync()[0], 60_000, 'held mail').catch((err: Error) => {
      throw new Error(`${err.message}\nzegel log:\n${relay.logs().slice(-4000)}\npostfix log:\n${postfix.log().slice(-3000)}`);
    });
    const notice = held.messageId!;
    const ids = (relay.relay.sqlite.db.prepare('SELECT id, origin FROM messages ORDER BY received_at').all() as Array<{ id: string; origin: string }>);
    const original = ids.find((m) => m.origin === 'ingress')!.id;
    const dsn = ids.find((m) => m.origin === 'dsn')!.id;
    t.match(store.getRecipients(original)[0], { address: 'patient@example.com', state: 'bounced', lastReply: /^504 5\.5\.2 .*Helo command rejected/ }, 'the message bounced on the short HELO');
    t.match(store.getRecipients(dsn)[0], { address: 'arts@zorg.test', state: 'bounced', lastReply: /^504 / }, 'its DSN to the sender was refused by the same listener');
    t.equal(store.getMessage(notice)!.origin, 'postmaster');
    t.match(store.getRecipients(notice)[0], { address: 'postmaster@zorg.test', state: 'pending', lastReply: /^504 / }, 'the notice to the postmaster was refused too and is held, not dropped');
    t.ok(store.events(notice).some((e) => e.type === 'held'), 'held on the audit trail');
    t.ok(fs.existsSync(path.join(dataDir, 'spool', `${notice}.eml`)), 'the held mail is still spooled');
    t.ok(relay.logs().split('\n').some((l) => l.includes('"level":50') && l.includes(notice)), 'an error log line');
    t.equal(internet.messages.length + mailbox.messages.length, 0, 'nothing was delivered anywhere');

    const readyz = JSON.parse(await (await fetch(`${relay.relay.opsUrl}/readyz`)).text()) as { status: string; details?: { held?: { messages: number } } };
    t.match(readyz, { status: 'degraded', details: { held: { messages: 1 } } }, '/readyz names the held mail');
    t.match(await (await fetch(`${relay.relay.opsUrl}/metrics`)).text(), /^zegel_held_messages 1$/m, 'zegel_held_messages 1');
    const list = await runZegel(['queue', 'list', '--config', configFile]);
    t.match(list.stdout, new RegExp(`${held.id.replace(/[.$]/g, '\\$&')}\\s+held\\b`), 'zegel queue list shows it held');
    const messages = await runZegel(['messages', 'list', '--held', '--json', '--config', configFile]);
    t.match(JSON.parse(messages.stdout), [{ queueId: notice, job: held.id, recipients: [{ address: 'postmaster@zorg.test', lastReply: /^504 / }] }], 'zegel messages list --held shows it');

    // the admin gives the re-injection listener FILTER_README's empty overrides and retries
    const conf = postfix.conf;
    const master = fs.readFileSync(path.join(conf, 'master.cf'), 'utf8').replace('  -o syslog_name=postfix/reinject\n', '  -o syslog_name=postfix/reinject\n  -o smtpd_helo_restrictions=\n');
    fs.writeFileSync(path.join(conf, 'master.cf'), master);
    const reload = spawnSync(POSTFIX, ['-c', conf, 'reload'], { encoding: 'utf8' });
    t.equal(reload.status, 0, reload.stderr);
    // a new smtpd process answers once master has re-read master.cf; retry until the notice is through
    const retry = await runZegel(['queue', 'retry', held.id, '--config', configFile]);
    t.equal(retry.code, 0, retry.stderr);
    await waitFor(
      async () => {
        if (mailbox.messages.length) return true;
        if (queue.heldSync().length) await runZegel(['queue', 'retry', held.id, '--config', configFile]);
        return false;
      },
      60_000,
      'the postmaster notice at the mailbox server',
    );
    const told = mailbox.messages[0]!;
    t.same(told.to, ['postmaster@zorg.test'], 'the postmaster is told');
    t.match(told.raw.toString('latin1'), /Final-Recipient: rfc822; arts@zorg\.test/);
    t.notMatch(told.raw.toString('latin1'), /helo chain body/, 'without the content');
    await waitFor(() => store.getRecipients(notice)[0]!.state === 'delivered', 10_000, 'notice delivered');
    t.equal(queue.heldSync().length, 0, 'nothing held any more');
  });
}
