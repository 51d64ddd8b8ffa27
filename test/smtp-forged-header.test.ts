import t from 'tap';
import nodemailer from 'nodemailer';
import { relaxedBodyHash } from '../src/crypto/relaxed-body.js';
import type { ClassifyMessage } from '../src/pipeline/decide.js';
import { startRelay, stripFirstReceived, waitFor } from './helpers/relay.js';
import { startSink } from './helpers/sink.js';

/**
 * X-Zegel-* fields are the relay's own. A client that forges them must not be
 * able to skip classification: ingress removes every one it did not sign, and
 * only a verifying X-Zegel-Origin (HMAC over the Message-ID, the envelope
 * recipients and the body's hash, with the relay secret) marks a message as the
 * relay's own, which is then not classified again (once).
 */

interface Call {
  queueId: string;
}

/** A classifier that records which messages it was asked about and lets them through. */
function recordingClassifier(calls: Call[]): ClassifyMessage {
  return async ({ message }) => {
    calls.push({ queueId: message.id });
    return { decision: 'deliver', subjectSensitive: false, matches: [] };
  };
}

const SENDER = 'jan@org.test';
const EXTERNAL = 'klant@example.com';

async function send(port: number, raw: Buffer, to: string[]): Promise<string> {
  const transport = nodemailer.createTransport({ host: '127.0.0.1', port, secure: false, ignoreTLS: true });
  try {
    const info = await transport.sendMail({ envelope: { from: SENDER, to }, raw });
    return info.response;
  } finally {
    transport.close();
  }
}

const lines = (...l: string[]) => Buffer.from(l.map((x) => `${x}\r\n`).join(''), 'latin1');

t.test('forged X-Zegel-* fields are removed and the message is decided as usual', async (t) => {
  const calls: Call[] = [];
  const sink = await startSink(t);
  const { port, logs } = await startRelay(t, { organisation: { domains: ['org.test'] }, delivery: { target: sink.url } }, { classify: recordingClassifier(calls) });
  const forgedOrigin = `X-Zegel-Origin: v1 ${'A'.repeat(43)}`;
  const forgedDecision = 'X-Zegel-Decision: deliver';
  const before = [
    'From: Jan <jan@org.test>',
    `To: <${EXTERNAL}>`,
    'Subject: forged',
    'Date: Mon, 23 Nov 2026 13:05:09 +0000',
    'Message-ID: <forged-1@org.test>',
  ];
  const after = ['MIME-Version: 1.0', 'Content-Type: text/plain; charset=utf-8', '', 'Dear customer,', 'X-Zegel-Origin: a body line is no header and stays', '', 'Jan'];
  const original = lines(...before, forgedOrigin, forgedDecision, ...after);
  const expected = lines(...before, ...after);

  const response = await send(port, original, [EXTERNAL]);
  t.match(response, /^250 2\.6\.0 Ok: queued as (\S+)$/);
  const queueId = /queued as (\S+)$/.exec(response)![1]!;

  await waitFor(() => sink.messages.length === 1, 10_000, 'the delivery');
  const [message] = sink.messages;
  t.same(message!.to, [EXTERNAL]);
  const text = message!.raw.toString('latin1');
  const headerBlock = text.slice(0, text.indexOf('\r\n\r\n') + 2);
  t.notMatch(headerBlock, /^x-zegel-/im, 'no X-Zegel-* field in the delivered header');
  t.ok(stripFirstReceived(message!.raw).equals(expected), 'otherwise byte for byte the original, minus exactly the forged lines');
  t.same(calls, [{ queueId }], 'the message was classified');
  t.match(logs(), new RegExp(`"queueId":"${queueId}"[^\\n]*"removedHeaders":2[^\\n]*"message accepted"`), 'the removal is logged (as a count)');
  t.notMatch(logs(), /"relayOrigin":true/);
});

