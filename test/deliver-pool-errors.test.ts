import crypto from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import t, { type Test } from 'tap';
import { SMTPServer } from 'smtp-server';
import { SmtpTransport, TransportError, type Transport } from '../src/deliver/transport.js';
import { waitFor } from './helpers/relay.js';

const options = { hostname: 'zegel.test', maxConnections: 2, timeout: 10_000 };
const bytes = Buffer.from('From: a@org.test\r\nSubject: fouten\r\n\r\n.punt\r\nTot ziens.\r\n');

type Verdict = { code: number; message: string } | undefined;

/** An smtp-server sink whose replies to MAIL, RCPT and the end of DATA the test decides. */
async function startSink(t: Test, behaviour: { mail?: (a: string) => Verdict; rcpt?: (a: string) => Verdict; data?: () => Verdict; size?: number }) {
  const stats = { opened: 0, messages: [] as Buffer[] };
  const refuse = (v: Verdict, callback: (err?: Error | null) => void) =>
    v ? callback(Object.assign(new Error(v.message), { responseCode: v.code })) : callback();
  const server = new SMTPServer({
    authOptional: true,
    disabledCommands: ['STARTTLS', 'AUTH'],
    logger: false,
    size: behaviour.size ?? 0,
    onConnect: (_s, cb) => {
      stats.opened++;
      cb();
    },
    onMailFrom: (address, _s, cb) => refuse(behaviour.mail?.(address.address), cb),
    onRcptTo: (address, _s, cb) => refuse(behaviour.rcpt?.(address.address), cb),
    onData: (stream, _s, cb) => {
      const chunks: Buffer[] = [];
      stream.on('data', (c: Buffer) => chunks.push(c));
      stream.on('end', () => {
        const verdict = behaviour.data?.();
        if (!verdict) stats.messages.push(Buffer.concat(chunks));
        refuse(verdict, cb);
      });
    },
  });
  server.on('error', () => undefined);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())));
  return { stats, url: `smtp://127.0.0.1:${(server.server.address() as net.AddressInfo).port}` };
}

/**
 * A next hop scripted at the socket: per connection (numbered from 1) it may
 * stay silent, drop the connection when DATA's bytes start, or drop it at the
 * next MAIL FROM after its first message. No PIPELINING, so commands come one
 * at a time.
 */
