import fs from 'node:fs';
import path from 'node:path';
import t from 'tap';
import nodemailer, { type SendMailOptions } from 'nodemailer';
import type SMTPTransport from 'nodemailer/lib/smtp-transport/index.js';
import { hashPassword } from '../src/smtp/policy.js';
import { startRelay, waitFor } from './helpers/relay.js';
import { startSink, type TestSink } from './helpers/sink.js';
import { RawSmtp, selfSigned, swaks } from './helpers/smtp-client.js';

const PASSWORD = 'correct horse battery staple';

interface SmtpFailure extends Error {
  code?: string;
  responseCode?: number;
  response?: string;
  command?: string;
}


/** Sends with nodemailer and returns the error (or undefined and the info on success). */
async function trySend(options: SMTPTransport.Options, mail: SendMailOptions): Promise<{ err?: SmtpFailure; info?: { response: string; accepted: unknown[] } }> {
  const transport = nodemailer.createTransport(options);
  try {
    const info = (await transport.sendMail(mail)) as { response: string; accepted: unknown[] };
    return { info };
  } catch (err) {
    return { err: err as SmtpFailure };
  } finally {
    transport.close();
  }
}

/** Gives a wrongly accepted message time to travel, then says how many arrived. */
async function settle(sink: TestSink, ms = 500): Promise<number> {
  await new Promise((resolve) => setTimeout(resolve, ms));
  return sink.messages.length;
}

function spoolFiles(dataDir: string): string[] {
  const dir = path.join(dataDir, 'spool');
  return fs.existsSync(dir) ? fs.readdirSync(dir) : [];
}

t.test('a client outside smtp.allow is refused at MAIL FROM with 554 5.7.1 and nothing is delivered', async (t) => {
  const sink = await startSink(t);
  const { port, dataDir, logs } = await startRelay(t, { smtp: { allow: ['10.0.0.0/8'] }, delivery: { target: sink.url } });

  const smtp = await RawSmtp.connect(port);
  t.teardown(() => smtp.close());
  t.match(await smtp.command('EHLO probe.test'), /^250[- ]/);
  t.match(await smtp.command('MAIL FROM:<jan@org.test>'), /^554 5\.7\.1 /, 'MAIL FROM refused');
  t.notMatch(await smtp.command('RCPT TO:<a@example.com>'), /^250/, 'no RCPT without an accepted MAIL FROM');
  t.notMatch(await smtp.command('DATA'), /^354/, 'no DATA either');

  const result = await swaks(port, ['--from', 'jan@org.test', '--to', 'a@example.com', '--body', 'x']);
  t.not(result.code, 0, 'swaks reports the failure');
  t.match(result.stdout, /<\*\*\s+554 5\.7\.1 /);

  t.equal(await settle(sink), 0, 'nothing reached the next hop');
  t.same(spoolFiles(dataDir), [], 'nothing was spooled');
  t.match(logs(), /smtp transaction refused/);
});

