import fs from 'node:fs';
import { storeView } from './helpers/store-view.js';
import path from 'node:path';
import t, { type Test } from 'tap';
import nodemailer from 'nodemailer';
import { simpleParser, type ParsedMail } from 'mailparser';
import { ManualClock } from '../src/clock.js';
import { verifyOrigin } from '../src/crypto/origin-stamp.js';
import type { Relay } from '../src/relay.js';
import { startRelay, waitFor } from './helpers/relay.js';
import { startSink, type Received } from './helpers/sink.js';
import { RawSmtp } from './helpers/smtp-client.js';

type Tap = Test;

const SENDER = 'afzender@org.test';

function rawMessage(tag: string, to: string): string {
  return [
    `From: Afzender <${SENDER}>`,
    `To: <${to}>`,
    `Subject: bounce ${tag}`,
    `Message-ID: <bounce-${tag}@org.test>`,
    'X-Original-Marker: kept-in-dsn',
    '',
    `Body ${tag}: this body must not appear in the DSN.`,
    '',
  ].join('\r\n');
}

async function submit(t: Tap, port: number, from: string, to: string[], raw: string): Promise<string> {
  const transport = nodemailer.createTransport({ host: '127.0.0.1', port, secure: false, ignoreTLS: true });
  t.teardown(() => transport.close());
  const info = await transport.sendMail({ envelope: { from, to }, raw });
  const match = /^250 2\.6\.0 Ok: queued as (\S+)$/.exec(info.response);
  if (!match) throw new Error(`unexpected reply ${info.response}`);
  return match[1]!;
}

/** A raw SMTP transaction, so RCPT parameters and MAIL FROM:<> are sent exactly as written. */
async function submitRaw(port: number, mailFrom: string, rcptLines: string[], raw: string): Promise<string> {
  const client = await RawSmtp.connect(port);
  try {
    for (const line of ['EHLO probe.test', mailFrom, ...rcptLines]) {
      const reply = await client.command(line);
      if (!reply.startsWith('250')) throw new Error(`${line} -> ${reply}`);
    }
    const go = await client.command('DATA');
    if (!go.startsWith('354')) throw new Error(`DATA -> ${go}`);
    const reply = await client.command(`${raw.replace(/\r\n$/, '')}\r\n.`);
    const match = /^250 2\.6\.0 Ok: queued as (\S+)$/.exec(reply);
    if (!match) throw new Error(`end of DATA -> ${reply}`);
    return match[1]!;
  } finally {
    client.close();
  }
}

const spoolFiles = (dataDir: string) => fs.readdirSync(path.join(dataDir, 'spool')).filter((n) => n.endsWith('.eml'));

async function settle(relay: Relay, ms = 300): Promise<void> {
  relay.backend.queue.poke();
  await new Promise((resolve) => setTimeout(resolve, ms));
}

/** The DSN message queued for `id`, if any (from the dsn-queued event). */
function dsnIdOf(relay: Relay, id: string): string | undefined {
  const event = storeView(relay.sqlite).events(id).find((e) => e.type === 'dsn-queued');
  return event ? (event.detail as { dsn: string }).dsn : undefined;
}

/** The DSN of `id` was tried and deferred. */
function dsnStuck(relay: Relay, id: string): boolean {
  const dsnId = dsnIdOf(relay, id);
  return !!dsnId && storeView(relay.sqlite).getRecipients(dsnId).some((r) => r.state === 'pending' && r.attempts > 0);
}

/** What happened to a DSN that never arrived, for the failure message. */
function dsnState(relay: Relay, id: string): string {
  const dsnId = dsnIdOf(relay, id);
  if (!dsnId) return 'no DSN was queued';
  return JSON.stringify(storeView(relay.sqlite).getRecipients(dsnId).map((r) => ({ state: r.state, attempts: r.attempts, lastReply: r.lastReply })));
}

/** Waits for `n` DSNs at the internal sink; on time-out fails with what the relay knows. */
async function awaitDsns(t: Tap, relay: Relay, dsnSink: { messages: Received[] }, id: string, n = 1): Promise<boolean> {
  try {
    // the clock stands still, so a DSN attempt that was deferred will not run again: stop waiting then
    await waitFor(() => dsnSink.messages.length >= n || dsnStuck(relay, id), 8_000, 'DSN at the internal target');
    if (dsnSink.messages.length >= n) return true;
    throw new Error('deferred');
  } catch {
    t.fail(`no DSN arrived at the internal target; DSN job state: ${dsnState(relay, id)}`);
    return false;
  }
}