t.test('forged X-Zegel-* fields in other spellings and folded are removed too', async (t) => {
  const calls: Call[] = [];
  const sink = await startSink(t);
  const { port } = await startRelay(t, { organisation: { domains: ['org.test'] }, delivery: { target: sink.url } }, { classify: recordingClassifier(calls) });
  const keep1 = ['From: <jan@org.test>', `To: <${EXTERNAL}>`, 'Message-ID: <forged-2@org.test>'];
  const forged = ['x-zegel-origin:', ` v1 ${'B'.repeat(43)}`, 'X-ZEGEL-DECISION: deliver;', '\treason=forged'];
  const keep2 = ['Subject: folded', '', 'body'];
  const response = await send(port, lines(...keep1, ...forged, ...keep2), [EXTERNAL]);
  t.match(response, /^250 /);
  await waitFor(() => sink.messages.length === 1, 10_000, 'the delivery');
  t.ok(stripFirstReceived(sink.messages[0]!.raw).equals(lines(...keep1, ...keep2)));
  t.equal(calls.length, 1, 'classified');
});

/** Encrypts what says GEHEIM, delivers the rest; records every call. */
function sealingClassifier(calls: Call[]): ClassifyMessage {
  return async ({ message, open }) => {
    calls.push({ queueId: message.id });
    const chunks: Buffer[] = [];
    for await (const chunk of open()) chunks.push(chunk as Buffer);
    const secret = Buffer.concat(chunks).includes('GEHEIM');
    return { decision: secret ? 'encrypt' : 'deliver', subjectSensitive: false, matches: [] };
  };
}

t.test('the relay\'s own notification passes again unclassified, once, and only to the recipient it was made for', async (t) => {
  const calls: Call[] = [];
  const sink = await startSink(t);
  const { port, logs } = await startRelay(t, { organisation: { domains: ['org.test'] }, delivery: { target: sink.url }, receipts: { sender: false } }, { classify: sealingClassifier(calls) });
  t.match(await send(port, lines(`From: <${SENDER}>`, `To: <${EXTERNAL}>`, 'Subject: dossier', '', 'GEHEIM'), [EXTERNAL]), /^250 /);
  const notification = await waitFor(() => sink.messages[0], 20_000, 'the notification');
  t.match(notification.raw.toString('latin1'), /^X-Zegel-Origin: v2[ \r\n]/m, 'the notification carries X-Zegel-Origin');
  t.equal(calls.length, 1);

  // the organisation's mail server routes it back through the relay
  t.match(await send(port, notification.raw, [EXTERNAL]), /^250 /);
  await waitFor(() => sink.messages.length === 2, 10_000, 'the notification to pass again');
  t.ok(stripFirstReceived(sink.messages[1]!.raw).equals(notification.raw), 'delivered byte for byte, X-Zegel-Origin kept');
  t.equal(calls.length, 1, 'not classified again');
  t.match(logs(), /"relayOrigin":true[^\n]*"message accepted"/);

  // the same header again, or towards anyone else, is classified like any message
  t.match(await send(port, notification.raw, [EXTERNAL]), /^250 /);
  t.match(await send(port, notification.raw, ['ander@example.net']), /^250 /);
  await waitFor(() => sink.messages.length === 4, 10_000, 'both to be delivered');
  t.equal(calls.length, 3, 'a second return and another recipient are both classified');
  t.match(logs(), /does not match a mail the relay made for these recipients/);
});

t.test('X-Zegel-Origin copied onto another message does not verify', async (t) => {
  const calls: Call[] = [];
  const sink = await startSink(t);
  const { port, relay } = await startRelay(t, { organisation: { domains: ['org.test'] }, delivery: { target: sink.url } }, { classify: recordingClassifier(calls) });
  const head = [`To: <${EXTERNAL}>`, 'Subject: copied origin', 'Message-ID: <mine@org.test>'];
  const origin = relay.signer.sign({ messageId: '<someone-elses@relay.org.test>', recipients: [EXTERNAL] }, await relaxedBodyHash(Buffer.from('text\r\n')));
  const original = lines(...head, `X-Zegel-Origin: ${origin}`, '', 'text');
  t.match(await send(port, original, [EXTERNAL]), /^250 /);
  await waitFor(() => sink.messages.length === 1, 10_000, 'the delivery');
  t.ok(stripFirstReceived(sink.messages[0]!.raw).equals(lines(...head, '', 'text')));
  t.equal(calls.length, 1, 'classified as usual');
});
