import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { PassThrough, Readable, Transform, Writable, type TransformCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import t, { type Test } from 'tap';
import { OriginSigner } from '../src/crypto/origin.js';
import { ZegelError } from '../src/errors.js';
import { deliverAll } from '../src/pipeline/decide.js';
import { HeaderGuard } from '../src/smtp/header-guard.js';
import { replyFor } from '../src/smtp/ingress.js';
import { Intake } from '../src/smtp/intake.js';
import { LineEndingGuard, type BareLineEndingMode } from '../src/smtp/line-endings.js';
import { NulGuard } from '../src/smtp/nul-guard.js';
import { Spool } from '../src/spool/spool.js';
import { startRelay, stripFirstReceived, tempDir, type TestRelay } from './helpers/relay.js';
import { startSink } from './helpers/sink.js';
import { RawSmtp } from './helpers/smtp-client.js';

/**
 * The ingress takes DATA in one synchronous pass per chunk (src/smtp/intake.ts)
 * instead of five piped Transforms (size limit, NUL guard, line-ending guard,
 * header guard, small-message capture) into a WriteStream. This test holds the
 * one pass to the multi-stage path it replaced: for a corpus of odd inputs
 * (dot lines, every bare CR/LF variant, NUL, headers at and over the limit,
 * forged X-Zegel fields, hops, 8-bit bytes, messages without a body or
 * without a header, large ones that go to disk in pieces), cut into chunks at
 * every position of each CRLF and of the header end, the bytes in the spool
 * file and the error are those of the old stages piped together, in both
 * `smtp.bareLineEndings` modes. First directly (an Intake on a real stream
 * and a real spool directory, every cut), then over SMTP into the real relay
 * (the file the relay left in its spool, the reply the client got).
 */

const MAX_HEADER_BYTES = 1024 * 1024; // the ingress's limit
const RECEIVED = 'Received: from probe.test ([127.0.0.1])\r\n\tby relay.test (Zegel) with ESMTP id Q1;\r\n\tMon, 23 Nov 2026 13:05:09 +0000\r\n';
const SENDER = 'jan@org.test';
const RCPT = 'klant@example.com';
const signer = new OriginSigner(crypto.randomBytes(32));

/** The size stage of the old pipeline, as it was in src/smtp/ingress.ts. */
class SizeGuard extends Transform {
  bytes = 0;
  constructor(readonly limit: number) {
    super();
  }
  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.bytes += chunk.length;
    if (this.bytes > this.limit) return callback(new ZegelError('ZEGEL_MESSAGE_TOO_BIG', 'message exceeds the size limit'));
    callback(null, chunk);
  }
}

type Outcome = { bytes: Buffer; size: number } | { error: string };

/** The multi-stage path: the old stages piped together, as the ingress ran them. */
async function multiStage(chunks: Buffer[], mode: BareLineEndingMode, maxBytes: number): Promise<Outcome> {
  const size = new SizeGuard(maxBytes);
  const out: Buffer[] = [];
  try {
    await pipeline(
      Readable.from(chunks, { objectMode: false }),
      size,
      new NulGuard(),
      new LineEndingGuard(mode),
      new HeaderGuard({ signer, recipients: [RCPT], received: RECEIVED, maxHeaderBytes: MAX_HEADER_BYTES }),
      new Writable({ write: (chunk: Buffer, _e, cb) => (out.push(chunk), cb()) }),
    );
  } catch (err) {
    return { error: (err as ZegelError).code };
  }
  return { bytes: Buffer.concat(out), size: size.bytes };
}

let serial = 0;
/** The one pass: an Intake reading a real stream, writing into a real spool directory. */
async function onePass(spool: Spool, chunks: Buffer[], mode: BareLineEndingMode, maxBytes: number): Promise<Outcome & { file?: boolean }> {
  const id = `q${++serial}`;
  const source = new PassThrough();
  const intake = new Intake(source, { spool, id, maxBytes, bareLineEndings: mode, header: { signer, recipients: [RCPT], received: RECEIVED, maxHeaderBytes: MAX_HEADER_BYTES } });
  for (const chunk of chunks) if (!source.write(chunk)) await new Promise((resolve) => source.once('drain', resolve));
  source.end();
  try {
    await intake.done;
  } catch (err) {
    const leftOpen = intake.created && fs.existsSync(spool.pathOf(id));
    if (leftOpen) fs.rmSync(spool.pathOf(id));
    return { error: (err as ZegelError).code };
  }
  const bytes = fs.readFileSync(spool.pathOf(id));
  fs.rmSync(spool.pathOf(id));
  if (intake.small && !intake.small.equals(bytes)) throw new Error('the in-memory copy differs from the file');
  if (!intake.small && bytes.length <= spool.cache.maxEntryBytes) throw new Error('a small message was not kept in memory');
  return { bytes, size: intake.bytes };
}

