import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import t, { type Test } from 'tap';
import { SMTPServer, type SMTPServerAddress } from 'smtp-server';
import { SmtpTransport, type Transport } from '../src/deliver/transport.js';
import { SmtpPool } from '../src/deliver/smtp-pool.js';
import { WireSink } from './helpers/wire-sink.js';
import { waitFor } from './helpers/relay.js';

/** What a programmable smtp-server sink saw of one transaction. */
interface Seen {
  session: string;
  from: SMTPServerAddress | false;
  to: SMTPServerAddress[];
  raw: Buffer;
}

/** An smtp-server on 127.0.0.1 with DSN on, recording envelopes with their parameters, bytes and sessions. */
async function startDsnSink(t: Test, options: { size?: number } = {}) {
  const seen: Seen[] = [];
  const sessions = { opened: 0, closed: 0, commands: [] as string[] };
  const server = new SMTPServer({
    authOptional: true,
    disabledCommands: ['STARTTLS', 'AUTH'],
    hideDSN: false,
    logger: false,
    size: options.size ?? 100 * 1024 * 1024,
    onConnect: (_session, callback) => {
      sessions.opened++;
      callback();
    },
    onClose: () => {
      sessions.closed++;
    },
    onData: (stream, session, callback) => {
      const chunks: Buffer[] = [];
      stream.on('data', (c: Buffer) => chunks.push(c));
      stream.on('end', () => {
        seen.push({ session: session.id, from: session.envelope.mailFrom, to: [...session.envelope.rcptTo], raw: Buffer.concat(chunks) });
        callback(null, `2.0.0 Ok: stored ${seen.length}`);
      });
    },
  });
  server.on('error', () => undefined);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  const port = (server.server.address() as { port: number }).port;
  t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())));
  return { seen, sessions, port, url: `smtp://127.0.0.1:${port}` };
}

/** A message with every line-start the dot-stuffing must handle, 8-bit bytes and CRLF line endings. */
function trickyMessage(tag: string): Buffer {
  return Buffer.concat([
    Buffer.from(`From: a@org.test\r\nTo: b@example.com\r\nSubject: ${tag}\r\nMessage-ID: <${tag}@org.test>\r\n\r\n`),
    Buffer.from('.\r\n..\r\n.begint met een punt\r\n...drie\r\nmidden. punt\r\n \r\n.\r\n'),
    Buffer.from('caf\xe9 \xff\xfe 8-bit\r\n', 'latin1'),
    Buffer.from('laatste regel\r\n'),
  ]);
}

const options = { hostname: 'zegel.test', maxConnections: 2, timeout: 10_000 };

t.test('the spooled bytes arrive byte for byte, from memory and from a file, lines starting with a dot included', async (t) => {
  const sink = await startDsnSink(t);
  const transport: Transport = new SmtpTransport(sink.url, options);
  t.teardown(() => transport.close());
  const bytes = trickyMessage('geheugen');
  const fileBytes = trickyMessage('bestand');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'zegel-pool-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const file = path.join(dir, 'm.eml');
  fs.writeFileSync(file, fileBytes);

  const a = await transport.send({ from: 'a@org.test', to: ['b@example.com'] }, { bytes }, 'x');
  const b = await transport.send({ from: 'a@org.test', to: ['b@example.com'] }, { path: file }, 'y');
  t.same(a.accepted, ['b@example.com']);
  t.same(a.rejected, []);
  t.match(a.reply, /^250 2\.0\.0 Ok: stored 1$/);
  t.equal(a.remoteMta, '127.0.0.1');
  t.match(b.reply, /stored 2$/);
  t.equal(sink.seen.length, 2);
  t.ok(sink.seen[0]!.raw.equals(bytes), 'the Buffer arrived unchanged');
  t.ok(sink.seen[1]!.raw.equals(fileBytes), 'the file arrived unchanged');
  t.notMatch(sink.seen[0]!.raw.toString('latin1'), /X-Mailer|MIME-Version|boundary=/, 'nothing composed around it');
});