/** The top-level MIME parts of a multipart message: content type and body of each. */
function mimeParts(raw: string, boundary: string): Array<{ type: string; body: string }> {
  const chunks = raw.split(`\r\n--${boundary}`);
  const last = chunks.pop() ?? '';
  if (!last.startsWith('--')) throw new Error('no closing boundary');
  return chunks.slice(1).map((chunk) => {
    const text = chunk.replace(/^\r\n/, '');
    const end = text.indexOf('\r\n\r\n');
    const head = end === -1 ? text : text.slice(0, end);
    const type = /^Content-Type:\s*([^;\r\n]+)/im.exec(head)?.[1]?.trim().toLowerCase() ?? 'text/plain';
    return { type, body: end === -1 ? '' : text.slice(end + 4) };
  });
}

function deliveryStatusPart(raw: string): string {
  const match = /Content-Type: message\/delivery-status\r\n(?:[^\r\n]+\r\n)*\r\n([\s\S]*?)\r\n--/.exec(raw);
  if (!match) throw new Error('no message/delivery-status part');
  return match[1]!;
}

t.test('550 5.1.1 for one recipient: a DSN reaches the sender through the internal target; the other recipient is delivered', async (t) => {
  const sink = await startSink(t, {
    rcpt: (address) => (address === 'onbekend@example.com' ? { code: 550, message: '5.1.1 <onbekend@example.com>: Recipient address rejected: User unknown' } : undefined),
  });
  const dsnSink = await startSink(t);
  const clock = new ManualClock(Date.now());
  const { relay, port, dataDir } = await startRelay(t, { smtp: { hostname: 'zegel.org.test' }, delivery: { target: sink.url, internalTarget: dsnSink.url } }, { clock });
  const id = await submit(t, port, SENDER, ['bekend@example.com', 'onbekend@example.com'], rawMessage('one', 'bekend@example.com'));

  await waitFor(() => sink.messages.length === 1, 10_000, 'delivery of the accepted recipient');
  t.same(sink.messages[0]!.to, ['bekend@example.com'], 'the accepted recipient is delivered');
  await waitFor(() => storeView(relay.sqlite).getRecipients(id).every((r) => r.state !== 'pending'), 5_000, 'both recipients final');
  const byAddress = new Map(storeView(relay.sqlite).getRecipients(id).map((r) => [r.address, r]));
  t.equal(byAddress.get('bekend@example.com')!.state, 'delivered');
  t.equal(byAddress.get('onbekend@example.com')!.state, 'bounced');
  t.match(byAddress.get('onbekend@example.com')!.lastReply, /^550 5\.1\.1 /);
  const events = storeView(relay.sqlite).events(id);
  t.equal(events.filter((e) => e.type === 'bounced').length, 1, 'one bounced event');
  t.equal(events.find((e) => e.type === 'bounced')!.recipient, 'onbekend@example.com');
  t.equal(events.filter((e) => e.type === 'dsn-queued').length, 1, 'one DSN queued');
  t.equal(events.filter((e) => e.type === 'deferred').length, 0, 'a 5xx is not retried');

  if (!(await awaitDsns(t, relay, dsnSink, id))) return;
  await settle(relay);
  t.equal(dsnSink.messages.length, 1, 'exactly one DSN');
  const dsn = dsnSink.messages[0]!;
  t.equal(dsn.from, '', 'the DSN is sent with MAIL FROM:<>');
  t.same(dsn.to, [SENDER], 'the DSN goes to the original envelope sender');
  t.equal(sink.messages.length, 1, 'the DSN does not go to the external target');
  const raw = dsn.raw.toString('latin1');

  const parsed: ParsedMail = await simpleParser(dsn.raw);
  const contentType = parsed.headers.get('content-type') as { value: string; params: Record<string, string> };
  t.equal(contentType.value, 'multipart/report');
  t.equal(contentType.params['report-type'], 'delivery-status');
  const origin = parsed.headers.get('x-zegel-origin');
  t.type(origin, 'string', 'the DSN carries X-Zegel-Origin');
  t.ok(await verifyOrigin(relay.signer, dsn.raw, dsn.to), 'X-Zegel-Origin verifies for the DSN (Message-ID, body, recipient)');
  t.equal(parsed.headers.get('auto-submitted'), 'auto-replied');
  const parts = mimeParts(raw, contentType.params.boundary!);
  t.same(
    parts.map((p) => p.type),
    ['text/plain', 'message/delivery-status', 'text/rfc822-headers'],
    'human-readable part, delivery-status part, original headers part, in that order',
  );
  t.same(
    parsed.attachments.map((a) => a.contentType),
    ['text/rfc822-headers'],
    'mailparser sees the original headers part as the only attachment',
  );
  t.match(parsed.subject, /Undelivered/);
  t.match(parsed.text, /onbekend@example\.com/, 'the human-readable part names the failed recipient');
  t.notMatch(parsed.text, /<bekend@example\.com>/, 'the delivered recipient is not in the human-readable part');

  const status = deliveryStatusPart(raw);
  t.match(status, /^Reporting-MTA: dns; zegel\.org\.test\r\n/m);
  t.match(status, /^Final-Recipient: rfc822; onbekend@example\.com\r?$/m);
  t.match(status, /^Action: failed\r?$/m);
  t.match(status, /^Status: 5\.1\.1\r?$/m);
  t.match(status, /^Diagnostic-Code: smtp; 550 5\.1\.1 .*User unknown\r?$/m);
  t.match(status, /^Remote-MTA: dns; 127\.0\.0\.1\r?$/m);
  t.notMatch(status, /[ <]bekend@example\.com/, 'the accepted recipient is not in the report');
  t.equal((status.match(/^Final-Recipient:/gm) ?? []).length, 1, 'one recipient reported');

  const headersPart = /Content-Type: text\/rfc822-headers\r\n(?:[^\r\n]+\r\n)*\r\n([\s\S]*?)\r\n--/.exec(raw);
  t.ok(headersPart, 'a text/rfc822-headers part');
  t.match(headersPart?.[1], /^Message-ID: <bounce-one@org\.test>\r?$/m, 'the original headers are included');
  t.match(headersPart?.[1], /^X-Original-Marker: kept-in-dsn\r?$/m);
  t.notMatch(raw, /this body must not appear/, 'the original body is not returned');
  t.match(parsed.attachments[0]?.content.toString('latin1'), /^Message-ID: <bounce-one@org\.test>\r?$/m, 'mailparser finds the original headers');

  const dsnId = dsnIdOf(relay, id)!;
  await waitFor(() => spoolFiles(dataDir).length === 0 && [id, dsnId].every((m) => storeView(relay.sqlite).getMessage(m)!.state === 'done'), 5_000, 'spool emptied').catch(() => undefined);
  t.same(spoolFiles(dataDir), [], 'the spool is empty once the message is finished and the DSN delivered');
  t.equal(storeView(relay.sqlite).getMessage(id)!.state, 'done', 'the message is done');
  t.equal(storeView(relay.sqlite).getMessage(dsnId)!.state, 'done', 'the DSN message is done');
  t.equal(storeView(relay.sqlite).getRecipients(dsnId)[0]!.state, 'delivered', 'the DSN recipient is delivered');
});

