import fs from 'node:fs';
import path from 'node:path';
import t from 'tap';
import nodemailer from 'nodemailer';
import { corpusDir, startRelay, stripFirstReceived, waitFor } from './helpers/relay.js';
import { startSink } from './helpers/sink.js';
import { swaks } from './helpers/smtp-client.js';

const corpus = fs
  .readdirSync(corpusDir)
  .filter((name) => name.endsWith('.eml'))
  .sort();

t.test('every corpus message arrives byte for byte, with exactly one Received: field added', async (t) => {
  const sink = await startSink(t);
  const { port } = await startRelay(t, { delivery: { target: sink.url } });
  const transport = nodemailer.createTransport({ host: '127.0.0.1', port, secure: false, ignoreTLS: true, pool: true, maxConnections: 4 });
  t.teardown(() => transport.close());
  const sent = new Map<string, Buffer>();
  await Promise.all(
    corpus.map(async (name, i) => {
      const raw = fs.readFileSync(path.join(corpusDir, name));
      const rcpt = `ontvanger${i}@example.com`;
      sent.set(rcpt, raw);
      const info = await transport.sendMail({ envelope: { from: 'afzender@org.test', to: [rcpt] }, raw });
      t.match(info.response, /^250 2\.6\.0 Ok: queued as \S+$/);
    }),
  );
  await waitFor(() => sink.messages.length === corpus.length, 15_000, 'all corpus messages');
  for (const message of sink.messages) {
    const original = sent.get(message.to[0]!)!;
    t.same(message.to.length, 1);
    t.equal(message.from, 'afzender@org.test');
    const received = message.raw.toString('latin1').match(/^Received:/gim)?.length ?? 0;
    const before = original.toString('latin1').match(/^Received:/gim)?.length ?? 0;
    t.equal(received, before + 1, 'one Received: added');
    t.ok(stripFirstReceived(message.raw).equals(original), `${message.to[0]} unchanged`);
  }
  t.equal(corpus.length > 10, true, 'corpus was found');
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