const lat = (s: string) => Buffer.from(s, 'latin1');
const H = 'From: <jan@org.test>\r\nTo: <klant@example.com>\r\nSubject: odd input\r\nMessage-ID: <odd.1@org.test>\r\n';

/** Messages as the data stream carries them (dot-unstuffed). */
const CORPUS: Array<[string, Buffer]> = [
  ['plain', lat(`${H}\r\nHallo,\r\n\r\ntot morgen.\r\n`)],
  ['dot lines', lat(`${H}\r\n.\r\n..\r\n.leading dot\r\n...three\r\nend.\r\n`)],
  ['bare LF everywhere', lat('From: <jan@org.test>\nSubject: lf\n\nbody\n.\nmore\n')],
  ['bare CR everywhere', lat('From: <jan@org.test>\rSubject: cr\r\rbody\r.\rmore\r\n')],
  ['mixed line ends', lat(`${H}\r\na\r\r\nb\n\rc\r\n\nd\r\r\r\ne\n\n\r\n`)],
  ['LF header end', lat(`${H}\nbody after an LF-ended header\r\n`)],
  ['CR LF LF header end', lat(`${H.slice(0, -2)}\r\n\n\r\nbody\r\n`)],
  ['NUL in the body', lat(`${H}\r\nbefore\r\n\0.\r\nafter\r\n`)],
  ['NUL in the header', lat(`From: <jan@org.test>\r\nSubject: a\0b\r\n\r\nbody\r\n`)],
  ['bare LF then NUL', lat(`${H}\r\nx\ny\0z\r\n`)],
  ['forged X-Zegel fields and hops', lat(`Received: from a\r\n\tby b; Mon, 1 Jan 2026 00:00:00 +0000\r\nX-Zegel-Origin: forged\r\nX-Zegel-Decision: deliver\r\nx-zegel-other:\r\n folded\r\nReceived: from c by d; Mon, 1 Jan 2026 00:00:01 +0000\r\n${H}\r\nbody\r\n`)],
  ['folded Message-ID', lat('From: <jan@org.test>\r\nMessage-ID:\r\n <folded.2@org.test>\r\nSubject: f\r\n\r\nbody\r\n')],
  ['8-bit', lat(`${H}Content-Type: text/plain; charset=utf-8\r\n\r\n${Buffer.from('één ß 😀 \u00ff', 'utf8').toString('latin1')}\xff\xfe\x80\r\n`)],
  ['all header, no body', lat(`${H}`)],
  ['no header', lat('\r\nonly a body\r\n')],
  ['no header, bare LF', lat('\nonly a body\n')],
  ['header line without a colon', lat('From: <jan@org.test>\r\nno colon here\r\n\r\nbody\r\n')],
];

/** Cuts `data` into two pieces at `at`, and into three around every CRLF and the header end. */
function cuts(data: Buffer): Buffer[][] {
  const out: Buffer[][] = [[data]];
  for (let at = 1; at < data.length; at++) out.push([data.subarray(0, at), data.subarray(at)]);
  const marks: number[] = [];
  for (let i = 0; i < data.length; i++) if (data[i] === 0x0d || data[i] === 0x0a) marks.push(i);
  for (const m of marks) for (const a of [m - 1, m, m + 1]) for (const b of [m + 1, m + 2, m + 3]) if (a > 0 && b > a && b < data.length) out.push([data.subarray(0, a), data.subarray(a, b), data.subarray(b)]);
  // byte by byte
  out.push([...data].map((byte) => Buffer.from([byte])));
  return out;
}