t.test('no DSN when the original envelope sender was <>', async (t) => {
  const sink = await startSink(t, { rcpt: () => ({ code: 550, message: '5.1.1 User unknown' }) });
  const dsnSink = await startSink(t);
  const { relay, port, dataDir } = await startRelay(t, { delivery: { target: sink.url, internalTarget: dsnSink.url } }, { clock: new ManualClock(Date.now()) });
  const id = await submitRaw(port, 'MAIL FROM:<>', ['RCPT TO:<onbekend@example.com>'], rawMessage('null', 'onbekend@example.com'));
  t.equal(storeView(relay.sqlite).getMessage(id)!.mailFrom, '', 'stored with the null sender');

  await waitFor(() => storeView(relay.sqlite).getRecipients(id)[0]!.state === 'bounced', 10_000, 'bounce');
  await waitFor(() => spoolFiles(dataDir).length === 0, 5_000, 'spool emptied');
  await settle(relay);
  t.same(storeView(relay.sqlite).events(id).filter((e) => e.type === 'dsn-queued'), [], 'no DSN queued');
  t.equal(dsnSink.messages.length, 0, 'no DSN at the internal target');
  t.equal(sink.messages.length, 0, 'nothing at the external target either');
  const messages = relay.sqlite.db.prepare('SELECT COUNT(*) AS n FROM messages').get() as { n: number };
  t.equal(messages.n, 1, 'no DSN message was made');
});

t.test('no DSN for a recipient that asked NOTIFY=NEVER', async (t) => {
  const sink = await startSink(t, { rcpt: () => ({ code: 550, message: '5.1.1 User unknown' }) });
  const dsnSink = await startSink(t);
  const { relay, port, dataDir } = await startRelay(t, { delivery: { target: sink.url, internalTarget: dsnSink.url } }, { clock: new ManualClock(Date.now()) });
  const id = await submitRaw(port, `MAIL FROM:<${SENDER}>`, ['RCPT TO:<stil@example.com> NOTIFY=NEVER'], rawMessage('never', 'stil@example.com'));
  t.same(storeView(relay.sqlite).getRecipients(id)[0]!.notify, ['NEVER'], 'NOTIFY=NEVER is stored');

  try {
    // a refused recipient is bounced at the first attempt; a deferral means it was never refused
    await waitFor(() => storeView(relay.sqlite).getRecipients(id)[0]!.state !== 'pending' || storeView(relay.sqlite).getRecipients(id)[0]!.attempts > 0, 8_000, 'first attempt');
    if (storeView(relay.sqlite).getRecipients(id)[0]!.state !== 'bounced') throw new Error('not bounced');
  } catch {
    const [rcpt] = storeView(relay.sqlite).getRecipients(id);
    t.fail(`the 550 recipient was never bounced: state ${rcpt!.state}, attempts ${rcpt!.attempts}, last reply ${JSON.stringify(rcpt!.lastReply)}`);
    return;
  }
  await waitFor(() => spoolFiles(dataDir).length === 0, 5_000, 'spool emptied');
  await settle(relay);
  t.same(storeView(relay.sqlite).events(id).filter((e) => e.type === 'dsn-queued'), [], 'no DSN queued');
  t.equal(dsnSink.messages.length, 0, 'no DSN sent');
});

