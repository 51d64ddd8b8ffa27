import { Readable } from 'node:stream';
import t from 'tap';
import { ZegelError } from '../src/errors.js';
import { feed } from './helpers/transform.js';
import { LineEndingGuard, type BareLineEndingMode } from '../src/smtp/line-endings.js';

/** Feeds `chunks` through a fresh guard (one write per chunk) and collects the output or the error. */
async function guard(chunks: Buffer[], mode: BareLineEndingMode = 'normalise'): Promise<{ out: Buffer; error: unknown; repaired: number }> {
  const g = new LineEndingGuard(mode);
  return { ...(await feed(g, chunks)), repaired: g.repaired };
}

/** Feeds through a real Readable -> guard pipe (as ingress does), chunk by chunk. */
async function piped(chunks: Buffer[], mode: BareLineEndingMode = 'normalise'): Promise<Buffer> {
  const g = new LineEndingGuard(mode);
  const parts: Buffer[] = [];
  Readable.from(chunks, { objectMode: false }).pipe(g);
  for await (const chunk of g) parts.push(chunk as Buffer);
  return Buffer.concat(parts);
}

/** Reference normalisation: every CR, LF or CRLF becomes CRLF. */
const normalise = (data: Buffer): Buffer => Buffer.from(data.toString('latin1').replace(/\r\n|\r|\n/g, '\r\n'), 'latin1');

/** True when every LF is preceded by CR and every CR followed by LF. */
function onlyCrlf(data: Buffer): boolean {
  for (let i = 0; i < data.length; i++) {
    if (data[i] === 0x0a && data[i - 1] !== 0x0d) return false;
    if (data[i] === 0x0d && data[i + 1] !== 0x0a) return false;
  }
  return true;
}

const sample = Buffer.from(
  'Received: from a\r\n\tby b;\r\nSubject: test\r\nMessage-ID: <x@y.test>\r\n\r\nline one\r\n.dotted\r\n\r\n\r\nlast line with utf-8 \xc3\xa9\r\n',
  'latin1',
);

t.test('CRLF data passes unchanged', async (t) => {
  t.test('in one chunk', async (t) => {
    const { out, error, repaired } = await guard([sample]);
    t.equal(error, undefined);
    t.ok(out.equals(sample));
    t.equal(repaired, 0);
  });

  t.test('split into two chunks at every offset', async (t) => {
    let bad: number[] = [];
    for (let at = 0; at <= sample.length; at++) {
      for (const mode of ['normalise', 'reject'] as const) {
        const { out, error, repaired } = await guard([sample.subarray(0, at), sample.subarray(at)].filter((c) => c.length), mode);
        if (error || !out.equals(sample) || repaired !== 0) bad.push(at);
      }
    }
    bad = [...new Set(bad)];
    t.same(bad, [], 'no split offset changes the data or fails');
  });

  t.test('in 1-byte chunks', async (t) => {
    const chunks = [...sample].map((b) => Buffer.from([b]));
    for (const mode of ['normalise', 'reject'] as const) {
      const { out, error, repaired } = await guard(chunks, mode);
      t.equal(error, undefined, mode);
      t.ok(out.equals(sample), `${mode}: unchanged`);
      t.equal(repaired, 0);
    }
    t.ok((await piped(chunks)).equals(sample), 'also through a pipe');
  });

  t.test('the empty message and a lone CRLF', async (t) => {
    t.equal((await guard([])).out.length, 0);
    t.ok((await guard([Buffer.from('\r\n')])).out.equals(Buffer.from('\r\n')));
    t.ok((await guard([Buffer.from('\r'), Buffer.from('\n')])).out.equals(Buffer.from('\r\n')));
  });
});