/** A large message (several hundred KiB): to disk in pieces, odd line ends throughout. */
function large(seed: number, crlfOnly = false): Buffer {
  const rnd = crypto.createHash('sha256').update(String(seed)).digest();
  const lines: string[] = [H];
  for (let i = 0; i < 6000; i++) {
    const end = crlfOnly ? '\r\n' : ['\r\n', '\n', '\r\n', '\r', '\r\n'][(rnd[i % 32]! + i) % 5]!;
    lines.push(`${i % 7 === 0 ? '.' : ''}line ${i} ${'x'.repeat((rnd[(i * 7) % 32]! % 90) + 1)}\xe9${end}`);
  }
  return lat(`${lines.join('')}\r\n`);
}

/** A message whose header block (its fields up to the empty line) is `n` bytes; without an end: no empty line. */
function headerOf(n: number, withEnd = true): Buffer {
  const field = `X-Filler: ${'h'.repeat(990)}\r\n`;
  let block = 'From: <jan@org.test>\r\n';
  while (block.length + field.length + 20 <= n) block += field;
  block += `X-Pad: ${'p'.repeat(n - block.length - 9)}\r\n`;
  if (block.length !== n) throw new Error(`header block of ${block.length}, wanted ${n}`);
  return lat(withEnd ? `${block}\r\nbody\r\n` : `${block}${'X-More: more\r\n'.repeat(10)}`);
}

/** What differs between two outcomes, or undefined. */
function difference(actual: Outcome, expected: Outcome): string | undefined {
  if ('error' in expected) return 'error' in actual && actual.error === expected.error ? undefined : `expected ${expected.error}, got ${'error' in actual ? actual.error : 'the message taken'}`;
  if ('error' in actual) return `refused with ${actual.error}, the multi-stage path took it`;
  if (actual.size !== expected.size) return `size ${actual.size}, expected ${expected.size}`;
  if (!actual.bytes.equals(expected.bytes)) return `bytes differ: ${JSON.stringify(actual.bytes.toString('latin1').slice(0, 300))} against ${JSON.stringify(expected.bytes.toString('latin1').slice(0, 300))}`;
  return undefined;
}

function same(t: Test, actual: Outcome, expected: Outcome, what: string): void {
  t.equal(difference(actual, expected), undefined, what);
}

t.test('one pass over DATA writes what the multi-stage path wrote, at every chunk border', async (t) => {
  const spool = new Spool(tempDir(t));
  for (const mode of ['normalise', 'reject'] as const) {
    for (const [name, data] of CORPUS) {
      let differing = 0;
      const all = cuts(data);
      for (const chunks of all) {
        const expected = await multiStage(chunks, mode, 50 * 1024 * 1024);
        const actual = await onePass(spool, chunks, mode, 50 * 1024 * 1024);
        const why = difference(actual, expected);
        if (why && ++differing === 1) t.fail(`${mode}, ${name}: cut as ${JSON.stringify(chunks.map((c) => c.length))}: ${why}`);
      }
      t.equal(differing, 0, `${mode}, ${name}: the same outcome for all ${all.length} cuts`);
    }
  }
  t.same(await onePass(spool, [lat(`${H}\r\nx\r\n`)], 'reject', 50), { error: 'ZEGEL_MESSAGE_TOO_BIG' }, 'the size limit is the first check');
  t.same(fs.readdirSync(spool.dir), [], 'nothing left in the spool');
});

