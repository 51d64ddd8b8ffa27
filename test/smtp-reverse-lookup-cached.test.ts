import dgram from 'node:dgram';
import dns from 'node:dns';
import net from 'node:net';
import t, { type Test } from 'tap';
import { deliverAll } from '../src/pipeline/decide.js';
import { ReverseLookupCache } from '../src/smtp/reverse-lookup.js';
import { startRelay, waitFor } from './helpers/relay.js';
import { startSink } from './helpers/sink.js';

/**
 * The client's reverse name (PTR) goes into the relay's Received field. It is
 * looked up once per client address a minute (src/smtp/reverse-lookup.ts),
 * not once per connection: checked against a real DNS server on loopback
 * that counts the queries it answers, with the process's resolver pointed at
 * it. The clients connect from 127.0.0.x addresses that /etc/hosts does not
 * name (c-ares answers those from the file, without a query).
 */

/** One message over a connection from `localAddress`; resolves with the reply to the end of DATA. */
async function sendFrom(port: number, localAddress: string, n: number): Promise<string> {
  const socket = net.connect({ port, host: '127.0.0.1', localAddress });
  socket.setEncoding('latin1');
  let buffer = '';
  const lines: string[] = [];
  const waiting: Array<() => void> = [];
  socket.on('data', (chunk: string) => {
    buffer += chunk;
    let at;
    while ((at = buffer.indexOf('\r\n')) !== -1) {
      const line = buffer.slice(0, at);
      buffer = buffer.slice(at + 2);
      if (/^\d{3} /.test(line)) lines.push(line);
      waiting.splice(0).forEach((wake) => wake());
    }
  });
  socket.on('error', () => undefined);
  const reply = async () => {
    while (!lines.length) await new Promise<void>((resolve) => waiting.push(resolve));
    return lines.shift()!;
  };
  try {
    await reply();
    for (const command of ['EHLO probe.test', 'MAIL FROM:<jan@org.test>', 'RCPT TO:<klant@example.com>', 'DATA']) {
      socket.write(`${command}\r\n`);
      await reply();
    }
    socket.write(`Subject: ${n}\r\nMessage-ID: <rl${n}@org.test>\r\n\r\nbody\r\n.\r\n`);
    return await reply();
  } finally {
    socket.end('QUIT\r\n');
  }
}

/** A DNS server on 127.0.0.1 (UDP) that answers every PTR query with `name` and counts them. */
async function startPtrServer(t: Test, first: string): Promise<{ port: number; queries: () => number; answer: (name: string | undefined) => void }> {
  const socket = dgram.createSocket('udp4');
  let count = 0;
  let name: string | undefined = first;
  socket.on('message', (query, peer) => {
    count++;
    // the question: after the 12-byte header, labels up to a zero byte, then type and class
    let end = 12;
    while (query[end] !== 0) end += query[end]! + 1;
    const question = query.subarray(12, end + 5);
    const header = Buffer.alloc(12);
    query.copy(header, 0, 0, 2); // the id
    header.writeUInt16BE(name ? 0x8180 : 0x8183, 2); // a response, recursion; NXDOMAIN without a name
    header.writeUInt16BE(1, 4);
    header.writeUInt16BE(name ? 1 : 0, 6);
    const parts: Buffer[] = [header, question];
    if (name) {
      const rdata = Buffer.concat([...name.split('.').map((label) => Buffer.concat([Buffer.from([label.length]), Buffer.from(label)])), Buffer.from([0])]);
      const answer = Buffer.alloc(12);
      answer.writeUInt16BE(0xc00c, 0); // the name: a pointer to the question's
      answer.writeUInt16BE(12, 2); // PTR
      answer.writeUInt16BE(1, 4); // IN
      answer.writeUInt32BE(300, 6);
      answer.writeUInt16BE(rdata.length, 10);
      parts.push(answer, rdata);
    }
    socket.send(Buffer.concat(parts), peer.port, peer.address);
  });
  await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', () => resolve()));
  t.teardown(() => socket.close());
  return { port: socket.address().port, queries: () => count, answer: (next) => (name = next) };
}

function pointDnsAt(t: Test, port: number): void {
  const servers = dns.getServers();
  dns.setServers([`127.0.0.1:${port}`]);
  t.teardown(() => dns.setServers(servers));
}

t.test('connections from one address share one reverse lookup; the Received field names the PTR', async (t) => {
  const ptr = await startPtrServer(t, 'mta1.org.test');
  pointDnsAt(t, ptr.port);
  const sink = await startSink(t);
  const { port } = await startRelay(t, { delivery: { target: sink.url } }, { classify: deliverAll });
  const send = async (n: number) => t.match(await sendFrom(port, '127.0.0.77', n), /^250 /, `message ${n} accepted`);
  for (let n = 0; n < 3; n++) await send(n);
  await Promise.all([3, 4, 5, 6, 7, 8].map(send));
  await waitFor(() => sink.messages.length === 9, 15_000, 'the deliveries');
  for (const message of sink.messages) {
    t.match(message.raw.toString('latin1'), /^Received: from probe\.test \(mta1\.org\.test \[127\.0\.0\.77\]\)\r\n/, 'the reverse name in Received');
  }
  t.equal(ptr.queries(), 1, 'nine connections, one PTR query');
});

t.test('the answer is kept for its minute, a failure for seconds, and each caller gets its own copy', async (t) => {
  const ptr = await startPtrServer(t, 'mta1.org.test');
  pointDnsAt(t, ptr.port);
  let now = 1_000_000;
  const cache = new ReverseLookupCache({ now: () => now });
  const lookup = (ip: string) =>
    new Promise<{ err: Error | null; names: string[] | undefined }>((resolve) => {
      let sync = true;
      cache.reverse(ip, (err, names) => {
        t.notOk(sync, 'answered asynchronously');
        resolve({ err, names });
      });
      sync = false;
    });
  const first = await lookup('127.0.0.78');
  t.same(first.names, ['mta1.org.test']);
  first.names!.shift(); // smtp-server takes the name off the array it gets
  t.same((await lookup('127.0.0.78')).names, ['mta1.org.test'], 'a later caller still gets the name');
  t.equal(ptr.queries(), 1, 'answered from the cache');

  ptr.answer('mta2.org.test');
  now += 59_000;
  t.same((await lookup('127.0.0.78')).names, ['mta1.org.test'], 'within the minute: the kept answer');
  now += 2_000;
  t.same((await lookup('127.0.0.78')).names, ['mta2.org.test'], 'after the minute: looked up again');
  t.equal(ptr.queries(), 2);

  ptr.answer(undefined);
  now += 61_000;
  t.ok((await lookup('127.0.0.78')).err, 'a failed lookup is a failure');
  ptr.answer('mta3.org.test');
  t.ok((await lookup('127.0.0.78')).err, 'kept for a few seconds');
  now += 6_000;
  t.same((await lookup('127.0.0.78')).names, ['mta3.org.test'], 'then looked up again');
  t.equal(ptr.queries(), 4);

  const together = await Promise.all([lookup('127.0.0.79'), lookup('127.0.0.79'), lookup('127.0.0.79')]);
  t.same(together.map((r) => r.names), [['mta3.org.test'], ['mta3.org.test'], ['mta3.org.test']]);
  t.equal(ptr.queries(), 5, 'lookups of one address at the same time share a query');
  t.ok((await lookup('not an address')).err, 'input dns.reverse refuses is an error');
});
