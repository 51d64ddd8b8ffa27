import { Readable } from 'node:stream';
import t from 'tap';
import { CHUNK_CHARS, extractMessage } from '../src/classify/extract/index.js';
import { Base64Decoder, QuotedPrintableDecoder } from '../src/classify/extract/transfer.js';
import { decodeWords } from '../src/classify/extract/words.js';
import { rechunk } from '../src/classify/extract/text.js';
import { BSN, LIMITS, SENTENCE, attachment, bytes, extractAll, locations, message, textAt, textPart, unscannable } from './fixtures/extract/fixtures.js';

const latin1 = (s: string): Buffer => Buffer.from(s, 'latin1');

t.test('subject: RFC 2047 in any charset, raw UTF-8, folding', async (t) => {
  const cases: Array<[string, string]> = [
    ['=?iso-8859-1?Q?Overdracht_cli=EBnt?=', 'Overdracht cliënt'],
    ['=?windows-1252?Q?Factuur_=80_12?=', 'Factuur € 12'],
    // A multi-byte character split over two encoded words; the blank between them goes.
    [`=?UTF-8?B?${Buffer.from([0x70, 0x61, 0x74, 0x69, 0xc3]).toString('base64')}?= =?UTF-8?B?${Buffer.from([0xab, 0x6e, 0x74]).toString('base64')}?=`, 'patiënt'],
    ['Dossier =?utf-8?q?123_456_782?= ontvangen', 'Dossier 123 456 782 ontvangen'],
    ['=?UTF-8*nl?Q?Ge=C3=AFnformeerd?=', 'Geïnformeerd'],
    [Buffer.from('Uitslag patiënt', 'utf8').toString('latin1'), 'Uitslag patiënt'],
    ['Lange\r\n onderwerpregel', 'Lange onderwerpregel'],
    ['=?koi8-r?B?8NLJ18XU?=', 'Привет'],
  ];
  for (const [raw, expected] of cases) {
    const events = await extractAll(message(raw, [textPart('x')]));
    t.equal(textAt(events, 'subject'), expected, raw);
    t.equal(events[0]?.type === 'text' && events[0].chunk.scope, 'subject', 'the subject comes first');
  }
  t.equal(decodeWords('=?unknown-charset?Q?abc?='), 'abc', 'an unknown charset still yields its ASCII');
});

t.test('bodies: charsets and transfer encodings', async (t) => {
  const text = `${SENTENCE} Prijs: €12. “Citaat” BSN ${BSN}.`;
  const cases: Array<[string, ReturnType<typeof textPart>, string]> = [
    ['iso-8859-1, 8bit', textPart('', { charset: 'iso-8859-1', raw: latin1(`${SENTENCE} BSN ${BSN}.`) }), `${SENTENCE} BSN ${BSN}.`],
    ['windows-1252, quoted-printable', textPart('', { charset: 'windows-1252', encoding: 'quoted-printable', raw: Buffer.from([...latin1(`${SENTENCE} Prijs: `), 0x80, ...latin1('12. '), 0x93, ...latin1('Citaat'), 0x94, ...latin1(` BSN ${BSN}.`)]) }), text],
    ['iso-8859-1 label on windows-1252 bytes', textPart('', { charset: '"ISO-8859-1"', raw: Buffer.from([0x80, 0x20, 0x93, 0x78, 0x94]) }), '€ “x”'],
    ['utf-8, base64', textPart(text, { encoding: 'base64' }), text],
    ['utf-8, quoted-printable', textPart(text, { encoding: 'quoted-printable' }), text],
    ['utf-16le, base64', textPart('', { charset: 'utf-16le', encoding: 'base64', raw: Buffer.from(text, 'utf16le') }), text],
    ['no charset, latin1 bytes (fallback)', { headers: ['Content-Type: text/plain'], body: latin1(`${SENTENCE}`).toString('latin1') }, SENTENCE],
  ];
  for (const [name, part, expected] of cases) {
    const events = await extractAll(message('Test', [part]));
    t.equal(textAt(events, 'body').trim(), expected, name);
    t.same(unscannable(events), [], name);
  }
});