t.test('mixed NOTIFY: only the recipient that wants failure reports is in the DSN', async (t) => {
  const sink = await startSink(t, { rcpt: () => ({ code: 550, message: '5.1.1 User unknown' }) });
  const dsnSink = await startSink(t);
  const { relay, port } = await startRelay(t, { delivery: { target: sink.url, internalTarget: dsnSink.url } }, { clock: new ManualClock(Date.now()) });
  const id = await submitRaw(
    port,
    `MAIL FROM:<${SENDER}>`,
    ['RCPT TO:<stil@example.com> NOTIFY=NEVER', 'RCPT TO:<melden@example.com> NOTIFY=FAILURE'],
    rawMessage('mixed', 'melden@example.com'),
  );
  try {
    await waitFor(() => storeView(relay.sqlite).getRecipients(id).every((r) => r.state !== 'pending' || r.attempts > 0), 8_000, 'first attempt');
    if (!storeView(relay.sqlite).getRecipients(id).every((r) => r.state === 'bounced')) throw new Error('not bounced');
  } catch {
    t.fail(`the 550 recipients were never bounced: ${JSON.stringify(storeView(relay.sqlite).getRecipients(id).map((r) => [r.address, r.state, r.lastReply]))}`);
    return;
  }
  if (!(await awaitDsns(t, relay, dsnSink, id))) return;
  const status = deliveryStatusPart(dsnSink.messages[0]!.raw.toString('latin1'));
  t.match(status, /^Final-Recipient: rfc822; melden@example\.com\r?$/m);
  t.notMatch(status, /stil@example\.com/, 'the NOTIFY=NEVER recipient is not reported');
});

t.test('5xx at the end of DATA bounces every recipient with one DSN', async (t) => {
  let dataCalls = 0;
  const sink = await startSink(t, {
    data: () => {
      dataCalls++;
      return { code: 554, message: '5.6.0 Message content rejected' };
    },
  });
  const dsnSink = await startSink(t);
  const { relay, port, dataDir } = await startRelay(t, { delivery: { target: sink.url, internalTarget: dsnSink.url } }, { clock: new ManualClock(Date.now()) });
  const to = ['een@example.com', 'twee@example.net', 'drie@example.org'];
  const id = await submit(t, port, SENDER, to, rawMessage('data', 'een@example.com'));

  await waitFor(() => storeView(relay.sqlite).getRecipients(id).every((r) => r.state === 'bounced'), 10_000, 'all bounced');
  t.equal(dataCalls, 1, 'one transaction, not retried');
  t.equal(storeView(relay.sqlite).events(id).filter((e) => e.type === 'bounced').length, 3);
  t.equal(storeView(relay.sqlite).events(id).filter((e) => e.type === 'dsn-queued').length, 1, 'one DSN queued for all three');
  if (!(await awaitDsns(t, relay, dsnSink, id))) return;
  await settle(relay);
  t.equal(dsnSink.messages.length, 1, 'one DSN');
  const raw = dsnSink.messages[0]!.raw.toString('latin1');
  const status = deliveryStatusPart(raw);
  for (const address of to) t.match(status, new RegExp(`^Final-Recipient: rfc822; ${address.replace(/\./g, '\\.')}\\r?$`, 'm'), `${address} reported`);
  t.equal((status.match(/^Action: failed\r?$/gm) ?? []).length, 3);
  t.equal((status.match(/^Status: 5\.6\.0\r?$/gm) ?? []).length, 3);
  t.equal((status.match(/^Diagnostic-Code: smtp; 554 5\.6\.0 Message content rejected\r?$/gm) ?? []).length, 3);
  const parsed = await simpleParser(dsnSink.messages[0]!.raw);
  t.equal((parsed.headers.get('content-type') as { value: string }).value, 'multipart/report');
  await waitFor(() => spoolFiles(dataDir).length === 0, 5_000, 'spool emptied').catch(() => undefined);
  t.same(spoolFiles(dataDir), [], 'spool empty');
});
