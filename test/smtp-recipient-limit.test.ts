import t from 'tap';
import nodemailer from 'nodemailer';
import { startRelay, waitFor } from './helpers/relay.js';
import { startSink } from './helpers/sink.js';
import { RawSmtp, swaks } from './helpers/smtp-client.js';

t.test('smtp.maxRecipients 3: the 4th RCPT gets 452 4.5.3 and the message goes to the 3 accepted', async (t) => {
  const sink = await startSink(t);
  const { port } = await startRelay(t, { smtp: { maxRecipients: 3 }, delivery: { target: sink.url } });

  const smtp = await RawSmtp.connect(port);
  t.teardown(() => smtp.close());
  t.match(await smtp.command('EHLO probe.test'), /^250[- ]/);
  t.match(await smtp.command('MAIL FROM:<jan@org.test>'), /^250 /);
  for (const n of [1, 2, 3]) t.match(await smtp.command(`RCPT TO:<r${n}@example.com>`), /^250 /, `recipient ${n} accepted`);
  t.match(await smtp.command('RCPT TO:<r4@example.com>'), /^452 4\.5\.3 /, 'recipient 4 deferred');
  t.match(await smtp.command('RCPT TO:<r5@example.com>'), /^452 4\.5\.3 /, 'and so is recipient 5');
  t.match(await smtp.command('RCPT TO:<R2@example.com>'), /^250 /, 'repeating an accepted recipient does not count twice');
  t.match(await smtp.command('DATA'), /^354 /);
  smtp.write('From: jan@org.test\r\nTo: r1@example.com, r2@example.com, r3@example.com\r\nSubject: drie\r\n\r\nVoor drie.\r\n.\r\n');
  t.match(await smtp.reply(), /^250 2\.6\.0 Ok: queued as \S+$/);

  await waitFor(() => sink.messages.length >= 1, 10_000, 'the delivery');
  await new Promise((resolve) => setTimeout(resolve, 300));
  const delivered = sink.messages.flatMap((m) => m.to).map((a) => a.toLowerCase()).sort();
  t.same(delivered, ['r1@example.com', 'r2@example.com', 'r3@example.com'], 'exactly the 3 accepted recipients got it');
  t.notOk(delivered.some((a) => a === 'r4@example.com' || a === 'r5@example.com'), 'the refused ones did not');

  await t.test('the limit is per transaction: the next one on the same connection takes 3 again', async (t) => {
    t.match(await smtp.command('MAIL FROM:<jan@org.test>'), /^250 /);
    for (const n of [6, 7, 8]) t.match(await smtp.command(`RCPT TO:<r${n}@example.com>`), /^250 /);
    t.match(await smtp.command('RCPT TO:<r9@example.com>'), /^452 4\.5\.3 /);
    t.match(await smtp.command('RSET'), /^250 /);
  });
});

t.test('real clients: nodemailer delivers to the first 3 and reports the 4th; swaks sees 452 4.5.3', async (t) => {
  const sink = await startSink(t);
  const { port } = await startRelay(t, { smtp: { maxRecipients: 3 }, delivery: { target: sink.url } });

  const transport = nodemailer.createTransport({ host: '127.0.0.1', port, secure: false, ignoreTLS: true });
  t.teardown(() => transport.close());
  const to = ['a@example.com', 'b@example.com', 'c@example.com', 'd@example.com'];
  const info = (await transport.sendMail({ envelope: { from: 'jan@org.test', to }, raw: 'From: jan@org.test\r\nSubject: vier\r\n\r\nx\r\n' })) as { accepted: string[]; rejected: string[]; rejectedErrors?: Array<{ response?: string }> };
  t.same(info.accepted, ['a@example.com', 'b@example.com', 'c@example.com']);
  t.same(info.rejected, ['d@example.com']);
  t.match(info.rejectedErrors?.[0]?.response, /^452 4\.5\.3 /);
  await waitFor(() => sink.messages.length === 1, 10_000, 'the nodemailer message');
  t.same(sink.messages[0]?.to.sort(), ['a@example.com', 'b@example.com', 'c@example.com']);

  const result = await swaks(port, ['--from', 'jan@org.test', '--to', 'e@example.com,f@example.com,g@example.com,h@example.com', '--body', 'x']);
  t.match(result.stdout, /<\*\*\s+452 4\.5\.3 /, 'swaks shows the deferral');
  t.match(result.stdout, /<-\s+250 2\.6\.0 Ok: queued as/, 'and the message went to the accepted three');
  await waitFor(() => sink.messages.length === 2, 10_000, 'the swaks message');
  t.same(sink.messages[1]?.to.sort(), ['e@example.com', 'f@example.com', 'g@example.com']);
});
