import { Readable } from 'node:stream';
import t from 'tap';
import { MimeSplitter, type SplitItem } from '../src/classify/extract/split.js';
import type { ExtractEvent } from '../src/classify/types.js';
import { BSN, SENTENCE, attachment, base64Lines, bytes, extractAll, locations, message, quotedPrintable, rfc822, textAt, textPart, unscannable } from './fixtures/extract/fixtures.js';

/*
 * The MIME splitter reads a message in whatever pieces it arrives in: a
 * boundary, a base64 quantum or a quoted-printable soft break cut between two
 * pieces changes nothing; preamble and epilogue are never text; a missing
 * closing boundary loses nothing; a huge body passes through in slices.
 */

/** The bytes cut into pieces of the given sizes (cycled). */
function cut(raw: Buffer, sizes: number[]): Buffer[] {
  const out: Buffer[] = [];
  for (let at = 0, k = 0; at < raw.length; k++) {
    const size = sizes[k % sizes.length] as number;
    out.push(raw.subarray(at, at + size));
    at += size;
  }
  return out;
}

/** Events with the text of consecutive chunks of one location joined (chunk borders may differ). */
function joined(events: ExtractEvent[]): Array<{ location: string; text?: string; reason?: string }> {
  const out: Array<{ location: string; text?: string; reason?: string }> = [];
  for (const e of events) {
    const last = out[out.length - 1];
    if (e.type === 'text' && last?.text !== undefined && last.location === e.chunk.location) last.text += e.chunk.text;
    else out.push(e.type === 'text' ? { location: e.chunk.location, text: e.chunk.text } : { location: e.part.location, reason: e.part.reason });
  }
  return out;
}

const extractPieces = (pieces: Buffer[]): Promise<ExtractEvent[]> => extractAll(Readable.from(pieces));

/** A message with most of what a splitter must get right: nesting, encodings, a forwarded message. */
function rich(nl = '\r\n'): Buffer {
  const inner = message('Doorgestuurd', [textPart(`Binnen ${BSN}`), attachment('binnen.txt', 'text/plain', Buffer.from(`Bijlage binnen ${BSN}`))]);
  const alternative = [
    'Content-Type: multipart/alternative; boundary="alt-grens"',
    '',
    'preambule van alternative 111222333',
    '--alt-grens',
    'Content-Type: text/plain; charset=utf-8',
    'Content-Transfer-Encoding: quoted-printable',
    '',
    quotedPrintable(Buffer.from(`${SENTENCE} Nummer ${BSN}, daarna een lange regel ${'x'.repeat(150)}.`)),
    '--alt-grens',
    'Content-Type: text/html; charset=utf-8',
    '',
    `<p>HTML ${BSN}</p>`,
    '--alt-grens--',
    'epiloog van alternative 111222333',
  ].join('\r\n');
  const raw = [
    'From: zorg@org.test',
    'Subject: =?utf-8?Q?Overdracht_cli=C3=ABnt?=',
    'MIME-Version: 1.0',
    'Content-Type: multipart/mixed; boundary="grens"',
    '',
    'Dit is een bericht in MIME-formaat. 111222333',
    '--grens',
    alternative,
    '--grens',
    ...attachment('verslag.txt', 'text/plain', Buffer.from(`Regel een ${BSN}\nRegel twee cliënt\n`.repeat(40))).headers,
    '',
    base64Lines(Buffer.from(`Regel een ${BSN}\nRegel twee cliënt\n`.repeat(40))),
    '--grens',
    ...rfc822('bericht.eml', inner, '8bit').headers,
    '',
    inner,
    '--grens--',
    'epiloog 111222333',
    '',
  ].join('\r\n');
  return bytes(nl === '\r\n' ? raw : raw.replace(/\r\n/g, nl));
}

