import crypto from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import t from 'tap';
import { SMTPServer } from 'smtp-server';
import { freePort, startChildRelay } from './helpers/child-relay.js';
import { startRelay, tempDir, waitFor, type Teardown } from './helpers/relay.js';
import { startSink } from './helpers/sink.js';
import { RawSmtp } from './helpers/smtp-client.js';

const LIMIT = 64 * 1024;

/** A message of exactly `total` bytes: CRLF lines, none starting with a dot, ending in CRLF. */
function messageOf(total: number, subject: string): Buffer {
  const header = `From: jan@org.test\r\nTo: a@example.com\r\nSubject: ${subject}\r\n\r\n`;
  let left = total - header.length;
  if (left < 2) throw new Error('too small');
  const lines: string[] = [];
  while (left > 0) {
    const len = Math.min(78, left);
    if (len < 2) {
      // cannot end on a 1-byte line: lengthen the previous one instead
      const prev = lines.pop()!;
      lines.push(`${prev.slice(0, -2)}x\r\n`);
      break;
    }
    // avoid leaving a 1-byte remainder
    const take = left - len === 1 ? len - 1 : len;
    lines.push(`${'a'.repeat(take - 2)}\r\n`);
    left -= take;
  }
  const message = Buffer.from(header + lines.join(''), 'latin1');
  if (message.length !== total) throw new Error(`built ${message.length}, wanted ${total}`);
  return message;
}

function spoolFiles(dataDir: string): string[] {
  const dir = path.join(dataDir, 'spool');
  return fs.existsSync(dir) ? fs.readdirSync(dir) : [];
}

async function sendData(smtp: RawSmtp, message: Buffer): Promise<string> {
  const data = await smtp.command('DATA');
  if (!data.startsWith('354')) return data;
  smtp.write(message);
  smtp.write('.\r\n');
  return smtp.reply(30_000);
}

t.test('a declared SIZE over smtp.maxMessageSize is refused at MAIL FROM with 552 5.3.4', async (t) => {
  const { port } = await startRelay(t, { smtp: { maxMessageSize: '64KB' } });
  const smtp = await RawSmtp.connect(port);
  t.teardown(() => smtp.close());
  const ehlo = await smtp.command('EHLO probe.test');
  t.match(ehlo, new RegExp(`^250[- ]SIZE ${LIMIT}$`, 'm'), 'the limit is advertised');
  t.match(await smtp.command(`MAIL FROM:<x@org.test> SIZE=${LIMIT + 1}`), /^552 5\.3\.4 /);
  t.match(await smtp.command(`MAIL FROM:<x@org.test> SIZE=${LIMIT}`), /^250 /, 'exactly the limit is fine');
});

t.test('undeclared DATA over the limit: 552 5.3.4 at the end of DATA, nothing spooled or delivered, the connection stays usable', async (t) => {
  const sink = await startSink(t);
  const { port, dataDir, logs } = await startRelay(t, { smtp: { maxMessageSize: '64KB' }, delivery: { target: sink.url } });
  const smtp = await RawSmtp.connect(port);
  t.teardown(() => smtp.close());

  await smtp.envelope('jan@org.test', ['a@example.com']);
  const big = messageOf(200 * 1024, 'too big');
  t.match(await sendData(smtp, big), /^552 5\.3\.4 /, '200 KB refused after the final dot');
  t.same(spoolFiles(dataDir), [], 'no spool file left behind');
  t.match(logs(), /"cause":"ZEGEL_MESSAGE_TOO_BIG"/);

  t.match(await smtp.command('MAIL FROM:<jan@org.test>'), /^250 /, 'the same connection takes a new transaction');
  t.match(await smtp.command('RCPT TO:<a@example.com>'), /^250 /);
  t.match(await sendData(smtp, messageOf(LIMIT + 1, 'one byte over')), /^552 5\.3\.4 /, 'one byte over the limit is refused');
  t.same(spoolFiles(dataDir), [], 'no spool file left behind by the one-byte-over message');

  await smtp.envelope('jan@org.test', ['a@example.com']);
  t.match(await sendData(smtp, messageOf(LIMIT, 'exactly the limit')), /^250 2\.6\.0 Ok: queued as /, 'exactly the limit is accepted');

  t.match(await smtp.command('MAIL FROM:<jan@org.test>'), /^250 /);
  t.match(await smtp.command('RCPT TO:<b@example.com>'), /^250 /);
  const small = messageOf(1000, 'small');
  t.match(await sendData(smtp, small), /^250 2\.6\.0 Ok: queued as /, 'a small message after it is accepted');

  await waitFor(() => sink.messages.length === 2, 10_000, 'two deliveries');
  await new Promise((resolve) => setTimeout(resolve, 300));
  t.equal(sink.messages.length, 2, 'only the two accepted messages arrived');
  const subjects = sink.messages.map((m) => /^Subject: (.*)$/m.exec(m.raw.toString('latin1'))?.[1]?.trim()).sort();
  t.same(subjects, ['exactly the limit', 'small']);
  const delivered = sink.messages.find((m) => m.to[0] === 'b@example.com');
  t.ok(delivered?.raw.toString('latin1').endsWith(small.toString('latin1')), 'the small message arrived intact');
  await waitFor(() => spoolFiles(dataDir).length === 0, 3_000, 'an empty spool after delivery').catch(() => undefined);
  t.same(spoolFiles(dataDir), [], 'the spool is empty once the accepted messages are delivered');
});