t.test('quoted-printable: a soft line break inside a number is undone', async (t) => {
  const part = { headers: ['Content-Type: text/plain; charset=utf-8', 'Content-Transfer-Encoding: quoted-printable'], body: 'BSN 12345=\r\n6782 en cli=C3=\r\n=ABnt=\r\n' };
  const events = await extractAll(message('QP', [part]));
  t.equal(textAt(events, 'body').trim(), `BSN ${BSN} en cliënt`);
});

t.test('transfer decoders give the same bytes however the input is split', async (t) => {
  const data = Buffer.from(`${SENTENCE}\r\n= ==\t \r\nregel met spaties   \r\n${BSN}=`, 'utf8');
  const qp = Buffer.from('De cli=C3=ABnt =3D gezien=\r\nvervolg=  \r\nzelfde regel=\nLF=3d\r\nkapot =ZZ en =4');
  const qpExpected = Buffer.concat([Buffer.from('De cliënt = gezienvervolgzelfde regelLF=\r\nkapot =ZZ en =4')]);
  const b64 = Buffer.from(data.toString('base64').replace(/(.{10})/g, '$1\r\n'));
  for (let cut = 0; cut <= qp.length; cut++) {
    const d = new QuotedPrintableDecoder();
    const out = Buffer.concat([d.write(qp.subarray(0, cut)), d.write(qp.subarray(cut)), d.end()]);
    if (!out.equals(qpExpected)) t.fail(`QP split at ${cut}: ${JSON.stringify(out.toString())}`);
  }
  for (let cut = 0; cut <= b64.length; cut++) {
    const d = new Base64Decoder();
    const out = Buffer.concat([d.write(b64.subarray(0, cut)), d.write(b64.subarray(cut)), d.end()]);
    if (!out.equals(data)) t.fail(`base64 split at ${cut}`);
  }
  t.pass('all splits decode alike');
});

t.test('HTML body: text without tags, entities decoded, table cells apart', async (t) => {
  const html = `<html><head><title>t</title><style>td { color: red }</style><script>var bsn = 1;</script></head><body><p>Beste <b>collega</b>,</p><p>De cli&euml;nt &amp; familie.</p><table><tr><td>Nummer</td><td>${BSN}</td><td>111222333</td></tr></table><a href="https://example.org/?id=999999999">link</a><img src="data:image/png;base64,AAAA" alt="x"></body></html>`;
  const events = await extractAll(message('HTML', [textPart(html, { type: 'text/html', encoding: 'quoted-printable' })]));
  const text = textAt(events, 'body');
  t.notMatch(text, /[<>]/, 'no tags');
  t.notMatch(text, /color|var bsn|999999999|base64/, 'no style, script, link target or image data');
  t.match(text, 'De cliënt & familie.');
  t.match(text, `Nummer\t${BSN}\t111222333`, 'cells separated, numbers not glued together');
});

t.test('multipart/alternative: both bodies, in order, apart from each other', async (t) => {
  const alt = [
    'Content-Type: multipart/alternative; boundary="alt-1"',
    '',
    '--alt-1',
    'Content-Type: text/plain; charset=utf-8',
    '',
    `Platte tekst ${BSN}`,
    '--alt-1',
    'Content-Type: text/html; charset=utf-8',
    '',
    `<p>HTML tekst ${BSN}</p>`,
    '--alt-1--',
  ];
  const raw = ['From: a@org.test', 'Subject: Alt', 'MIME-Version: 1.0', ...alt, ''].join('\r\n');
  const events = await extractAll(raw);
  t.same(locations(events), ['subject', 'body']);
  t.equal(textAt(events, 'body'), `Platte tekst ${BSN}\nHTML tekst ${BSN}\n`);
});

t.test('format=flowed lines are joined', async (t) => {
  const part = { headers: ['Content-Type: text/plain; charset=utf-8; format=flowed'], body: 'BSN 123 456 \r\n782 staat in het \r\ndossier.\r\n-- \r\nGroet' };
  const events = await extractAll(message('Flowed', [part]));
  t.equal(textAt(events, 'body'), 'BSN 123 456 782 staat in het dossier.\r\n-- \r\nGroet\r\n');
});

t.test('message order: subject, bodies, then each attachment name before its text', async (t) => {
  const events = await extractAll(
    message('Volgorde', [textPart('Eerst de tekst.'), attachment('a.txt', 'text/plain', Buffer.from('A')), textPart('Tussendoor.'), attachment('b.csv', 'text/csv', Buffer.from('B'))]),
  );
  t.same(
    events.map((e) => (e.type === 'text' ? `${e.chunk.location}|${e.chunk.scope}` : '')),
    ['subject|subject', 'body|body', 'filename:a.txt|filename', 'attachment:a.txt|attachment', 'body|body', 'filename:b.csv|filename', 'attachment:b.csv|attachment'],
  );
});