t.test('with organisation.domains, a foreign envelope sender gets 550 5.7.1; the null sender is accepted and delivered', async (t) => {
  const sink = await startSink(t);
  const { port } = await startRelay(t, { organisation: { domains: ['org.test'] }, delivery: { target: sink.url } });

  await t.test('foreign sender', async (t) => {
    const smtp = await RawSmtp.connect(port);
    t.teardown(() => smtp.close());
    t.match(await smtp.command('EHLO probe.test'), /^250[- ]/);
    t.match(await smtp.command('MAIL FROM:<jan@elders.test>'), /^550 5\.7\.1 .*elders\.test/);
    t.match(await smtp.command('MAIL FROM:<jan@sub.org.test>'), /^550 5\.7\.1 /, 'a subdomain is not the domain');
    t.match(await smtp.command('MAIL FROM:<postmaster>'), /^5\d\d /, 'an address without a domain is refused');
    t.match(await smtp.command('MAIL FROM:<Jan@ORG.Test>'), /^250 /, 'the domain compares case-insensitively');
    t.match(await smtp.command('RSET'), /^250 /);

    const result = await swaks(port, ['--from', 'jan@elders.test', '--to', 'a@example.com', '--body', 'x']);
    t.not(result.code, 0);
    t.match(result.stdout, /<\*\*\s+550 5\.7\.1 /);
  });

  await t.test('null sender', async (t) => {
    const smtp = await RawSmtp.connect(port);
    t.teardown(() => smtp.close());
    t.match(await smtp.command('EHLO probe.test'), /^250[- ]/);
    t.match(await smtp.command('MAIL FROM:<>'), /^250 /);
    t.match(await smtp.command('RCPT TO:<bounce-target@example.com>'), /^250 /);
    t.match(await smtp.command('DATA'), /^354 /);
    smtp.write('From: MAILER-DAEMON@org.test\r\nTo: bounce-target@example.com\r\nSubject: null sender\r\n\r\nDelivery report.\r\n.\r\n');
    t.match(await smtp.reply(), /^250 2\.6\.0 Ok: queued as \S+$/);
  });

  await t.test('nodemailer with an organisation sender', async (t) => {
    const { info, err } = await trySend(
      { host: '127.0.0.1', port, secure: false, ignoreTLS: true },
      { envelope: { from: 'jan@org.test', to: ['b@example.com'] }, raw: 'From: jan@org.test\r\nTo: b@example.com\r\nSubject: own sender\r\n\r\nHallo.\r\n' },
    );
    t.error(err);
    t.match(info?.response, /^250 /);
  });

  await t.test('deliveries', async (t) => {
    await waitFor(() => sink.messages.length >= 2, 10_000, 'two deliveries');
    t.equal(await settle(sink, 300), 2, 'exactly the two accepted messages arrived');
    const bounce = sink.messages.find((m) => m.to[0] === 'bounce-target@example.com');
    t.ok(bounce, 'the null-sender message arrived');
    t.equal(bounce?.from, '', 'with the null sender kept');
    t.match(bounce?.raw.toString('latin1'), /\r\n\r\nDelivery report\.\r\n$/);
    const own = sink.messages.find((m) => m.to[0] === 'b@example.com');
    t.equal(own?.from, 'jan@org.test');
    t.notOk(sink.messages.some((m) => /elders\.test/.test(m.from)), 'no foreign sender got through');
  });
});