t.test('refused oversized messages never leave a spool file behind, however the bytes arrive', async (t) => {
  // The refusal races the asynchronous open of the spool file: a message that is
  // over the limit in its first chunk fails before the file is open. Repeat it.
  const { port, dataDir } = await startRelay(t, { smtp: { maxMessageSize: '64KB' } });
  const smtp = await RawSmtp.connect(port);
  t.teardown(() => smtp.close());
  const sizes = [LIMIT + 1, LIMIT + 100, 2 * LIMIT, 200 * 1024];
  const leftovers: string[] = [];
  let refused = 0;
  for (let i = 0; i < 40; i++) {
    await smtp.envelope('jan@org.test', ['a@example.com']);
    const reply = await sendData(smtp, messageOf(sizes[i % sizes.length]!, `over ${i}`));
    if (/^552 5\.3\.4 /.test(reply)) refused++;
    for (const name of spoolFiles(dataDir)) if (!leftovers.includes(name)) leftovers.push(name);
  }
  t.equal(refused, 40, 'every one refused with 552 5.3.4');
  t.same(leftovers, [], 'no spool file seen after any refusal');
  await new Promise((resolve) => setTimeout(resolve, 200));
  t.same(spoolFiles(dataDir), [], 'and none appears later');
});

/* ------------------------------------------------------------------ */
/* 200 MB through a relay child process: memory stays flat            */
/* ------------------------------------------------------------------ */

const BIG_CHUNK_LINES = 840;
const LINE = 78; // 76 characters + CRLF
const CHUNK = BIG_CHUNK_LINES * LINE;
const BIG_BODY = 200 * 1024 * 1024;
const CHUNKS = Math.ceil(BIG_BODY / CHUNK);
const MB = 1024 * 1024;
/**
 * Flat means: what the relay needs on top of its start-up size does not grow
 * with the message. Buffering the 200 MB message (or its decoded text) would
 * add at least 200 MB; streaming, classifying in 128 KiB text chunks and
 * delivering from the spool stays far below half of that.
 */
const GROWTH_LIMIT = 100 * MB;

/** VmHWM / VmRSS of a process, in bytes. */
function memoryOf(pid: number): { hwm: number; rss: number } {
  const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (name: string) => Number(new RegExp(`^${name}:\\s+(\\d+) kB$`, 'm').exec(status)?.[1] ?? NaN) * 1024;
  return { hwm: kb('VmHWM'), rss: kb('VmRSS') };
}

interface Counted {
  from: string;
  to: string[];
  size: number;
  header: string;
  bodyBytes: number;
  bodyHash: string;
}

/** A next hop that counts and hashes what it receives instead of keeping it. */
async function startCountingSink(t: Teardown): Promise<{ port: number; messages: Counted[] }> {
  const messages: Counted[] = [];
  const server = new SMTPServer({
    authOptional: true,
    disabledCommands: ['STARTTLS', 'AUTH'],
    logger: false,
    size: 0,
    onData(stream, session, callback) {
      let size = 0;
      let head: Buffer | undefined = Buffer.alloc(0);
      let header = '';
      let bodyBytes = 0;
      const hash = crypto.createHash('sha256');
      stream.on('data', (chunk: Buffer) => {
        size += chunk.length;
        if (head) {
          head = Buffer.concat([head, chunk]);
          const end = head.indexOf('\r\n\r\n');
          if (end === -1) return;
          header = head.subarray(0, end + 4).toString('latin1');
          const rest = head.subarray(end + 4);
          head = undefined;
          bodyBytes += rest.length;
          hash.update(rest);
        } else {
          bodyBytes += chunk.length;
          hash.update(chunk);
        }
      });
      stream.on('end', () => {
        messages.push({
          from: session.envelope.mailFrom ? session.envelope.mailFrom.address : '',
          to: session.envelope.rcptTo.map((r) => r.address),
          size,
          header,
          bodyBytes,
          bodyHash: hash.digest('hex'),
        });
        callback();
      });
    },
  });
  server.on('error', () => undefined);
  await new Promise<void>((resolve, reject) => {
    server.server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())));
  return { port: (server.server.address() as net.AddressInfo).port, messages };
}