t.test('on the wire: the spool bytes dot-stuffed, ended by CRLF.CRLF, nothing else', async (t) => {
  const wire = new WireSink();
  await wire.listen();
  t.teardown(() => wire.close());
  const transport: Transport = new SmtpTransport(wire.url, options);
  t.teardown(() => transport.close());
  const bytes = trickyMessage('draad');
  await transport.send({ from: 'a@org.test', to: ['b@example.com'] }, { bytes }, 'x');
  const stuffed = Buffer.from(bytes.toString('latin1').replace(/^\./gm, '..'), 'latin1');
  t.ok(wire.messages[0]!.wire.equals(Buffer.concat([stuffed, Buffer.from('.\r\n')])), 'dot-stuffed copy of the spool bytes and the end-of-data line');
});

t.test('the envelope and its DSN and SIZE parameters reach the next hop', async (t) => {
  const sink = await startDsnSink(t);
  const transport: Transport = new SmtpTransport(sink.url, options);
  t.teardown(() => transport.close());
  const bytes = trickyMessage('dsn');
  await transport.send(
    { from: '', to: ['x@example.com', 'y@example.net'], dsn: { ret: 'HDRS', envid: 'QQ314159', notify: ['FAILURE', 'DELAY'], orcpt: 'rfc822;oud@example.com' } },
    { bytes },
    'x',
  );
  const [m] = sink.seen;
  t.equal(m!.from && m!.from.address, '', 'null sender');
  t.match(m!.from && m!.from.args, { RET: 'HDRS', ENVID: 'QQ314159', SIZE: String(bytes.length) });
  t.same(m!.to.map((r) => r.address), ['x@example.com', 'y@example.net'], 'BCC-style: only the envelope names them');
  for (const r of m!.to) t.match(r.args, { NOTIFY: 'FAILURE,DELAY', ORCPT: 'rfc822;oud@example.com' });
  t.notOk(m!.from && (m!.from.args as Record<string, string>).BODY, 'no BODY= parameter, as nodemailer sent raw mail');

  await transport.send({ from: 'a@org.test', to: ['z@example.com'] }, { bytes }, 'y');
  const plain = sink.seen[1]!;
  t.same(Object.keys(plain.from && plain.from.args ? plain.from.args : {}), ['SIZE'], 'without DSN parameters only SIZE');
  t.equal(plain.to[0]!.args, false);
});

t.test('sessions are reused up to maxConnections and the message cap, closed when idle and on close()', async (t) => {
  const sink = await startDsnSink(t);
  const bytes = trickyMessage('hergebruik');
  const send = (pool: SmtpPool, i: number) => pool.send({ from: 'a@org.test', to: [`r${i}@example.com`] }, { bytes });

  const pool = new SmtpPool({ host: '127.0.0.1', port: sink.port }, { hostname: 'zegel.test', maxConnections: 3, timeout: 10_000, maxMessages: 4 });
  for (let i = 0; i < 4; i++) await send(pool, i);
  t.equal(sink.sessions.opened, 1, 'one session for four messages in a row');
  await send(pool, 4);
  t.equal(sink.sessions.opened, 2, 'a new session after the cap of four messages');
  await Promise.all(Array.from({ length: 24 }, (_, i) => send(pool, 10 + i)));
  t.ok(sink.sessions.opened <= 2 + 3 + 24 / 4, `${sink.sessions.opened} sessions`);
  t.ok(pool.size <= 3, `never more than maxConnections open (${pool.size})`);
  const perSession = new Map<string, number>();
  for (const m of sink.seen) perSession.set(m.session, (perSession.get(m.session) ?? 0) + 1);
  t.ok(Math.max(...perSession.values()) <= 4, 'no session carried more than four messages');
  t.equal(sink.seen.length, 29);
  pool.close();
  await waitFor(() => sink.sessions.closed === sink.sessions.opened, 5000, 'every session closed after close()');
  await t.rejects(send(pool, 99), { code: 0 }, 'a closed pool refuses');

  const idle = new SmtpPool({ host: '127.0.0.1', port: sink.port }, { hostname: 'zegel.test', maxConnections: 1, timeout: 10_000, idleTimeout: 150 });
  t.teardown(() => idle.close());
  const opened = sink.sessions.opened;
  await send(idle, 100);
  await waitFor(() => sink.sessions.closed === sink.sessions.opened, 5000, 'the idle session said QUIT');
  t.equal(idle.size, 0);
  await send(idle, 101);
  t.equal(sink.sessions.opened, opened + 2, 'the next message opened a new session');
});

