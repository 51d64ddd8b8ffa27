import fs from 'node:fs';
import path from 'node:path';
import { simpleParser } from 'mailparser';
import t from 'tap';
import { systemClock } from '../src/clock.js';
import { launchBrowser } from './helpers/browser.js';
import { freePort } from './helpers/child-relay.js';
import { cfLines, docBlock, substitute } from './helpers/integration-doc.js';
import { orgMainCf, postfixInstalled, startPostfix, type PostfixInstance } from './helpers/postfix.js';
import { startRelay, tempDir, waitFor, type TestRelay } from './helpers/relay.js';
import { startSink, type Received, type TestSink } from './helpers/sink.js';
import { swaks } from './helpers/smtp-client.js';

/**
 * Zegel behind a real Postfix, as docs/integration.md describes it (its master.cf
 * block is read from the doc): Postfix hands
 * every message to Zegel as an after-queue content_filter (transport `zegel`),
 * Zegel delivers into Postfix's re-injection listener (no content_filter
 * there), and Postfix delivers to the Internet (its relayhost: `internet`, a
 * TestSink) or, for the organisation's own domain zorg.test, to the mailbox
 * server (`mailbox`, a second TestSink, via transport_maps).
 *
 *   swaks ─▶ Postfix :submit ─content_filter─▶ Zegel ─▶ Postfix :reinject ─┬─▶ internet (relayhost)
 *                                                                         └─▶ mailbox (zorg.test)
 */

interface Setup {
  relay: TestRelay;
  postfix: PostfixInstance;
  internet: TestSink;
  mailbox: TestSink;
  dir: string;
}

async function setup(): Promise<Setup> {
  const dir = tempDir(t, 'zegel-postfix-');
  const internet = await startSink(t);
  const mailbox = await startSink(t);
  const [zegelPort, submitPort, reinjectPort, readerPort] = [await freePort(), await freePort(), await freePort(), await freePort()];
  fs.mkdirSync(path.join(dir, 'zegel'));
  const relay = await startRelay(
    t,
    {
      organisation: { name: 'Voorbeeldzorg', domains: ['zorg.test'] },
      smtp: { listen: `127.0.0.1:${zegelPort}` },
      // back into Postfix, which delivers to the Internet and to the organisation's mailboxes
      delivery: { target: `smtp://127.0.0.1:${reinjectPort}`, internalTarget: `smtp://127.0.0.1:${reinjectPort}` },
      reader: { listen: `127.0.0.1:${readerPort}`, publicUrl: `http://127.0.0.1:${readerPort}` },
      verification: { default: 'none' },
    },
    { clock: systemClock, dataDir: path.join(dir, 'zegel', 'data') },
  );
  fs.mkdirSync(path.join(dir, 'postfix'));
  const postfix = await startPostfix(t, path.join(dir, 'postfix'), {
    port: submitPort,
    main: orgMainCf({ internet: internet.port, mailbox: mailbox.port, zegel: zegelPort }),
    // docs/integration.md's master.cf block as written, with this test's re-injection port
    master: cfLines(substitute(docBlock('master.cf'), { '10026': reinjectPort }, {}, 'master.cf block')),
  });
  return { relay, postfix, internet, mailbox, dir };
}

/** The message's headers and body after the leading trace fields (Received:), as Postfix and Zegel prepend them. */
function withoutTrace(raw: Buffer): { trace: number; rest: string } {
  let text = raw.toString('latin1');
  let trace = 0;
  for (;;) {
    const match = /^(?:Received|Return-Path):[^\r\n]*\r\n(?:[ \t][^\r\n]*\r\n)*/i.exec(text);
    if (!match) return { trace, rest: text };
    text = text.slice(match[0].length);
    trace++;
  }
}

const has = (m: Received, needle: string) => m.raw.includes(needle);
const events = (relay: TestRelay, sql: string, ...args: unknown[]) => relay.relay.sqlite.db.prepare(sql).all(...args) as Array<Record<string, string>>;

async function submit(s: Setup, from: string, to: string[], file: string): Promise<void> {
  const result = await swaks(s.postfix.port, ['--from', from, '--to', to.join(','), '--data', `@${file}`]);
  if (result.code !== 0 || !/250 2\.0\.0 Ok: queued as/.test(result.stdout)) throw new Error(`swaks into Postfix failed:\n${result.stdout}${result.stderr}`);
}