t.test('normalise mode turns each bare CR and bare LF into CRLF', async (t) => {
  const cases: Array<[string, string, string, number]> = [
    ['bare LF', 'a\nb\r\n', 'a\r\nb\r\n', 1],
    ['bare CR', 'a\rb\r\n', 'a\r\nb\r\n', 1],
    ['LF first', '\nab', '\r\nab', 1],
    ['CR first', '\rab', '\r\nab', 1],
    ['LF CR (two bare)', 'a\n\rb', 'a\r\n\r\nb', 2],
    ['CR CR LF', 'a\r\r\nb', 'a\r\n\r\nb', 1],
    ['CR at the very end', 'a\r\nb\r', 'a\r\nb\r\n', 1],
    ['LF at the very end', 'ab\n', 'ab\r\n', 1],
    ['smuggling \\n.\\r\\n', 'x\n.\r\ny', 'x\r\n.\r\ny', 1],
    ['smuggling \\n.\\n', 'x\n.\ny', 'x\r\n.\r\ny', 2],
    ['smuggling \\r.\\r\\n', 'x\r.\r\ny', 'x\r\n.\r\ny', 1],
    ['smuggling \\r\\n.\\r', 'x\r\n.\ry', 'x\r\n.\r\ny', 1],
    ['smuggling \\r.\\r', 'x\r.\ry', 'x\r\n.\r\ny', 2],
  ];
  for (const [name, input, expected, repairs] of cases) {
    const data = Buffer.from(input, 'latin1');
    const whole = await guard([data]);
    t.equal(whole.error, undefined, `${name}: no error`);
    t.equal(whole.out.toString('latin1'), expected, `${name}: one chunk`);
    t.equal(whole.repaired, repairs, `${name}: repaired count`);
    // the same in every 2-chunk split and in 1-byte chunks
    const wrong: number[] = [];
    for (let at = 1; at < data.length; at++) {
      const r = await guard([data.subarray(0, at), data.subarray(at)]);
      if (r.out.toString('latin1') !== expected) wrong.push(at);
    }
    t.same(wrong, [], `${name}: every 2-chunk split`);
    const bytes = await guard([...data].map((b) => Buffer.from([b])));
    t.equal(bytes.out.toString('latin1'), expected, `${name}: 1-byte chunks`);
  }
});

t.test('CR at a chunk end followed by LF at the next chunk start is one CRLF', async (t) => {
  const r = await guard([Buffer.from('Subject: a\r'), Buffer.from('\nX: b\r'), Buffer.from('\n\r'), Buffer.from('\nbody\r\n')]);
  t.equal(r.out.toString('latin1'), 'Subject: a\r\nX: b\r\n\r\nbody\r\n');
  t.equal(r.repaired, 0);
  const reject = await guard([Buffer.from('Subject: a\r'), Buffer.from('\nbody\r\n')], 'reject');
  t.equal(reject.error, undefined, 'reject mode accepts a CRLF split over two chunks');
  t.equal(reject.out.toString('latin1'), 'Subject: a\r\nbody\r\n');
  // CR at a chunk end, the next chunk does not start with LF: a bare CR
  const bare = await guard([Buffer.from('a\r'), Buffer.from('b\r\n')]);
  t.equal(bare.out.toString('latin1'), 'a\r\nb\r\n');
  t.equal(bare.repaired, 1);
});

t.test('random data: output is always CRLF-only and equals the reference normalisation', async (t) => {
  const alphabet = Buffer.from('\r\n.ab');
  let seed = 12345;
  const rand = (n: number) => {
    seed = (seed * 1103515245 + 12345) & 0x7fffffff;
    return seed % n;
  };
  const failures: string[] = [];
  for (let round = 0; round < 500; round++) {
    const data = Buffer.from(Array.from({ length: 1 + rand(40) }, () => alphabet[rand(alphabet.length)]!));
    const chunks: Buffer[] = [];
    for (let pos = 0; pos < data.length; ) {
      const len = 1 + rand(6);
      chunks.push(data.subarray(pos, pos + len));
      pos += len;
    }
    const { out } = await guard(chunks);
    if (!onlyCrlf(out) || !out.equals(normalise(data))) failures.push(JSON.stringify(data.toString('latin1')));
  }
  t.same(failures, []);
});

t.test('reject mode fails with ZEGEL_BARE_LINE_ENDING', async (t) => {
  const cases: Array<[string, Buffer[]]> = [
    ['bare LF', [Buffer.from('a\nb\r\n')]],
    ['bare CR', [Buffer.from('a\rb\r\n')]],
    ['LF at the start of a later chunk', [Buffer.from('a\r\n'), Buffer.from('\nb')]],
    ['CR at a chunk end, not followed by LF', [Buffer.from('a\r'), Buffer.from('b\r\n')]],
    ['CR at the very end', [Buffer.from('a\r\nb\r')]],
    ['\\n.\\r\\n', [Buffer.from('x\n.\r\n')]],
    ['\\r.\\r', [Buffer.from('x\r.\r')]],
  ];
  for (const [name, chunks] of cases) {
    const r = await guard(chunks, 'reject');
    t.type(r.error, ZegelError, name);
    t.equal((r.error as ZegelError | undefined)?.code, 'ZEGEL_BARE_LINE_ENDING', `${name}: code`);
  }
});

// Writable.write(Buffer.alloc(0)) reaches _transform; a CR left pending at the end of the
// previous chunk must still pair with the LF that follows the empty chunk.
t.test('an empty write between CR and LF does not split the CRLF', async (t) => {
  const r = await guard([Buffer.from('a\r'), Buffer.alloc(0), Buffer.from('\nb')]);
  t.equal(r.out.toString('latin1'), 'a\r\nb');
  const reject = await guard([Buffer.from('a\r'), Buffer.alloc(0), Buffer.from('\nb')], 'reject');
  t.equal(reject.error, undefined);
});