t.test('any cutting of the input gives the same events: 1-byte, 7-byte, 64 KiB pieces', async (t) => {
  for (const nl of ['\r\n', '\n']) {
    const raw = rich(nl);
    const whole = joined(await extractPieces([raw]));
    t.same(
      locations(await extractPieces([raw])),
      ['subject', 'body', 'filename:verslag.txt', 'attachment:verslag.txt', 'filename:bericht.eml', 'attachment:bericht.eml', 'filename:bericht.eml/binnen.txt', 'attachment:bericht.eml/binnen.txt'],
      `every part found (${JSON.stringify(nl)})`,
    );
    const body = whole.filter((e) => e.location === 'body').map((e) => e.text).join('');
    t.match(body, `Nummer ${BSN}, daarna`, 'the quoted-printable body, soft breaks undone');
    t.match(body, `HTML ${BSN}`);
    t.match(whole.find((e) => e.location === 'attachment:verslag.txt')?.text ?? '', `Regel een ${BSN}\nRegel twee cliënt\n`);
    t.equal(whole.find((e) => e.location === 'attachment:bericht.eml/binnen.txt')?.text, `Bijlage binnen ${BSN}`);
    for (const sizes of [[1], [7], [64 * 1024], [3, 1, 200, 2]]) {
      t.same(joined(await extractPieces(cut(raw, sizes))), whole, `pieces of ${sizes.join(', ')} bytes (${JSON.stringify(nl)})`);
    }
  }
});

t.test('a cut at every single position, boundaries and line ends included, changes nothing', async (t) => {
  const raw = bytes(
    [
      'Subject: Grenzen',
      'Content-Type: multipart/mixed; boundary="b"',
      '',
      '--b',
      'Content-Type: text/plain; charset=utf-8',
      '',
      `eerste ${BSN}`,
      '-- ',
      '--b-- geen grens',
      '--bb',
      '',
      '--b',
      'Content-Type: text/plain; charset=utf-8',
      'Content-Transfer-Encoding: quoted-printable',
      '',
      'cli=C3=\r\n=ABnt 12345=\r\n6782',
      '--b--',
      '',
    ].join('\r\n'),
  );
  const whole = joined(await extractPieces([raw]));
  t.equal(textAt(await extractPieces([raw]), 'body'), `eerste ${BSN}\r\n-- \r\n--b-- geen grens\r\n--bb\r\ncliënt ${BSN}\n`, 'lines like a boundary are text; the line end before a boundary is not');
  const differ: number[] = [];
  for (let at = 1; at < raw.length; at++) {
    if (JSON.stringify(joined(await extractPieces([raw.subarray(0, at), raw.subarray(at)]))) !== JSON.stringify(whole)) differ.push(at);
  }
  t.same(differ, [], 'no cut position changes the result');
});

t.test('base64 quantum and quoted-printable soft break cut between pieces', async (t) => {
  const data = Buffer.from(`Verslag ${BSN} over de cliënt.\n`.repeat(3));
  const b64 = message('B64', [textPart('', { encoding: 'base64', raw: data })]);
  const qp = message('QP', [{ headers: ['Content-Type: text/plain; charset=utf-8', 'Content-Transfer-Encoding: quoted-printable'], body: `cli=C3=AB=\r\nnt 123=\r\n456=\n782 =3D klaar` }]);
  for (const [name, raw, expected] of [
    ['base64', bytes(b64), data.toString()],
    ['quoted-printable', bytes(qp), `cliënt ${BSN} = klaar\r\n`],
  ] as const) {
    const body = raw.indexOf('\r\n\r\n') + 4;
    for (let at = body; at < raw.length; at++) {
      const text = textAt(await extractPieces([raw.subarray(0, at), raw.subarray(at)]), 'body');
      if (text !== expected) {
        t.equal(text, expected, `${name} cut at ${at}`);
        break;
      }
    }
    t.equal(textAt(await extractPieces(cut(raw, [1])), 'body'), expected, `${name} in 1-byte pieces`);
  }
});

t.test('RFC 2231 file names: charset and percent escapes, continuations, precedence over filename=', async (t) => {
  const part = (disposition: string, type = 'text/plain'): { headers: string[]; body: string } => ({
    headers: [`Content-Type: ${type}`, 'Content-Transfer-Encoding: base64', disposition],
    body: base64Lines(Buffer.from('inhoud')),
  });
  const events = await extractAll(
    message('Namen', [
      textPart('x'),
      part("Content-Disposition: attachment; filename*=utf-8''verslag%20cli%C3%ABnt%20123456782.txt"),
      part("Content-Disposition: attachment;\r\n filename*0*=iso-8859-1''over%20de%20cli%EBnt%20;\r\n filename*1=\"en de familie.txt\""),
      part('Content-Disposition: attachment; filename*0="lang"; filename*1="e naam.csv"; filename="kort.csv"'),
      part('Content-Disposition: attachment', 'text/plain; name*="utf-8\'nl\'na%C3%AFef.txt"'),
    ]),
  );
  t.same(
    events.filter((e) => e.type === 'text' && e.chunk.scope === 'filename').map((e) => (e.type === 'text' ? e.chunk.text : '')),
    ['verslag cliënt 123456782.txt', 'over de cliënt en de familie.txt', 'lange naam.csv', 'naïef.txt'],
  );
  t.equal(textAt(events, 'attachment:lange naam.csv'), 'inhoud');
});