t.test('attachment names: RFC 2231, encoded words, slashes kept out of the location', async (t) => {
  const part = attachment('x', 'text/plain', Buffer.from('inhoud'));
  part.headers = ['Content-Type: text/plain', 'Content-Transfer-Encoding: base64', "Content-Disposition: attachment; filename*=utf-8''verslag%20cli%C3%ABnt%20123456782.txt"];
  const part2 = attachment('y', 'text/plain', Buffer.from('inhoud'));
  part2.headers = ['Content-Type: text/plain; name="=?utf-8?Q?map/overzicht_=C3=AB.txt?="', 'Content-Transfer-Encoding: base64'];
  const events = await extractAll(message('Namen', [textPart('x'), part, part2]));
  t.equal(textAt(events, 'filename:verslag cliënt 123456782.txt'), 'verslag cliënt 123456782.txt');
  t.equal(textAt(events, 'filename:map_overzicht ë.txt'), 'map/overzicht ë.txt', 'the name as given is scanned, the location has no extra /');
});

t.test('a 20 MB plain body arrives in several bounded chunks, in order', async (t) => {
  const line = `Regel met tekst over de cliënt en nummer ${BSN}, verder niets.\r\n`;
  const body = line.repeat(Math.ceil((20 * 1024 * 1024) / line.length));
  const raw = Buffer.concat([Buffer.from('Subject: Groot\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n'), Buffer.from(body, 'utf8')]);
  // Fed in file-sized pieces, as a spool file would be.
  const pieces: Buffer[] = [];
  for (let i = 0; i < raw.length; i += 64 * 1024) pieces.push(raw.subarray(i, i + 64 * 1024));
  let chunks = 0;
  let longest = 0;
  let total = '';
  for await (const e of extractMessage(Readable.from(pieces), LIMITS)) {
    if (e.type !== 'text' || e.chunk.location !== 'body') continue;
    chunks++;
    longest = Math.max(longest, e.chunk.text.length);
    total += e.chunk.text;
  }
  t.ok(chunks >= 20, `${chunks} chunks`);
  t.ok(longest <= CHUNK_CHARS, `longest chunk ${longest} characters`);
  t.ok(total === `${body}`, 'all text, in order');
});

t.test('rechunk cuts long text at blanks and never inside a surrogate pair', async (t) => {
  async function* one(s: string): AsyncGenerator<string> {
    yield s;
  }
  const text = '😀'.repeat(50) + ' woord'.repeat(40);
  const parts: string[] = [];
  for await (const c of rechunk(one(text), 33)) parts.push(c);
  t.equal(parts.join(''), text);
  t.ok(parts.every((p) => p.length <= 33 && !/^[\udc00-\udfff]/.test(p)), 'bounded, no broken pairs');
});

t.test('a header block larger than the splitter allows is corrupt, not a throw', async (t) => {
  const raw = `Subject: Groot\r\nX-Vulling: ${'a'.repeat(2 * 1024 * 1024)}\r\n\r\nTekst\r\n`;
  const events = await extractAll(raw);
  t.same(unscannable(events), [{ location: 'body', reason: 'corrupt' }]);
});

t.test('the consumer may stop early; nothing hangs or throws later', async (t) => {
  const raw = bytes(message('Stop', [textPart('x'), attachment('a.txt', 'text/plain', Buffer.from('A'.repeat(500_000))), attachment('b.txt', 'text/plain', Buffer.from('B'))]));
  const source = Readable.from([raw]);
  const seen: string[] = [];
  for await (const e of extractMessage(source, LIMITS)) {
    if (e.type === 'text') seen.push(e.chunk.location);
    if (seen.includes('filename:a.txt')) break;
  }
  t.same(seen, ['subject', 'body', 'filename:a.txt']);
  await new Promise((r) => setTimeout(r, 50));
});

t.test('a source error is not bad input: it is thrown', async (t) => {
  const source = new Readable({
    read() {
      this.destroy(new Error('disk gone'));
    },
  });
  await t.rejects(extractAll(source), /disk gone/);
});