async function startScripted(t: Test, script: (connection: number) => 'silent' | 'drop-in-data' | 'drop-second-mail' | 'normal') {
  const stats = { connections: 0, dataCommands: 0, messages: 0 };
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => undefined);
    const mode = script(++stats.connections);
    if (mode === 'silent') return;
    let inData = false;
    let done = 0;
    let buffer = '';
    const reply = (line: string) => socket.write(`${line}\r\n`);
    reply('220 scripted.test ESMTP');
    socket.on('data', (chunk: Buffer) => {
      buffer += chunk.toString('latin1');
      for (;;) {
        if (inData) {
          if (mode === 'drop-in-data') return void socket.destroy();
          const end = `\r\n${buffer}`.indexOf('\r\n.\r\n');
          if (end === -1) return;
          buffer = buffer.slice(end + 3);
          inData = false;
          done++;
          stats.messages++;
          reply('250 2.0.0 Ok: taken');
          continue;
        }
        const eol = buffer.indexOf('\r\n');
        if (eol === -1) return;
        const line = buffer.slice(0, eol);
        buffer = buffer.slice(eol + 2);
        const verb = line.slice(0, 4).toUpperCase();
        if (verb === 'EHLO') reply('250-scripted.test\r\n250 8BITMIME');
        else if (verb === 'MAIL') {
          if (mode === 'drop-second-mail' && done >= 1) return void socket.destroy();
          reply('250 2.1.0 Ok');
        } else if (verb === 'RCPT' || verb === 'RSET' || verb === 'NOOP') reply('250 2.1.5 Ok');
        else if (verb === 'DATA') {
          stats.dataCommands++;
          inData = true;
          reply('354 End data with <CR><LF>.<CR><LF>');
        } else if (verb === 'QUIT') {
          reply('221 2.0.0 Bye');
          socket.end();
        } else reply('502 5.5.2 Error: command not recognized');
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  t.teardown(() => {
    for (const s of sockets) s.destroy();
    return new Promise<void>((resolve) => server.close(() => resolve()));
  });
  return { stats, url: `smtp://127.0.0.1:${(server.address() as net.AddressInfo).port}` };
}

function transportFor(t: Test, url: string, extra: Partial<typeof options> = {}): Transport {
  const transport = new SmtpTransport(url, { ...options, ...extra });
  t.teardown(() => transport.close());
  return transport;
}

t.test('some recipients refused: the rest delivered, each refusal with its own reply and code', async (t) => {
  const sink = await startSink(t, {
    rcpt: (a) => (a.startsWith('weg@') ? { code: 550, message: '5.1.1 <weg@example.com>: user unknown' } : a.startsWith('later@') ? { code: 450, message: '4.2.1 mailbox busy' } : undefined),
  });
  const transport = transportFor(t, sink.url);
  const sent = await transport.send({ from: 'a@org.test', to: ['ja@example.com', 'weg@example.com', 'later@example.com'] }, { bytes }, 'x');
  t.same(sent.accepted, ['ja@example.com']);
  t.same(sent.rejected, [
    { address: 'weg@example.com', code: 550, reply: '550 5.1.1 <weg@example.com>: user unknown' },
    { address: 'later@example.com', code: 450, reply: '450 4.2.1 mailbox busy' },
  ]);
  t.match(sent.reply, /^250 /);
  t.equal(sink.stats.messages.length, 1);
});

t.test('all recipients refused: no error, every refusal reported; the session is reset and reused', async (t) => {
  const sink = await startSink(t, { rcpt: (a) => (a.startsWith('ok@') ? undefined : { code: 550, message: '5.1.1 no such user' }) });
  const transport = transportFor(t, sink.url, { maxConnections: 1 });
  const sent = await transport.send({ from: 'a@org.test', to: ['x@example.com', 'y@example.com'] }, { bytes }, 'x');
  t.same(sent.accepted, []);
  t.same(sent.rejected.map((r) => [r.address, r.code, r.reply]), [
    ['x@example.com', 550, '550 5.1.1 no such user'],
    ['y@example.com', 550, '550 5.1.1 no such user'],
  ]);
  t.equal(sent.remoteMta, '127.0.0.1');
  const next = await transport.send({ from: 'a@org.test', to: ['ok@example.com'] }, { bytes }, 'y');
  t.same(next.accepted, ['ok@example.com']);
  t.equal(sink.stats.opened, 1, 'the same session carried the next message');
});

t.test('4xx and 5xx at the end of DATA and on MAIL FROM: TransportError with the reply; the session stays usable', async (t) => {
  let dataVerdict: Verdict = { code: 451, message: '4.3.0 try again later' };
  let mailVerdict: Verdict;
  const sink = await startSink(t, { data: () => dataVerdict, mail: () => mailVerdict });
  const transport = transportFor(t, sink.url, { maxConnections: 1 });
  const send = () => transport.send({ from: 'a@org.test', to: ['b@example.com'] }, { bytes }, 'x');

  const temporary = await send().catch((e: unknown) => e);
  t.ok(temporary instanceof TransportError);
  t.match(temporary, { code: 451, reply: '451 4.3.0 try again later', remoteMta: '127.0.0.1', permanent: false });

  dataVerdict = { code: 554, message: '5.7.1 rejected by policy' };
  t.match(await send().catch((e: unknown) => e), { code: 554, reply: '554 5.7.1 rejected by policy', permanent: true });

  dataVerdict = undefined;
  mailVerdict = { code: 553, message: '5.7.1 sender refused' };
  t.match(await send().catch((e: unknown) => e), { code: 553, reply: '553 5.7.1 sender refused', permanent: true });

  mailVerdict = undefined;
  t.match(await send(), { accepted: ['b@example.com'] });
  t.equal(sink.stats.opened, 1, 'one session through all four');
});

t.test('the next hop closes the connection in the middle of DATA: a temporary failure, not sent twice', async (t) => {
  const server = await startScripted(t, (n) => (n === 1 ? 'drop-in-data' : 'normal'));
  const transport = transportFor(t, server.url);
  const failure = await transport.send({ from: 'a@org.test', to: ['b@example.com'] }, { bytes }, 'x').catch((e: unknown) => e);
  t.ok(failure instanceof TransportError);
  t.match(failure, { code: 0, permanent: false, remoteMta: '127.0.0.1' });
  t.match((failure as TransportError).reply, /ECONNECTION|ESOCKET|closed/i);
  t.equal(server.stats.dataCommands, 1, 'the message was not retried by the pool once its bytes had started');
  t.match(await transport.send({ from: 'a@org.test', to: ['b@example.com'] }, { bytes }, 'y'), { accepted: ['b@example.com'] });
  t.equal(server.stats.connections, 2, 'the next message got a new session');
});

t.test('a reused session the next hop dropped before the message started: sent again on a new session', async (t) => {
  const server = await startScripted(t, (n) => (n === 1 ? 'drop-second-mail' : 'normal'));
  const transport = transportFor(t, server.url, { maxConnections: 1 });
  await transport.send({ from: 'a@org.test', to: ['b@example.com'] }, { bytes }, 'x');
  const second = await transport.send({ from: 'a@org.test', to: ['c@example.com'] }, { bytes }, 'y');
  t.same(second.accepted, ['c@example.com']);
  t.equal(server.stats.connections, 2);
  t.equal(server.stats.messages, 2);
});

t.test('no greeting within delivery.timeout, or no listener: a network failure (code 0)', async (t) => {
  const silent = await startScripted(t, () => 'silent');
  const transport = transportFor(t, silent.url, { timeout: 300 });
  const started = Date.now();
  const failure = await transport.send({ from: 'a@org.test', to: ['b@example.com'] }, { bytes }, 'x').catch((e: unknown) => e);
  t.ok(failure instanceof TransportError);
  t.match(failure, { code: 0, permanent: false });
  t.match((failure as TransportError).reply, /^ETIMEDOUT /);
  t.ok(Date.now() - started < 5000, `gave up after ${Date.now() - started} ms`);

  const closed = net.createServer();
  await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', () => resolve()));
  const port = (closed.address() as net.AddressInfo).port;
  await new Promise<void>((resolve) => closed.close(() => resolve()));
  const refused = await transportFor(t, `smtp://127.0.0.1:${port}`).send({ from: 'a@org.test', to: ['b@example.com'] }, { bytes }, 'x').catch((e: unknown) => e);
  t.match(refused, { code: 0 });
  t.match((refused as TransportError).reply, /ECONNREFUSED|ECONNECTION|ESOCKET/);
});

t.test('a message over the next hop\'s SIZE is refused before DATA as permanent (552), its file closed', async (t) => {
  const sink = await startSink(t, { size: 1000 });
  const transport = transportFor(t, sink.url, { maxConnections: 1 });
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'zegel-pool-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const file = path.join(dir, 'groot.eml');
  fs.writeFileSync(file, Buffer.concat([bytes, Buffer.from(`${'x'.repeat(998)}\r\n`.repeat(3))]));
  const fds = () => fs.readdirSync('/proc/self/fd').length;
  // the session is open before counting descriptors
  await transport.send({ from: 'a@org.test', to: ['b@example.com'] }, { bytes }, 'w');
  const before = fds();
  const failure = await transport.send({ from: 'a@org.test', to: ['b@example.com'] }, { path: file }, 'x').catch((e: unknown) => e);
  t.match(failure, { code: 552, permanent: true });
  t.match((failure as TransportError).reply, /^552 5\.3\.4 .*1000/);
  t.equal(sink.stats.messages.length, 1, 'only the small one arrived');
  await waitFor(() => fds() === before, 2000, 'the spool file closed');
  t.pass('no file descriptor left open');
  t.match(await transport.send({ from: 'a@org.test', to: ['b@example.com'] }, { bytes }, 'y'), { accepted: ['b@example.com'] });
  t.equal(sink.stats.opened, 1, 'the session was kept');
});

t.test('a 20 MB spool file is streamed: identical at the next hop, memory bounded', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'zegel-pool-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const file = path.join(dir, 'groot.eml');
  const line = (i: number) => (i % 97 === 0 ? `.${'p'.repeat(74)}\r\n` : `${crypto.createHash('sha256').update(String(i)).digest('base64').slice(0, 43)}${'q'.repeat(32)}\r\n`);
  const fd = fs.openSync(file, 'w');
  fs.writeSync(fd, 'From: a@org.test\r\nSubject: groot\r\n\r\n');
  const block: string[] = [];
  for (let i = 0; fs.fstatSync(fd).size < 20 * 1024 * 1024; i++) {
    block.push(line(i));
    if (block.length === 10_000) fs.writeSync(fd, block.splice(0).join(''));
  }
  fs.writeSync(fd, block.join(''));
  fs.closeSync(fd);
  const size = fs.statSync(file).size;
  const expected = crypto.createHash('sha256').update(fs.readFileSync(file)).digest('hex');

  // the sink hashes as it receives and keeps nothing
  let received = '';
  const server = new SMTPServer({
    authOptional: true,
    disabledCommands: ['STARTTLS', 'AUTH'],
    logger: false,
    onData: (stream, _s, cb) => {
      const hash = crypto.createHash('sha256');
      stream.on('data', (c: Buffer) => hash.update(c));
      stream.on('end', () => {
        received = hash.digest('hex');
        cb();
      });
    },
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())));
  const transport = transportFor(t, `smtp://127.0.0.1:${(server.server.address() as net.AddressInfo).port}`);

  const baseline = process.memoryUsage().rss;
  let peak = baseline;
  const sampler = setInterval(() => (peak = Math.max(peak, process.memoryUsage().rss)), 2);
  try {
    await transport.send({ from: 'a@org.test', to: ['b@example.com'] }, { path: file }, 'x');
  } finally {
    clearInterval(sampler);
  }
  t.equal(received, expected, `${size} bytes arrived identical`);
  const growth = (peak - baseline) / 1024 / 1024;
  t.ok(growth < 16, `RSS grew ${growth.toFixed(1)} MB while sending ${(size / 1024 / 1024).toFixed(1)} MB (sender and sink in one process)`);
});