t.test('size limit, header limit and large messages: the same outcome', async (t) => {
  const spool = new Spool(tempDir(t));
  const cases: Array<[string, Buffer[], number]> = [];
  const body = lat(`${H}\r\n${'0123456789abcdef'.repeat(64)}\r\n`);
  for (const limit of [body.length - 1, body.length, body.length + 1]) cases.push([`${body.length} bytes against a limit of ${limit}`, [body.subarray(0, 700), body.subarray(700)], limit]);
  cases.push(['size limit passed inside a chunk with a NUL before it', [lat(`${H}\r\n\0`), lat('x'.repeat(100))], 120 + H.length]);
  for (const n of [MAX_HEADER_BYTES - 1, MAX_HEADER_BYTES, MAX_HEADER_BYTES + 1]) {
    const data = headerOf(n);
    cases.push([`a header block of ${n} bytes`, [data.subarray(0, 300_000), data.subarray(300_000, n - 1), data.subarray(n - 1)], 50 * 1024 * 1024]);
  }
  const endless = headerOf(MAX_HEADER_BYTES, false);
  cases.push(['a header that does not end within the limit', [endless.subarray(0, 600_000), endless.subarray(600_000)], 50 * 1024 * 1024]);
  for (const seed of [1, 2]) {
    const data = large(seed);
    const pieces: Buffer[] = [];
    for (let at = 0; at < data.length; at += 10_000 + seed * 3) pieces.push(data.subarray(at, at + 10_000 + seed * 3));
    cases.push([`a large message (${data.length} bytes) in ${pieces.length} chunks`, pieces, 50 * 1024 * 1024]);
  }
  const withNul = Buffer.concat([large(3), lat('\0\r\n')]);
  cases.push(['a large message with a NUL at its end', [withNul.subarray(0, 200_000), withNul.subarray(200_000)], 50 * 1024 * 1024]);
  for (const mode of ['normalise', 'reject'] as const) {
    for (const [name, chunks, limit] of cases) {
      const expected = await multiStage(chunks, mode, limit);
      same(t, await onePass(spool, chunks, mode, limit), expected, `${mode}: ${name} (${'error' in expected ? expected.error : 'taken'})`);
    }
  }
  t.same(fs.readdirSync(spool.dir), [], 'nothing left in the spool');
});

t.test('a client that goes away in the middle of DATA leaves no file and no open descriptor', async (t) => {
  const spool = new Spool(tempDir(t));
  for (const data of [lat(`${H}\r\nsmall\r\n`), large(4)]) {
    const source = new PassThrough();
    const intake = new Intake(source, { spool, id: `gone${data.length}`, maxBytes: 50 * 1024 * 1024, bareLineEndings: 'normalise', header: { signer, recipients: [RCPT], received: RECEIVED, maxHeaderBytes: MAX_HEADER_BYTES } });
    source.write(data);
    source.destroy();
    await t.rejects(intake.done, { code: 'ECONNECTION' }, `${data.length} bytes: done rejects`);
    if (intake.created) fs.rmSync(spool.pathOf(`gone${data.length}`));
  }
  t.same(fs.readdirSync(spool.dir), [], 'nothing left in the spool');
});

/** Dot-stuffing as smtp-server undoes it: a dot after any LF (or at the start) is doubled. */
const stuff = (data: Buffer): Buffer => lat(data.toString('latin1').replace(/(^|\n)\./g, '$1..'));

async function sendPieces(port: number, pieces: Buffer[]): Promise<string> {
  const client = await RawSmtp.connect(port);
  try {
    await client.envelope(SENDER, [RCPT]);
    const data = await client.command('DATA');
    if (!data.startsWith('354')) return data;
    for (const piece of pieces) {
      await client.send(piece);
      // let the relay read each piece on its own (best effort; the test above covers every cut)
      await new Promise((resolve) => setImmediate(resolve));
    }
    return await client.reply(30_000);
  } finally {
    client.close();
  }
}

