import nodemailer from 'nodemailer';
import { simpleParser } from 'mailparser';
import t, { type Test } from 'tap';
import { startRelay, waitFor, type TestRelay } from './helpers/relay.js';
import { startSink, type TestSink } from './helpers/sink.js';

/** Opens a link through the reader's API as the page does: open, then verify (method none). */
async function openLink(base: string, linkId: string): Promise<number> {
  const headers = { 'X-Zegel-Reader': '1', 'Content-Type': 'application/json' };
  const opened = await fetch(`${base}/api/links/${linkId}/open`, { method: 'POST', headers, body: '{}' });
  const cookie = (opened.headers.get('set-cookie') ?? '').split(';')[0]!;
  const verified = await fetch(`${base}/api/links/${linkId}/verify`, { method: 'POST', headers: { ...headers, Cookie: cookie }, body: '{}' });
  return verified.status;
}

async function setup(t: Test, firstOpen: boolean): Promise<{ relay: TestRelay; target: TestSink; internal: TestSink }> {
  const target = await startSink(t);
  const internal = await startSink(t);
  const relay = await startRelay(t, {
    organisation: { name: 'Voorbeeldzorg', domains: ['zorg.test'] },
    delivery: { target: target.url, internalTarget: internal.url },
    verification: { default: 'none' },
    receipts: { sender: false, firstOpen },
  });
  const transport = nodemailer.createTransport({ host: '127.0.0.1', port: relay.port, secure: false, ignoreTLS: true });
  t.teardown(() => transport.close());
  await transport.sendMail({ envelope: { from: 'jan@zorg.test', to: ['piet@extern.test'] }, from: 'Jan <jan@zorg.test>', to: 'piet@extern.test', subject: 'Uitslag', text: 'BSN 111222333' });
  return { relay, target, internal };
}

async function linkId(target: TestSink): Promise<string> {
  const raw = await waitFor(() => target.messages.find((m) => m.to.includes('piet@extern.test'))?.raw, 20_000, 'the notification');
  return /\/m\/([A-Za-z0-9_-]{22})#/.exec((await simpleParser(raw)).text ?? '')![1]!;
}

t.test('receipts.firstOpen: the sender gets one mail when the recipient first opens the message', async (t) => {
  const { relay, target, internal } = await setup(t, true);
  const id = await linkId(target);
  const base = relay.relay.readerUrl!;
  t.equal(await openLink(base, id), 200, 'opened');
  const mail = await waitFor(() => internal.messages.find((m) => m.to.includes('jan@zorg.test')), 20_000, 'the first-open mail');
  const parsed = await simpleParser(mail.raw);
  t.match(parsed.text ?? '', /piet@extern\.test/, 'it names the recipient');
  t.notMatch(mail.raw.toString(), /111222333/, 'and carries no content');
  t.equal(await openLink(base, id), 200, 'opened again in another session');
  await relay.relay.backend.queue.idle();
  t.equal(internal.messages.filter((m) => m.to.includes('jan@zorg.test')).length, 1, 'no second mail');
});

t.test('receipts.firstOpen off (the default): no mail at first open', async (t) => {
  const { relay, target, internal } = await setup(t, false);
  const id = await linkId(target);
  t.equal(await openLink(relay.relay.readerUrl!, id), 200);
  await relay.relay.backend.queue.idle();
  t.equal(internal.messages.length, 0);
});