t.test('concurrent sends wait for a free session instead of opening more', async (t) => {
  const sink = await startDsnSink(t);
  const pool = new SmtpPool({ host: '127.0.0.1', port: sink.port }, { hostname: 'zegel.test', maxConnections: 2, timeout: 10_000 });
  t.teardown(() => pool.close());
  const messages = Array.from({ length: 40 }, (_, i) => Buffer.from(`Subject: ${i}\r\n\r\n${crypto.randomBytes(64).toString('hex')}\r\n`));
  const results = await Promise.all(messages.map((bytes, i) => pool.send({ from: 'a@org.test', to: [`r${i}@example.com`] }, { bytes })));
  t.equal(results.length, 40);
  t.equal(sink.sessions.opened, 2, 'two sessions carried all forty');
  for (const [i, bytes] of messages.entries()) {
    const got = sink.seen.find((m) => m.to[0]!.address === `r${i}@example.com`);
    t.ok(got?.raw.equals(bytes), `message ${i} intact`);
  }
});

t.test('over STARTTLS (opportunistic, unverified): the bytes arrive the same and the result names the TLS facts', async (t) => {
  const seen: Array<{ raw: Buffer; secure: boolean }> = [];
  // smtp-server's built-in self-signed certificate
  const server = new SMTPServer({
    authOptional: true,
    disabledCommands: ['AUTH'],
    logger: false,
    onData: (stream, session, callback) => {
      const chunks: Buffer[] = [];
      stream.on('data', (c: Buffer) => chunks.push(c));
      stream.on('end', () => {
        seen.push({ raw: Buffer.concat(chunks), secure: session.secure });
        callback();
      });
    },
  });
  server.on('error', () => undefined);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())));
  const transport: Transport = new SmtpTransport(`smtp://127.0.0.1:${(server.server.address() as { port: number }).port}`, options);
  t.teardown(() => transport.close());
  const bytes = trickyMessage('tls');
  const sent = await transport.send({ from: 'a@org.test', to: ['b@example.com'] }, { bytes }, 'x');
  t.equal(seen[0]?.secure, true, 'the session was upgraded');
  t.ok(seen[0]?.raw.equals(bytes), 'bytes unchanged');
  t.match(sent.tls, { version: /^TLSv1\.[23]$/, cipher: /\w/, verified: false });

  const plain = await startDsnSink(t);
  const clear: Transport = new SmtpTransport(plain.url, options);
  t.teardown(() => clear.close());
  t.match((await clear.send({ from: 'a@org.test', to: ['b@example.com'] }, { bytes }, 'y')).tls, { version: null, cipher: null, verified: false, policy: 'may' }, 'a plain-text session is recorded as such');
});

t.test('an address that needs it gets SMTPUTF8 on MAIL FROM; ASCII ones do not', async (t) => {
  const sink = await startDsnSink(t);
  const transport: Transport = new SmtpTransport(sink.url, options);
  t.teardown(() => transport.close());
  const bytes = trickyMessage('utf8');
  const sent = await transport.send({ from: 'a@org.test', to: ['jürgen@example.com'] }, { bytes }, 'x');
  t.same(sent.accepted, ['jürgen@example.com']);
  await transport.send({ from: 'a@org.test', to: ['jurgen@example.com'] }, { bytes }, 'y');
  const [utf8, ascii] = sink.seen;
  t.equal(utf8!.to[0]!.address, 'jürgen@example.com');
  t.match(utf8!.from && utf8!.from.args, { SMTPUTF8: true });
  t.notOk(ascii!.from && (ascii!.from.args as Record<string, unknown>).SMTPUTF8, 'no SMTPUTF8 for ASCII addresses');
});