async function main(): Promise<void> {
  const s = await setup();
  const diag = () => `\n--- postfix log ---\n${s.postfix.log().slice(-6000)}\n--- zegel log ---\n${s.relay.logs().slice(-4000)}`;
  const bsnCanary = 'kanarie-5b1f0e7c2d';

  await t.test('a plain message arrives at the next hop identical apart from trace headers', async (t) => {
    const original = [
      'From: Jan de Vries <jan@zorg.test>',
      'To: Piet <piet@extern.test>',
      'Subject: =?utf-8?q?Verslag_overleg?=',
      'Date: Mon, 23 Nov 2026 13:05:09 +0100',
      'Message-ID: <plain-1@zorg.test>',
      'MIME-Version: 1.0',
      'Content-Type: text/plain; charset=utf-8',
      'Content-Transfer-Encoding: 8bit',
      '',
      'Beste Piet,',
      '',
      '.een regel die met een punt begint',
      'Groet, Jan — één regel in UTF-8',
      '',
    ].join('\r\n');
    const file = path.join(s.dir, 'plain.eml');
    // swaks ends DATA with CRLF . CRLF after the file's last byte: the file has no final line ending
    fs.writeFileSync(file, original.slice(0, -2));
    await submit(s, 'jan@zorg.test', ['piet@extern.test'], file);
    const delivered = await waitFor(() => s.internet.messages.find((m) => has(m, '<plain-1@zorg.test>')), 60_000, `the plain message at the relayhost${diag()}`).catch((err) => {
      throw new Error(`${err.message}${diag()}`);
    });
    t.equal(delivered.from, 'jan@zorg.test', 'envelope sender kept');
    t.same(delivered.to, ['piet@extern.test'], 'envelope recipient kept');
    const { trace, rest } = withoutTrace(delivered.raw);
    t.equal(trace, 3, 'three Received: fields: Postfix (submission), Zegel, Postfix (re-injection)');
    t.equal(rest, Buffer.from(original, 'utf8').toString('latin1'), 'headers and body byte-identical after the trace fields');
    t.match(delivered.raw.toString('latin1'), /^Received: [^\r\n]*\r\n(?:\t[^\r\n]*\r\n)*Received: [^\r\n]*\r\n\tby \S+ \(Zegel\)/, 'the second Received: is Zegel\'s');
    t.notOk(s.mailbox.messages.some((m) => has(m, '<plain-1@zorg.test>')), 'nothing at the mailbox server');
    const received = events(s.relay, "SELECT * FROM events WHERE type = 'received'");
    t.equal(received.length, 1, 'Zegel received it once');
  });

  await t.test('a sensitive message arrives as one notification per recipient; the body never reaches the Internet', async (t) => {
    const original = [
      'From: Jan de Vries <jan@zorg.test>',
      'To: piet@extern.test, klaas@extern.test',
      'Subject: Dossier',
      'Date: Mon, 23 Nov 2026 13:10:00 +0100',
      'Message-ID: <secure-1@zorg.test>',
      'MIME-Version: 1.0',
      'Content-Type: text/plain; charset=utf-8',
      '',
      `Het BSN van de client is 123456782. ${bsnCanary}`,
      '',
    ].join('\r\n');
    const file = path.join(s.dir, 'secure.eml');
    fs.writeFileSync(file, original);
    await submit(s, 'jan@zorg.test', ['piet@extern.test', 'klaas@extern.test'], file);
    const notifications = await waitFor(
      () => {
        const found = s.internet.messages.filter((m) => /^X-Zegel-Origin: v2[ \r\n]/m.test(m.raw.toString('latin1')));
        return found.length >= 2 ? found : undefined;
      },
      60_000,
      'two notifications',
    ).catch((err) => {
      throw new Error(`${err.message}${diag()}`);
    });
    t.same(notifications.map((m) => m.to).flat().sort(), ['klaas@extern.test', 'piet@extern.test'], 'one notification per recipient');
    for (const n of notifications) {
      t.equal(n.to.length, 1, 'each notification has one envelope recipient');
      const mail = await simpleParser(n.raw);
      t.ok((mail.text ?? '').split(/\r?\n/).some((l) => /^\s*http:\/\/127\.0\.0\.1:\d+\/m\/[A-Za-z0-9_-]{22}#\S+\s*$/.test(l)), 'the link alone on a line');
      t.equal(withoutTrace(n.raw).trace, 1, 'passed Postfix once after Zegel made it (one Received:, the re-injection listener\'s)');
    }
    // the receipt goes to the sender's mailbox, through Postfix
    const receipt = await waitFor(() => s.mailbox.messages.find((m) => m.to.includes('jan@zorg.test')), 60_000, `the sender receipt at the mailbox server${diag()}`);
    t.match(receipt.raw.toString('latin1'), /^X-Zegel-Origin: v2[ \r\n]/m, 'the receipt is Zegel\'s own');
    for (const sink of [s.internet, s.mailbox]) {
      for (const m of sink.messages) {
        t.notOk(has(m, bsnCanary) || has(m, '123456782'), 'the original body reaches no next hop');
      }
    }
  });

  await t.test("Zegel's own mails pass Postfix without looping", async (t) => {
    // let every queue run and retry settle
    await waitFor(() => s.postfix.queued().length === 0, 60_000, `Postfix's queue to empty${diag()}`);
    await new Promise((resolve) => setTimeout(resolve, 4_000));
    t.same(s.postfix.queued(), [], 'nothing waits in Postfix');
    const notifications = s.internet.messages.filter((m) => /^X-Zegel-Origin: v2[ \r\n]/m.test(m.raw.toString('latin1')));
    t.same(notifications.map((m) => m.to).flat().sort(), ['klaas@extern.test', 'piet@extern.test'], 'still exactly one notification per recipient');
    t.equal(s.mailbox.messages.filter((m) => m.to.includes('jan@zorg.test')).length, 1, 'exactly one receipt');
    t.equal(s.internet.messages.filter((m) => has(m, '<plain-1@zorg.test>')).length, 1, 'the plain message once');
    // the re-injection listener has no content_filter: Zegel's own mails never come back to it
    const fromClients = events(s.relay, "SELECT * FROM events WHERE type = 'received' AND json_extract(detail, '$.origin') = 'ingress'");
    t.equal(fromClients.length, 2, 'Zegel received over SMTP only the two messages the client sent');
    t.notMatch(s.relay.logs(), /"relayOrigin":true/, 'no own mail came back');
    t.equal(events(s.relay, "SELECT * FROM events WHERE type = 'classified'").length, 2, 'two classifications, one per client message');
    t.notMatch(s.postfix.log(), /status=(bounced|deferred)/, 'Postfix neither deferred nor bounced anything');
    t.notMatch(s.postfix.log(), /mail forwarding loop|too many hops/i, 'no loop detected by Postfix');

    // a notification that does come back through the filter (e.g. an alias or a
    // forward on the organisation's server) passes Zegel once more, unclassified
    const piet = notifications.find((m) => m.to.includes('piet@extern.test'))!;
    const file = path.join(s.dir, 'returned.eml');
    fs.writeFileSync(file, withoutTrace(piet.raw).rest);
    const before = s.internet.messages.length;
    await submit(s, piet.from, ['piet@extern.test'], file);
    await waitFor(() => s.internet.messages.length > before, 60_000, `the returned notification${diag()}`);
    await waitFor(() => s.postfix.queued().length === 0, 60_000, "Postfix's queue to empty");
    await new Promise((resolve) => setTimeout(resolve, 3_000));
    t.equal(s.internet.messages.length, before + 1, 'delivered once');
    t.match(s.relay.logs(), /"relayOrigin":true[^\n]*"message accepted"/, 'Zegel recognised its own mail (X-Zegel-Origin survived Postfix)');
    t.equal(events(s.relay, "SELECT * FROM events WHERE type = 'classified'").length, 2, 'and did not classify it');
    t.equal(events(s.relay, "SELECT * FROM events WHERE type = 'received' AND json_extract(detail, '$.origin') = 'ingress'").length, 3, 'it passed Zegel a second time, and not a third');
  });

  await t.test("a reply from the reader reaches the sender's mailbox through Postfix", async (t) => {
    const notification = s.internet.messages.find((m) => m.to.includes('klaas@extern.test') && /^X-Zegel-Origin: v2[ \r\n]/m.test(m.raw.toString('latin1')))!;
    const link = ((await simpleParser(notification.raw)).text ?? '').split(/\r?\n/).map((l) => l.trim()).find((l) => /\/m\/[A-Za-z0-9_-]{22}#/.test(l))!;
    const { page } = await launchBrowser(t);
    const tab = await page();
    await tab.goto(link);
    await tab.getByRole('button', { name: 'Beantwoorden' }).waitFor({ timeout: 30_000 });
    await tab.getByRole('button', { name: 'Beantwoorden' }).click();
    const canary = 'antwoord-9d2e4a61';
    await tab.getByLabel('Bericht').fill(`Beste Jan,\n\nOntvangen. ${canary}`);
    await tab.getByRole('button', { name: 'Versturen' }).click();
    await tab.getByText('Uw antwoord is verstuurd.').first().waitFor({ timeout: 30_000 });
    const reply = await waitFor(() => s.mailbox.messages.find((m) => m.from === 'klaas@extern.test' && m.to.includes('jan@zorg.test')), 60_000, `the reply at the mailbox server${diag()}`);
    const mail = await simpleParser(reply.raw);
    t.equal(mail.subject, 'Re: Dossier');
    t.equal(mail.inReplyTo, '<secure-1@zorg.test>', 'threaded under the original');
    t.match(mail.text, canary, 'the reply text');
    t.ok(mail.headers.get('x-zegel-origin'), 'X-Zegel-Origin set');
    t.notOk(s.internet.messages.some((m) => has(m, canary)), 'the reply never went to the Internet');
    await waitFor(() => s.postfix.queued().length === 0, 60_000, "Postfix's queue to empty");
    t.equal(s.mailbox.messages.filter((m) => has(m, canary)).length, 1, 'delivered once');
  });
}

if (!postfixInstalled()) {
  t.plan(0, 'skip: postfix is not installed (Debian package postfix: /usr/sbin/postfix, /etc/postfix/master.cf, user postfix)');
} else {
  t.setTimeout(300_000);
  await main();
}
