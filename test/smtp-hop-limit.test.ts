import fs from 'node:fs';
import path from 'node:path';
import t from 'tap';
import nodemailer from 'nodemailer';
import { startRelay, stripFirstReceived, waitFor } from './helpers/relay.js';
import { startSink } from './helpers/sink.js';
import { RawSmtp } from './helpers/smtp-client.js';

/** `count` Received: fields, each folded over three lines, as MTAs write them; names in varying case. */
function receivedFields(count: number): string {
  let out = '';
  for (let i = 0; i < count; i++) {
    const name = ['Received', 'received', 'RECEIVED'][i % 3];
    out += `${name}: from hop${i}.example (hop${i}.example [192.0.2.${i % 250}])\r\n\tby mx${i}.example with ESMTP id H${i};\r\n\tMon, 23 Nov 2026 10:00:${String(i % 60).padStart(2, '0')} +0000\r\n`;
  }
  return out;
}

function messageWithHops(hops: number, subject: string, body = 'Hallo.\r\n'): Buffer {
  return Buffer.from(`${receivedFields(hops)}X-Received: not a trace field\r\nFrom: jan@org.test\r\nTo: a@example.com\r\nSubject: ${subject}\r\n\r\n${body}`, 'latin1');
}

function spoolFiles(dataDir: string): string[] {
  const dir = path.join(dataDir, 'spool');
  return fs.existsSync(dir) ? fs.readdirSync(dir) : [];
}

async function send(port: number, message: Buffer): Promise<string> {
  const smtp = await RawSmtp.connect(port);
  try {
    await smtp.envelope('jan@org.test', ['a@example.com']);
    const data = await smtp.command('DATA');
    if (!data.startsWith('354')) return data;
    smtp.write(message);
    smtp.write('.\r\n');
    return await smtp.reply();
  } finally {
    smtp.close();
  }
}

const countReceived = (raw: Buffer) => raw.toString('latin1').split('\r\n\r\n')[0]!.match(/^Received:/gim)?.length ?? 0;

t.test('default smtp.maxHops (50): 50 Received fields are refused with 554 5.4.6, 49 are accepted', async (t) => {
  const sink = await startSink(t);
  const { port, dataDir, logs } = await startRelay(t, { delivery: { target: sink.url } });

  t.match(await send(port, messageWithHops(50, 'fifty')), /^554 5\.4\.6 /, '50 hops: mail loop suspected');
  t.same(spoolFiles(dataDir), [], 'the refused message left no spool file');
  t.match(logs(), /"cause":"ZEGEL_TOO_MANY_HOPS"/);
  t.match(await send(port, messageWithHops(120, 'many')), /^554 5\.4\.6 /, '120 hops too');

  const fortyNine = messageWithHops(49, 'forty-nine');
  t.match(await send(port, fortyNine), /^250 2\.6\.0 Ok: queued as \S+$/, '49 hops accepted');

  await waitFor(() => sink.messages.length === 1, 10_000, 'the 49-hop message');
  await new Promise((resolve) => setTimeout(resolve, 300));
  t.equal(sink.messages.length, 1, 'only the 49-hop message arrived');
  const [message] = sink.messages;
  t.equal(countReceived(message!.raw), 50, 'it left with its 49 Received fields plus ours');
  t.ok(stripFirstReceived(message!.raw).equals(fortyNine), 'and otherwise unchanged');
});

t.test('only Received fields of the top-level header count', async (t) => {
  const sink = await startSink(t);
  const { port } = await startRelay(t, { delivery: { target: sink.url } });
  // a forwarded message inside the body carries its own trace fields; they are content, not hops
  const body = `--b\r\nContent-Type: text/plain\r\n\r\nZie bijlage.\r\n--b\r\nContent-Type: message/rfc822\r\n\r\n${receivedFields(30)}Subject: doorgestuurd\r\n\r\nOud bericht.\r\n--b--\r\n`;
  const message = Buffer.from(
    `${receivedFields(49)}From: jan@org.test\r\nTo: a@example.com\r\nSubject: forwarded\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="b"\r\n\r\n${body}`,
    'latin1',
  );
  t.match(await send(port, message), /^250 2\.6\.0 /, '49 header hops + 30 in an attached message: accepted');
  await waitFor(() => sink.messages.length === 1, 10_000, 'the forwarded message');
  t.ok(stripFirstReceived(sink.messages[0]!.raw).equals(message));
});

t.test('a configured smtp.maxHops of 5: 5 refused, 4 accepted (nodemailer)', async (t) => {
  const sink = await startSink(t);
  const { port, dataDir } = await startRelay(t, { smtp: { maxHops: 5 }, delivery: { target: sink.url } });
  const transport = nodemailer.createTransport({ host: '127.0.0.1', port, secure: false, ignoreTLS: true });
  t.teardown(() => transport.close());

  const refused = await transport.sendMail({ envelope: { from: 'jan@org.test', to: ['a@example.com'] }, raw: messageWithHops(5, 'five') }).then(
    () => undefined,
    (err: { responseCode?: number; response?: string }) => err,
  );
  t.equal(refused?.responseCode, 554);
  t.match(refused?.response, /^554 5\.4\.6 /);
  t.same(spoolFiles(dataDir), []);

  const info = (await transport.sendMail({ envelope: { from: 'jan@org.test', to: ['a@example.com'] }, raw: messageWithHops(4, 'four') })) as { response: string };
  t.match(info.response, /^250 /);
  await waitFor(() => sink.messages.length === 1, 10_000, 'the 4-hop message');
  t.equal(countReceived(sink.messages[0]!.raw), 5);
  t.match(sink.messages[0]!.raw.toString('latin1'), /^Subject: four$/m);
});
