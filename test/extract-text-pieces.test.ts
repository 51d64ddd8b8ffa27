import t from 'tap';
import { CHUNK_CHARS, decodeStream, rechunk, unflow } from '../src/classify/extract/text.js';

/*
 * Text decoding does not depend on how the bytes are cut into pieces: the
 * UTF-8 → windows-1252 fallback switches at the first invalid byte, a
 * format=flowed signature line is found wherever a piece starts, and
 * chunks are cut at the same places however the text arrives.
 */

async function* from<T>(items: T[]): AsyncGenerator<T> {
  for (const item of items) yield item;
}

async function all(strings: AsyncIterable<string>): Promise<string> {
  let out = '';
  for await (const s of strings) out += s;
  return out;
}

function cuts(buf: Buffer, at: number[]): Buffer[] {
  const out: Buffer[] = [];
  let from = 0;
  for (const a of [...at, buf.length]) {
    out.push(buf.subarray(from, a));
    from = a;
  }
  return out;
}

t.test('undeclared 8-bit text: UTF-8 up to the first invalid byte, windows-1252 from there, wherever the pieces are cut', async (t) => {
  const bytes = Buffer.concat([Buffer.from('De cliënt – ', 'utf8'), Buffer.from([0x80, 0x20, 0x93, 0x70, 0x61, 0x74, 0x69, 0xeb, 0x6e, 0x74, 0x94])]);
  const expected = 'De cliënt – € “patiënt”';
  for (let a = 0; a <= bytes.length; a++) {
    for (const b of [a, Math.min(bytes.length, a + 1), Math.min(bytes.length, a + 3)]) {
      const text = await all(decodeStream(from(cuts(bytes, [a, b])), ''));
      if (text !== expected) {
        t.equal(text, expected, `cut at ${a} and ${b}`);
        return;
      }
    }
  }
  t.equal(await all(decodeStream(from([bytes]), 'us-ascii')), expected, 'a us-ascii label reads the same');
  t.equal(await all(decodeStream(from([Buffer.from([0xef, 0xbb, 0xbf, 0x61, 0xe9])]), '')), 'aé', 'a byte-order mark at the start is dropped');
  t.equal(await all(decodeStream(from([Buffer.from('cliënt', 'utf8')]), '')), 'cliënt', 'valid UTF-8 stays UTF-8');
});

t.test('format=flowed: the signature separator is a hard line end wherever a piece starts', async (t) => {
  const text = 'BSN 123 456 \r\n782 staat in het \r\ndossier.\r\n-- \r\nGroet, \r\nJan';
  const expected = 'BSN 123 456 782 staat in het dossier.\r\n-- \r\nGroet, Jan';
  for (let a = 0; a <= text.length; a++) {
    for (let b = a; b <= Math.min(text.length, a + 4); b++) {
      const got = await all(unflow(from([text.slice(0, a), text.slice(a, b), text.slice(b)]), false));
      if (got !== expected) {
        t.equal(got, expected, `pieces cut at ${a} and ${b}`);
        return;
      }
    }
  }
  t.pass('every cut reads alike');
});

t.test('chunks: the same cut points however the text arrives, none longer than CHUNK_CHARS', async (t) => {
  const words = ['cliënt', 'dossier', '123456782', 'en', 'de', '€', '😀'];
  let text = '';
  for (let i = 0; text.length < 3 * CHUNK_CHARS + 1234; i++) text += words[(i * 7) % words.length] + (i % 13 ? ' ' : '\n');
  const once: string[] = [];
  for await (const c of rechunk(from([text]))) once.push(c);
  t.equal(once.join(''), text);
  t.ok(once.every((c) => c.length <= CHUNK_CHARS), 'bounded');
  for (const size of [1000, 32 * 1024, CHUNK_CHARS, CHUNK_CHARS + 1, 200_000]) {
    const pieces: string[] = [];
    for (let at = 0; at < text.length; at += size) pieces.push(text.slice(at, at + size));
    const got: string[] = [];
    for await (const c of rechunk(from(pieces))) got.push(c);
    t.same(
      got.map((c) => c.length),
      once.map((c) => c.length),
      `pieces of ${size} characters`,
    );
  }
});