t.test('preamble and epilogue are never text, at any depth', async (t) => {
  const raw = rich();
  const events = await extractPieces([raw]);
  for (const e of events) if (e.type === 'text') t.notMatch(e.chunk.text, /111222333|preambule|epiloog|MIME-formaat/, `${e.chunk.location}: no preamble or epilogue`);
  t.same(unscannable(events), []);
});

t.test('a missing closing boundary: the last part runs to the end of the message', async (t) => {
  const lines = ['Subject: Open einde', 'Content-Type: multipart/mixed; boundary="grens"', '', '--grens', 'Content-Type: text/plain; charset=utf-8', '', 'eerste deel', '--grens'];
  const last = ['Content-Type: text/plain; name="laatste.txt"', 'Content-Disposition: attachment; filename="laatste.txt"', '', `laatste deel ${BSN}`, 'nog een regel', ''];
  for (const sizes of [[1 << 20], [1], [5]]) {
    const events = await extractPieces(cut(bytes([...lines, ...last].join('\r\n')), sizes));
    t.same(unscannable(events), [], 'not corrupt');
    t.equal(textAt(events, 'body'), 'eerste deel\n');
    t.equal(textAt(events, 'attachment:laatste.txt'), `laatste deel ${BSN}\r\nnog een regel\r\n`, `everything to the end (pieces of ${sizes[0]})`);
  }
  // Cut off inside a part's header block: the part still counts, without a body.
  const cutHeader = await extractPieces([bytes([...lines, 'Content-Type: text/plain; name="half.txt"', 'Content-Disposition: attachment; filename="ha'].join('\r\n'))]);
  t.same(locations(cutHeader), ['subject', 'body', 'filename:ha']);
});

t.test('a huge body passes through in slices: nothing waits for a line end or the end of the part', async (t) => {
  const head = Buffer.from('Subject: Groot\r\nContent-Type: multipart/mixed; boundary="grens"\r\n\r\n--grens\r\nContent-Type: text/plain\r\n\r\n');
  const splitter = new MimeSplitter();
  const count = (items: SplitItem[]): number => items.reduce((n, i) => n + (i.type === 'body' ? i.value.length : 0), 0);
  t.equal(count(splitter.write(head)), 0);
  let fed = 0;
  let out = 0;
  let worst = 0;
  const slice = Buffer.alloc(64 * 1024, 'a'); // no line end anywhere: one 32 MiB line
  for (let i = 0; i < 512; i++) {
    out += count(splitter.write(slice));
    fed += slice.length;
    worst = Math.max(worst, fed - out);
  }
  t.ok(worst <= 16, `at most ${worst} bytes held back at any time`);
  const lines = Buffer.from('regel\r\n'.repeat(10_000));
  for (let i = 0; i < 50; i++) {
    out += count(splitter.write(lines));
    fed += lines.length;
    worst = Math.max(worst, fed - out);
  }
  t.ok(worst <= 16, `with line ends too: at most ${worst} bytes held back`);
  out += count(splitter.write(Buffer.from('\r\n--grens--\r\n')));
  out += count(splitter.end());
  t.equal(out, fed, 'all of the body; the line end before the closing boundary is not body');
});

t.test('more parts than the splitter allows is corrupt, after the parts before', async (t) => {
  const parts = Array.from({ length: 1000 }, (_, i) => textPart(`deel ${i}`));
  const events = await extractAll(message('Veel', parts));
  t.same(unscannable(events), [{ location: 'body', reason: 'corrupt' }]);
  t.match(textAt(events, 'body'), 'deel 997\n');
  t.notMatch(textAt(events, 'body'), 'deel 999');
  const fewer = await extractAll(message('Genoeg', parts.slice(0, 999)));
  t.same(unscannable(fewer), [], '999 parts and the message itself are fine');
});