t.test('a 200 MB message streams through a relay process with flat memory', async (t) => {
  const sink = await startCountingSink(t);
  const dir = tempDir(t);
  const relay = await startChildRelay(t, path.join(dir, 'zegel.yaml'), {
    smtp: { listen: `127.0.0.1:${await freePort()}`, maxMessageSize: '300MB' },
    delivery: { target: `smtp://127.0.0.1:${sink.port}` },
    data: { dir: path.join(dir, 'data') },
    log: { level: 'info' },
  });
  const pid = relay.child.pid!;
  const before = memoryOf(pid);
  t.comment(`relay at start: VmHWM ${(before.hwm / MB).toFixed(1)} MB, VmRSS ${(before.rss / MB).toFixed(1)} MB`);

  const client = await RawSmtp.connect(relay.port);
  t.teardown(() => client.close());
  for (const line of ['EHLO probe.test', 'MAIL FROM:<big@org.test>', 'RCPT TO:<sink@example.com>']) {
    t.match(await client.command(line), /^250[- ]/, line);
  }
  t.match(await client.command('DATA'), /^354 /);

  const header = 'From: big@org.test\r\nTo: sink@example.com\r\nSubject: 200 MB\r\nMessage-ID: <big-200mb@org.test>\r\n\r\n';
  const template = Buffer.alloc(CHUNK);
  for (let i = 0; i < BIG_CHUNK_LINES; i++) {
    template.write(`${String(i).padStart(4, '0')} ${'abcdefghijklmnopqrstuvwxyz0123456789'.repeat(3).slice(0, 71)}\r\n`, i * LINE, 'latin1');
  }
  const hash = crypto.createHash('sha256');
  const started = Date.now();
  await client.send(header);
  for (let n = 0; n < CHUNKS; n++) {
    const chunk = Buffer.from(template);
    chunk.write(String(n).padStart(8, '0'), 0, 'latin1'); // every chunk differs
    hash.update(chunk);
    await client.send(chunk);
  }
  await client.send('.\r\n');
  const reply = await client.reply(90_000);
  const sentMs = Date.now() - started;
  t.match(reply, /^250 2\.6\.0 Ok: queued as \S+$/, 'accepted');
  const bodyBytes = CHUNKS * CHUNK;
  t.comment(`sent ${(bodyBytes / MB).toFixed(1)} MB in ${sentMs} ms`);

  const accepted = memoryOf(pid);
  t.comment(`relay after 250: VmHWM ${(accepted.hwm / MB).toFixed(1)} MB, VmRSS ${(accepted.rss / MB).toFixed(1)} MB`);
  t.ok(accepted.hwm - before.hwm < GROWTH_LIMIT, `relay peak memory while receiving grows by ${((accepted.hwm - before.hwm) / MB).toFixed(1)} MB, less than ${GROWTH_LIMIT / MB} MB`);

  await waitFor(() => sink.messages.length === 1, 90_000, 'the 200 MB message at the next hop');
  const delivered = memoryOf(pid);
  t.comment(`relay after delivery: VmHWM ${(delivered.hwm / MB).toFixed(1)} MB, VmRSS ${(delivered.rss / MB).toFixed(1)} MB; delivered ${Date.now() - started} ms after the first byte`);
  t.ok(delivered.hwm - before.hwm < GROWTH_LIMIT, `relay peak memory including classification and delivery grows by ${((delivered.hwm - before.hwm) / MB).toFixed(1)} MB, less than ${GROWTH_LIMIT / MB} MB`);

  const [message] = sink.messages;
  t.equal(message?.from, 'big@org.test');
  t.same(message?.to, ['sink@example.com']);
  t.equal(message?.bodyBytes, bodyBytes, 'every body byte arrived');
  t.equal(message?.bodyHash, hash.digest('hex'), 'the body arrived unchanged');
  t.match(message?.header, /^Received: from probe\.test /, 'one Received field first');
  t.ok(message?.header.endsWith(header), 'then the original header');
  t.equal(message?.size, message!.header.length + bodyBytes, 'delivered size = Received field + original message');

  await waitFor(() => fs.readdirSync(path.join(dir, 'data', 'spool')).length === 0, 10_000, 'the spool file to go');
  t.equal(relay.child.exitCode, null, 'the relay is still running');
});
