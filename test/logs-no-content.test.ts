import crypto from 'node:crypto';
import t from 'tap';
import nodemailer from 'nodemailer';
import { startRelay, waitFor } from './helpers/relay.js';
import { startSink } from './helpers/sink.js';

/**
 * Logs carry ids, addresses, sizes and replies, never content: not the
 * subject, not the body, not an attachment's name or bytes.
 */
/** Random letters only: a run of digits could be a valid BSN, and the message would then be held, not delivered. */
const letters = () => crypto.randomBytes(16).toString('hex').replace(/[0-9]/g, (d) => 'ghijklmnop'[Number(d)]!);

t.test('the relay log holds no message content', async (t) => {
  const canary = {
    subject: letters(),
    body: letters(),
    attachmentName: letters(),
    attachmentContent: letters(),
  };
  const sink = await startSink(t);
  const { port, logs } = await startRelay(t, { delivery: { target: sink.url } });
  const transport = nodemailer.createTransport({ host: '127.0.0.1', port, secure: false, ignoreTLS: true });
  t.teardown(() => transport.close());
  const info = await transport.sendMail({
    from: 'jan@org.test',
    to: 'klant@example.com',
    subject: `Offerte ${canary.subject}`,
    text: `Beste klant,\n\n${canary.body}\n\nJan`,
    attachments: [{ filename: `${canary.attachmentName}.txt`, content: Buffer.from(canary.attachmentContent), contentType: 'text/plain' }],
  });
  t.match(info.response, /^250 2\.6\.0 Ok: queued as \S+$/);
  const queueId = /queued as (\S+)$/.exec(info.response)![1]!;

  await waitFor(() => sink.messages.length === 1, 10_000, 'the delivery');
  await waitFor(() => /"msg":"delivery attempt"/.test(logs()), 5_000, 'the delivery log line');
  const delivered = sink.messages[0]!.raw.toString('latin1');
  // the canaries really were in the message, so their absence from the log means something
  t.match(delivered, canary.subject);
  t.match(delivered, canary.body);
  t.match(delivered, canary.attachmentName);
  t.match(delivered, Buffer.from(canary.attachmentContent).toString('base64'), 'attachment bytes travel base64-encoded');

  const text = logs();
  for (const [what, value] of Object.entries(canary)) {
    t.notOk(text.includes(value), `no ${what} in the log`);
    t.notOk(text.includes(Buffer.from(value).toString('base64')), `no base64 of the ${what} in the log`);
  }
  t.ok(text.includes(queueId), 'the queue id is logged');
  t.match(text, new RegExp(`"queueId":"${queueId}"[^\\n]*"msg":"message accepted"`), 'message accepted, with its queue id');
  t.match(text, new RegExp(`"queueId":"${queueId}"[^\\n]*"result":"delivered"[^\\n]*"msg":"delivery attempt"`), 'delivery attempt, with its queue id');
  t.ok(text.split('\n').filter(Boolean).every((line) => JSON.parse(line)), 'every log line is JSON');
});
