import fs from 'node:fs';
import { storeView } from './helpers/store-view.js';
import path from 'node:path';
import t, { type Test } from 'tap';
import nodemailer from 'nodemailer';
import { deliverAll } from '../src/pipeline/decide.js';
import { corpusDir, startRelay, stripFirstReceived, waitFor } from './helpers/relay.js';
import { startSink } from './helpers/sink.js';
import { swaks } from './helpers/smtp-client.js';

const corpus = fs
  .readdirSync(corpusDir)
  .filter((name) => name.endsWith('.eml'))
  .sort();

interface Label {
  file: string;
  expect: 'deliver' | 'encrypt' | 'block';
}
const labels = JSON.parse(fs.readFileSync(path.join(corpusDir, 'labels.json'), 'utf8')) as Label[];

/** Sends every corpus message, each to its own recipient; resolves to recipient -> original bytes. */
async function sendCorpus(t: Test, port: number): Promise<Map<string, { name: string; raw: Buffer; queueId: string }>> {
  const transport = nodemailer.createTransport({ host: '127.0.0.1', port, secure: false, ignoreTLS: true, pool: true, maxConnections: 4 });
  t.teardown(() => transport.close());
  const sent = new Map<string, { name: string; raw: Buffer; queueId: string }>();
  await Promise.all(
    corpus.map(async (name, i) => {
      const raw = fs.readFileSync(path.join(corpusDir, name));
      const rcpt = `ontvanger${i}@example.com`;
      const info = await transport.sendMail({ envelope: { from: 'afzender@org.test', to: [rcpt] }, raw });
      const match = /^250 2\.6\.0 Ok: queued as (\S+)$/.exec(info.response);
      if (!match) throw new Error(`not accepted: ${info.response}`);
      sent.set(rcpt, { name, raw, queueId: match[1]! });
    }),
  );
  return sent;
}

function assertUnchanged(t: Test, message: { to: string[]; from: string; raw: Buffer }, original: Buffer): void {
  t.same(message.to.length, 1);
  t.equal(message.from, 'afzender@org.test');
  const received = message.raw.toString('latin1').match(/^Received:/gim)?.length ?? 0;
  const before = original.toString('latin1').match(/^Received:/gim)?.length ?? 0;
  t.equal(received, before + 1, 'one Received: added');
  t.ok(stripFirstReceived(message.raw).equals(original), `${message.to[0]} unchanged`);
}

t.test('relay spine: every corpus message arrives byte for byte, with exactly one Received: field added', async (t) => {
  const sink = await startSink(t);
  // no classifier: whatever the content, "deliver" means the original bytes
  const { port } = await startRelay(t, { delivery: { target: sink.url } }, { classify: deliverAll });
  const sent = await sendCorpus(t, port);
  await waitFor(() => sink.messages.length === corpus.length, 60_000, 'all corpus messages');
  for (const message of sink.messages) assertUnchanged(t, message, sent.get(message.to[0]!)!.raw);
  t.equal(corpus.length > 10, true, 'corpus was found');
});

t.test('with the shipped rules: deliver cases arrive unchanged, sensitive ones reach the next hop only as a notification', async (t) => {
  const sink = await startSink(t);
  // receipts to the senders would reach the same sink: this test is about what the recipients get
  const { port, relay } = await startRelay(t, { delivery: { target: sink.url }, receipts: { sender: false } });
  const sent = await sendCorpus(t, port);
  const expected = new Map(labels.map((l) => [l.file, l.expect]));
  const plain = [...sent.values()].filter((s) => expected.get(s.name) === 'deliver');
  const secured = [...sent.values()].filter((s) => expected.get(s.name) === 'encrypt');
  t.ok(plain.length > 0 && secured.length > 0, `${plain.length} plain and ${secured.length} sensitive cases`);
  await waitFor(() => sink.messages.length === plain.length + secured.length, 60_000, 'every original or notification');
  await relay.backend.queue.idle();
  t.equal(sink.messages.length, plain.length + secured.length, 'one mail per recipient reached the next hop');
  for (const message of sink.messages) {
    const original = sent.get(message.to[0]!)!;
    if (expected.get(original.name) === 'deliver') {
      assertUnchanged(t, message, original.raw);
      continue;
    }
    const raw = message.raw.toString('latin1');
    t.match(raw, /^X-Zegel-Origin: v2[ \r\n]/m, `${original.name}: a notification the relay made`);
    t.match(raw, /^http:\/\/127\.0\.0\.1:8080\/m\/[A-Za-z0-9_-]{22}#[A-Za-z0-9_-]{43}\r?$/m, `${original.name}: with its link on a line of its own`);
    t.notOk(message.raw.includes(original.raw.subarray(original.raw.indexOf('\r\n\r\n') + 4, original.raw.indexOf('\r\n\r\n') + 200)), `${original.name}: the body did not leave`);
  }
  for (const s of secured) {
    t.equal(storeView(relay.sqlite).getMessage(s.queueId)?.spool, false, `${s.name}: the plaintext spool file is gone`);
    t.equal(storeView(relay.sqlite).getRecipients(s.queueId)[0]?.state, 'encrypted', `${s.name}: the recipient is served securely`);
    const classified = storeView(relay.sqlite).events(s.queueId).find((e) => e.type === 'classified');
    t.equal((classified?.detail as { decision?: string } | undefined)?.decision, 'encrypt', `${s.name}: the classified event records the decision`);
  }
});

t.test('swaks submission: envelope kept, BCC stays in the envelope only', async (t) => {
  const sink = await startSink(t);
  const { port } = await startRelay(t, { delivery: { target: sink.url } });
  const result = await swaks(port, [
    '--from', 'jan@org.test',
    '--to', 'a@example.com,b@example.net,verborgen@example.org',
    '--header', 'To: a@example.com, b@example.net',
    '--header', 'Subject: overleg',
    '--body', 'Tot morgen.',
  ]);
  t.equal(result.code, 0, result.stdout + result.stderr);
  t.match(result.stdout, /<-\s+250 2\.6\.0 Ok: queued as/);
  await waitFor(() => sink.messages.length === 1);
  const [message] = sink.messages;
  t.same(message!.to.sort(), ['a@example.com', 'b@example.net', 'verborgen@example.org']);
  t.equal(message!.from, 'jan@org.test');
  const text = message!.raw.toString('latin1');
  t.notMatch(text, /verborgen@example\.org/, 'the BCC address appears nowhere in the delivered bytes');
  t.match(text, /^Received: from probe|^Received: from /);
  t.match(text, /by \S+ \(Zegel\) with ESMTP id \S+;/, 'the Received field names the relay and the queue id');
});

t.test('a single-recipient message names its recipient in Received: for', async (t) => {
  const sink = await startSink(t);
  const { port } = await startRelay(t, { delivery: { target: sink.url } });
  const result = await swaks(port, ['--from', 'jan@org.test', '--to', 'een@example.com', '--body', 'x']);
  t.equal(result.code, 0);
  await waitFor(() => sink.messages.length === 1);
  t.match(sink.messages[0]!.raw.toString('latin1'), /\r\n\tfor <een@example\.com>;\r\n/);
});