t.test('over SMTP into the relay: the spool file and the reply are those of the multi-stage path', async (t) => {
  // the next hop defers every message, so each stays in the spool as the ingress wrote it
  const sink = await startSink(t, { data: () => ({ code: 451, message: '4.3.0 try again later' }) });
  for (const mode of ['normalise', 'reject'] as const) {
    const relay: TestRelay = await startRelay(t, { smtp: { bareLineEndings: mode }, delivery: { target: sink.url } }, { classify: deliverAll });
    // (with two faults in different chunks, the first to arrive is reported, in both paths: a
    // large message with bare line ends and a NUL could be refused for either, depending on
    // where the kernel cut the stream; the test above pins that at every cut)
    const messages: Array<[string, Buffer]> = [...CORPUS, ['large', large(5)], ['large with NUL', Buffer.concat([large(6, true), lat('\0\r\n')])], ['header over the limit', headerOf(MAX_HEADER_BYTES + 1)]];
    let accepted = 0;
    for (const [name, raw] of messages) {
      // DATA ends at CRLF.CRLF: the content sent ends in CRLF
      const data = raw.subarray(-2).toString('latin1') === '\r\n' ? raw : Buffer.concat([raw, lat('\r\n')]);
      const wire = Buffer.concat([stuff(data), lat('.\r\n')]);
      const end = data.indexOf('\r\n\r\n');
      const at = [1, end > 0 ? end + 1 : 2, end > 0 ? end + 3 : 3, Math.floor(wire.length / 2), wire.length - 4, wire.length - 2].filter((n, i, all) => n > 0 && n < wire.length && all.indexOf(n) === i).sort((a, b) => a - b);
      const pieces = [0, ...at].map((from, i, all) => wire.subarray(from, all[i + 1] ?? wire.length));
      const expected = await multiStage([data], mode, relay.relay.config.smtp.maxMessageSize);
      const reply = await sendPieces(relay.port, pieces);
      if ('error' in expected) {
        const want = replyFor(new ZegelError(expected.error as never, 'x'), relay.relay.config.smtp.maxMessageSize);
        t.equal(reply, `${want.responseCode} ${want.message}`, `${mode}, ${name}: refused as the multi-stage path refused it`);
        continue;
      }
      const id = /^250 2\.6\.0 Ok: queued as (\S+)$/.exec(reply)?.[1];
      t.ok(id, `${mode}, ${name}: accepted (${reply})`);
      if (!id) continue;
      accepted++;
      const file = fs.readFileSync(path.join(relay.dataDir, 'spool', `${id}.eml`));
      t.ok(stripFirstReceived(file).equals(stripFirstReceived(expected.bytes)), `${mode}, ${name}: the spool file holds the multi-stage path's bytes`);
      t.match(file.toString('latin1'), new RegExp(`^Received: from probe\\.test \\(.*\\[127\\.0\\.0\\.1\\]\\)\\r\\n\\tby \\S+ \\(Zegel\\) with ESMTP id ${id}\\r\\n\\tfor <${RCPT}>;`), `${mode}, ${name}: the relay's Received field first`);
      const cached = relay.relay.spool.cache.get(id);
      if (cached) t.ok(cached.equals(file), `${mode}, ${name}: the cached copy is the file`);
      else t.ok(file.length > relay.relay.spool.cache.maxEntryBytes, `${mode}, ${name}: only a large message is not cached`);
      const row = relay.relay.sqlite.db.prepare('SELECT size FROM messages WHERE id = ?').get(id) as { size: number } | undefined;
      t.equal(row?.size, expected.size, `${mode}, ${name}: the recorded size is the DATA bytes`);
    }
    t.equal(fs.readdirSync(path.join(relay.dataDir, 'spool')).length, accepted, `${mode}: one spool file per accepted message, none for a refused one`);
  }
});

t.test('done resolves only once the data is written and a directory sync that began after the file existed has finished', async (t) => {
  const spool = new Spool(tempDir(t));
  const syncs: Array<{ fileExisted: boolean; release: () => void }> = [];
  const realSync = spool.syncDir.bind(spool);
  let id = '';
  // the real directory sync, held until the test releases it
  spool.syncDir = async () => {
    const fileExisted = fs.existsSync(spool.pathOf(id));
    await new Promise<void>((resolve) => syncs.push({ fileExisted, release: resolve }));
    await realSync();
  };
  for (const data of [lat(`${H}\r\nsmall\r\n`), large(7, true)]) {
    id = `held${data.length}`;
    const source = new PassThrough();
    const intake = new Intake(source, { spool, id, maxBytes: 50 * 1024 * 1024, bareLineEndings: 'normalise', header: { signer, recipients: [RCPT], received: RECEIVED, maxHeaderBytes: MAX_HEADER_BYTES } });
    let settled = false;
    void intake.done.then(() => (settled = true));
    source.end(data);
    await new Promise<void>((resolve) => {
      const poll = () => (syncs.length ? resolve() : setImmediate(poll));
      poll();
    });
    t.ok(syncs[0]!.fileExisted, `${data.length} bytes: the directory sync starts after the file was created`);
    // whatever else the event loop does meanwhile, done waits for the held sync
    for (let i = 0; i < 20; i++) await new Promise((resolve) => setImmediate(resolve));
    await new Promise((resolve) => setTimeout(resolve, 30));
    t.equal(settled, false, `${data.length} bytes: not done while the directory sync is held`);
    syncs.shift()!.release();
    await intake.done;
    t.ok(fs.readFileSync(spool.pathOf(id)).subarray(-20).equals(data.subarray(-20)), `${data.length} bytes: the whole message is in the file when done resolves`);
  }
});