t.test('SMTP AUTH: only after STARTTLS, and it lets a client outside smtp.allow relay', async (t) => {
  const { key, cert } = await selfSigned(t);
  const passwordHash = await hashPassword(PASSWORD);
  const sink = await startSink(t);
  const { port, dataDir } = await startRelay(t, {
    organisation: { domains: ['org.test'] },
    smtp: { allow: ['10.0.0.0/8'], tls: { key, cert }, auth: { users: [{ username: 'mta', passwordHash }] } },
    delivery: { target: sink.url },
  });
  const tls = { rejectUnauthorized: false };

  await t.test('before STARTTLS the EHLO reply offers STARTTLS but not AUTH', async (t) => {
    const smtp = await RawSmtp.connect(port);
    t.teardown(() => smtp.close());
    const ehlo = await smtp.command('EHLO probe.test');
    t.match(ehlo, /^250[- ]STARTTLS$/m, 'STARTTLS is offered');
    t.notMatch(ehlo, /^250[- ]AUTH\b/m, 'AUTH is not offered on a cleartext connection');
  });

  await t.test('credentials sent in the clear are not accepted', async (t) => {
    const smtp = await RawSmtp.connect(port);
    t.teardown(() => smtp.close());
    await smtp.command('EHLO probe.test');
    const plain = Buffer.from(`\0mta\0${PASSWORD}`).toString('base64');
    t.match(await smtp.command(`AUTH PLAIN ${plain}`), /^5\d\d /, 'AUTH PLAIN refused without TLS');
    t.match(await smtp.command('MAIL FROM:<jan@org.test>'), /^554 5\.7\.1 /, 'and the client is still not allowed to relay');
  });

  await t.test('after STARTTLS AUTH is offered', async (t) => {
    const result = await swaks(port, ['--tls', '--quit-after', 'HELO', '--ehlo', 'probe.test']);
    t.equal(result.code, 0, result.stdout + result.stderr);
    t.match(result.stdout, /<~\s+250[- ]AUTH .*PLAIN/, 'AUTH PLAIN offered inside TLS');
  });

  await t.test('correct credentials over STARTTLS: relayed to the next hop', async (t) => {
    const { info, err } = await trySend(
      { host: '127.0.0.1', port, secure: false, requireTLS: true, tls, auth: { user: 'mta', pass: PASSWORD } },
      { envelope: { from: 'jan@org.test', to: ['authed@example.com'] }, raw: 'From: jan@org.test\r\nTo: authed@example.com\r\nSubject: authenticated\r\n\r\nVia AUTH.\r\n' },
    );
    t.error(err);
    t.match(info?.response, /^250 2\.6\.0 Ok: queued as \S+$/);
    await waitFor(() => sink.messages.length === 1, 10_000, 'the authenticated message');
    const [message] = sink.messages;
    t.same(message?.to, ['authed@example.com']);
    t.equal(message?.from, 'jan@org.test');
    t.match(message?.raw.toString('latin1'), /with ESMTPSA id /, 'the Received field records TLS and AUTH');
  });

  await t.test('swaks: correct credentials with AUTH LOGIN over STARTTLS', async (t) => {
    const result = await swaks(port, ['--tls', '--auth', 'LOGIN', '--auth-user', 'mta', '--auth-password', PASSWORD, '--from', 'jan@org.test', '--to', 'swaks@example.com', '--body', 'x']);
    t.equal(result.code, 0, result.stdout + result.stderr);
    t.match(result.stdout, /<~\s+235 /);
    t.match(result.stdout, /<~\s+250 2\.6\.0 Ok: queued as/);
    await waitFor(() => sink.messages.length === 2, 10_000, 'the swaks message');
    t.same(sink.messages[1]?.to, ['swaks@example.com']);
  });

  await t.test('a wrong password gets 535 5.7.8', async (t) => {
    for (const auth of [
      { user: 'mta', pass: 'wrong password, long enough' },
      { user: 'nobody', pass: PASSWORD },
    ]) {
      const { info, err } = await trySend(
        { host: '127.0.0.1', port, secure: false, requireTLS: true, tls, auth },
        { envelope: { from: 'jan@org.test', to: ['wrong@example.com'] }, raw: 'Subject: x\r\n\r\nx\r\n' },
      );
      t.notOk(info, `${auth.user}: not sent`);
      t.equal(err?.responseCode, 535, auth.user);
      t.match(err?.response, /^535 5\.7\.8 /, auth.user);
    }
  });

  await t.test('unauthenticated over TLS: still 554 5.7.1 at MAIL FROM', async (t) => {
    const { info, err } = await trySend(
      { host: '127.0.0.1', port, secure: false, requireTLS: true, tls },
      { envelope: { from: 'jan@org.test', to: ['anon@example.com'] }, raw: 'Subject: x\r\n\r\nx\r\n' },
    );
    t.notOk(info, 'not sent');
    t.equal(err?.responseCode, 554);
    t.match(err?.response, /^554 5\.7\.1 /);
  });

  await t.test('only the two authenticated messages arrived', async (t) => {
    t.equal(await settle(sink), 2);
    t.same(sink.messages.map((m) => m.to[0]).sort(), ['authed@example.com', 'swaks@example.com']);
    await waitFor(() => spoolFiles(dataDir).length === 0, 10_000, 'an empty spool');
    t.pass('spool emptied after delivery');
  });
});

t.test('smtp.requireTLS: MAIL FROM before STARTTLS gets 530 5.7.0; over TLS it works', async (t) => {
  const { key, cert } = await selfSigned(t);
  const sink = await startSink(t);
  const { port } = await startRelay(t, { smtp: { tls: { key, cert }, requireTLS: true }, delivery: { target: sink.url } });

  const smtp = await RawSmtp.connect(port);
  t.teardown(() => smtp.close());
  const ehlo = await smtp.command('EHLO probe.test');
  t.match(ehlo, /^250[- ]STARTTLS$/m);
  t.match(await smtp.command('MAIL FROM:<jan@org.test>'), /^530 5\.7\.0 /);
  t.match(await smtp.command('MAIL FROM:<>'), /^530 5\.7\.0 /, 'the null sender too');

  const plain = await swaks(port, ['--from', 'jan@org.test', '--to', 'a@example.com', '--body', 'x']);
  t.not(plain.code, 0);
  t.match(plain.stdout, /<\*\*\s+530 5\.7\.0 /);

  const { info, err } = await trySend(
    { host: '127.0.0.1', port, secure: false, requireTLS: true, tls: { rejectUnauthorized: false } },
    { envelope: { from: 'jan@org.test', to: ['tls@example.com'] }, raw: 'Subject: over tls\r\n\r\nx\r\n' },
  );
  t.error(err);
  t.match(info?.response, /^250 /);
  await waitFor(() => sink.messages.length === 1, 10_000, 'the TLS message');
  t.same(sink.messages[0]?.to, ['tls@example.com']);
  t.match(sink.messages[0]?.raw.toString('latin1'), /with ESMTPS id /);
  t.equal(await settle(sink, 300), 1, 'only the TLS message arrived');
});
