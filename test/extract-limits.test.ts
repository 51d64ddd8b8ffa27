import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { deflateRawSync } from 'node:zlib';
import t from 'tap';
import { extractMessage } from '../src/classify/extract/index.js';
import {
  BSN,
  LIMITS,
  SENTENCE,
  attachment,
  bytes,
  deflated,
  docx,
  encryptedPdf,
  extractAll,
  markEncrypted,
  message,
  odt,
  pdf,
  rawZip,
  rfc822,
  textAt,
  textPart,
  unscannable,
  zip,
} from './fixtures/extract/fixtures.js';

const ZIP = 'application/zip';
const withZip = (name: string, data: Buffer): string => message('Archief', [textPart('Zie bijlage.'), attachment(name, ZIP, data)]);

t.test('zip bomb: a high-ratio entry stops at limit:ratio while inflating; the other entries are read', async (t) => {
  // Text, so that it is read (a binary entry is not read at all, so it never expands).
  const spaces = Buffer.alloc(64 * 1024 * 1024, 0x20);
  const bomb = deflated('spaties.txt', spaces);
  // The same data claiming to be small: headers are not trusted.
  const liar = { ...deflated('klein.txt', spaces), size: 1000 };
  const data = rawZip([bomb, liar, deflated('notitie.txt', Buffer.from(`${SENTENCE} ${BSN}`))]);
  t.ok(data.length < 200 * 1024, `the archive is ${data.length} bytes`);
  const before = process.memoryUsage().rss;
  const started = performance.now();
  const events = await extractAll(withZip('bom.zip', data));
  t.same(unscannable(events), [
    { location: 'attachment:bom.zip/spaties.txt', reason: 'limit:ratio' },
    { location: 'attachment:bom.zip/klein.txt', reason: 'limit:ratio' },
  ]);
  t.match(textAt(events, 'attachment:bom.zip/notitie.txt'), BSN);
  t.ok(performance.now() - started < 2000, 'stopped early');
  t.ok(process.memoryUsage().rss - before < 64 * 1024 * 1024, 'never expanded in memory');
});

t.test('zip bomb inside a DOCX part: the document is limit:ratio', async (t) => {
  const data = rawZip([deflated('[Content_Types].xml', Buffer.from('<Types/>')), deflated('word/document.xml', Buffer.concat([Buffer.from('<w:document><w:body><w:p><w:t>'), Buffer.alloc(32 * 1024 * 1024, 0x20), Buffer.from('</w:t></w:p></w:body></w:document>')]))]);
  const events = await extractAll(message('Doc', [attachment('groot.docx', 'application/vnd.openxmlformats-officedocument.wordprocessingml.document', data)]));
  t.same(unscannable(events), [{ location: 'attachment:groot.docx', reason: 'limit:ratio' }]);
});

t.test('too many entries: limit:entries for the archive', async (t) => {
  const files: Record<string, string> = {};
  for (let i = 0; i < 20; i++) files[`bestand-${i}.txt`] = `tekst ${i}`;
  const events = await extractAll(withZip('veel.zip', await zip(files)), { ...LIMITS, entries: 10 });
  t.same(unscannable(events), [{ location: 'attachment:veel.zip', reason: 'limit:entries' }]);
  const ok = await extractAll(withZip('veel.zip', await zip(files)), { ...LIMITS, entries: 20 });
  t.same(unscannable(ok), [], 'exactly at the limit is fine');
});

t.test('nesting depth: archives and forwarded messages below the message', async (t) => {
  const c = await zip({ 'diep.txt': `diep ${BSN}` });
  const b = await zip({ 'c.zip': c, 'b.txt': 'midden' });
  const a = await zip({ 'b.zip': b });
  const events = await extractAll(withZip('a.zip', a), { ...LIMITS, depth: 2 });
  t.same(unscannable(events), [{ location: 'attachment:a.zip/b.zip/c.zip', reason: 'limit:depth' }]);
  t.equal(textAt(events, 'attachment:a.zip/b.zip/b.txt'), 'midden', 'what lies within the limit is read');
  const deep = await extractAll(withZip('a.zip', a), { ...LIMITS, depth: 3 });
  t.same(unscannable(deep), []);
  t.match(textAt(deep, 'attachment:a.zip/b.zip/c.zip/diep.txt'), BSN);

  const inner = message('Binnenste', [textPart(BSN)]);
  const middle = message('Midden', [textPart('midden'), rfc822('binnen.eml', inner)]);
  const outer = message('Buiten', [textPart('buiten'), rfc822('midden.eml', middle)]);
  const forwarded = await extractAll(outer, { ...LIMITS, depth: 1 });
  t.same(unscannable(forwarded), [{ location: 'attachment:midden.eml/binnen.eml', reason: 'limit:depth' }]);
  t.match(textAt(forwarded, 'attachment:midden.eml'), 'midden');
  const none = await extractAll(outer, { ...LIMITS, depth: 0 });
  t.same(unscannable(none), [{ location: 'attachment:midden.eml', reason: 'limit:depth' }]);
});

t.test('total bytes: the attachment that crosses the budget and later ones are limit:totalBytes; bodies go on', async (t) => {
  const big = Buffer.alloc(80 * 1024, 'a');
  const events = await extractAll(
    message('Groot', [textPart('begin'), attachment('een.txt', 'text/plain', big), attachment('twee.txt', 'text/plain', big), textPart(`eind ${BSN}`), attachment('drie.txt', 'text/plain', big)]),
    { ...LIMITS, totalBytes: 100 * 1024 },
  );
  t.same(unscannable(events), [
    { location: 'attachment:twee.txt', reason: 'limit:totalBytes' },
    { location: 'attachment:drie.txt', reason: 'limit:totalBytes' },
  ]);
  t.equal(textAt(events, 'attachment:een.txt').length, big.length);
  t.match(textAt(events, 'body'), `eind ${BSN}`);
  t.equal(textAt(events, 'filename:drie.txt'), 'drie.txt', 'names are still scanned');

  // Inflated bytes count too: a small archive with a large entry.
  const data = await zip({ 'eerst.txt': 'klein', 'groot.txt': Buffer.alloc(300 * 1024, 'b'), 'daarna.txt': 'niet meer' });
  const inArchive = await extractAll(withZip('archief.zip', data), { ...LIMITS, totalBytes: 200 * 1024 });
  t.same(unscannable(inArchive), [{ location: 'attachment:archief.zip/groot.txt', reason: 'limit:totalBytes' }]);
  t.equal(textAt(inArchive, 'attachment:archief.zip/eerst.txt'), 'klein');
  t.equal(textAt(inArchive, 'attachment:archief.zip/daarna.txt'), '', 'the archive stops there');
});

t.test('password-protected ZIP entries are encrypted', async (t) => {
  const data = markEncrypted(await zip({ 'geheim.txt': `BSN ${BSN}`, 'ook.txt': 'ook' }));
  const events = await extractAll(withZip('geheim.zip', data));
  t.same(unscannable(events), [
    { location: 'attachment:geheim.zip/geheim.txt', reason: 'encrypted' },
    { location: 'attachment:geheim.zip/ook.txt', reason: 'encrypted' },
  ]);
  t.equal(textAt(events, 'filename:geheim.zip/geheim.txt'), 'geheim.txt', 'entry names are still scanned');
  t.notMatch(textAt(events, 'attachment:geheim.zip/geheim.txt'), BSN);
});

const hasZip = spawnSync('zip', ['-v']).status === 0;

t.test('a ZIP encrypted by Info-ZIP (zip -P), when the tool is installed', { skip: hasZip ? false : 'zip is not installed' }, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'zegel-extract-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(join(dir, 'data.txt'), `BSN ${BSN}\n`);
  const r = spawnSync('zip', ['-q', '-P', 'geheim', 'a.zip', 'data.txt'], { cwd: dir });
  t.equal(r.status, 0);
  const events = await extractAll(withZip('a.zip', readFileSync(join(dir, 'a.zip'))));
  t.same(unscannable(events), [{ location: 'attachment:a.zip/data.txt', reason: 'encrypted' }]);
});

t.test('password-protected documents: PDF, ODT, OOXML in an encrypted OLE package', async (t) => {
  const ole = Buffer.concat([Buffer.from([0xd0, 0xcf, 0x11, 0xe0, 0xa1, 0xb1, 0x1a, 0xe1]), Buffer.alloc(504), Buffer.from('EncryptedInfo', 'utf16le'), Buffer.alloc(64), Buffer.from('EncryptedPackage', 'utf16le'), Buffer.alloc(512)]);
  const events = await extractAll(
    message('Beveiligd', [
      textPart('Zie bijlagen.'),
      attachment('beveiligd.pdf', 'application/pdf', encryptedPdf()),
      attachment('brief.odt', 'application/vnd.oasis.opendocument.text', await odt([SENTENCE], true)),
      attachment('lijst.xlsx', 'application/vnd.openxmlformats-officedocument.spreadsheetml.sheet', ole),
    ]),
  );
  t.same(unscannable(events), [
    { location: 'attachment:beveiligd.pdf', reason: 'encrypted' },
    { location: 'attachment:brief.odt', reason: 'encrypted' },
    { location: 'attachment:lijst.xlsx', reason: 'encrypted' },
  ]);
});

t.test('broken files are corrupt', async (t) => {
  const good = await pdf([[SENTENCE]]);
  const doc = await docx([SENTENCE]);
  const badXml = await zip({ 'word/document.xml': '<w:document><w:body><w:p><w:t>open</w:p></w:document>' });
  const cases: Array<[string, string, Buffer]> = [
    ['afgekapt.pdf', 'application/pdf', good.subarray(0, 200)],
    ['onzin.pdf', 'application/pdf', Buffer.from('%PDF-1.7\nhier staat geen pdf\n')],
    ['afgekapt.docx', 'application/vnd.openxmlformats-officedocument.wordprocessingml.document', doc.subarray(0, doc.length - 40)],
    ['kapotte-xml.docx', 'application/vnd.openxmlformats-officedocument.wordprocessingml.document', badXml],
    ['geen.zip', ZIP, Buffer.from('dit is geen zip-bestand')],
  ];
  for (const [name, type, data] of cases) {
    const events = await extractAll(message('Kapot', [textPart('x'), attachment(name, type, data), attachment('daarna.txt', 'text/plain', Buffer.from(BSN))]));
    t.same(unscannable(events), [{ location: `attachment:${name}`, reason: 'corrupt' }], name);
    t.equal(textAt(events, 'attachment:daarna.txt'), BSN, `${name}: the rest of the message goes on`);
  }
  const method = rawZip([{ name: 'bzip2.txt', stored: Buffer.from('BZh91AY&SY'), method: 12 as 0, size: 10 }]);
  t.same(unscannable(await extractAll(withZip('m.zip', method))), [{ location: 'attachment:m.zip/bzip2.txt', reason: 'corrupt' }], 'unknown compression method');
  const broken = rawZip([{ name: 'kapot.txt', stored: Buffer.from('geen deflate-data hier'), method: 8, size: 100 }]);
  t.same(unscannable(await extractAll(withZip('k.zip', broken))), [{ location: 'attachment:k.zip/kapot.txt', reason: 'corrupt' }], 'broken deflate data');
});

t.test('timeout: a large PDF under a tiny clock is limit:timeout; the next attachment has its own clock', async (t) => {
  const pages = Array.from({ length: 150 }, (_, p) => Array.from({ length: 40 }, (_, l) => `Pagina ${p} regel ${l} ${SENTENCE}`));
  const big = await pdf(pages);
  const events = await extractAll(message('Traag', [textPart('x'), attachment('groot.pdf', 'application/pdf', big), attachment('klein.txt', 'text/plain', Buffer.from(BSN))]), { ...LIMITS, timeout: 40 });
  // 40 ms: far less than reading 150 pages, and room for a loaded machine to read the small text
  t.same(unscannable(events), [{ location: 'attachment:groot.pdf', reason: 'limit:timeout' }]);
  t.equal(textAt(events, 'attachment:klein.txt'), BSN);
});

t.test('timeout: slow input counts, a slow consumer does not', async (t) => {
  const raw = bytes(message('Traag', [textPart('x'), attachment('traag.csv', 'text/csv', Buffer.alloc(200 * 1024, 'a'))]));
  const slow = new Readable({
    read() {
      // 8 KB every 20 ms.
      const at = (this as Readable & { at?: number }).at ?? 0;
      (this as Readable & { at?: number }).at = at + 8192;
      setTimeout(() => this.push(at < raw.length ? raw.subarray(at, at + 8192) : null), 20);
    },
  });
  const events = await extractAll(slow, { ...LIMITS, timeout: 100 });
  t.same(unscannable(events), [{ location: 'attachment:traag.csv', reason: 'limit:timeout' }]);

  const files: Record<string, string> = {};
  for (let i = 0; i < 5; i++) files[`f${i}.txt`] = `tekst ${i}`;
  const archive = bytes(withZip('a.zip', await zip(files)));
  const seen: string[] = [];
  // the consumer spends far longer than the timeout in all (60 ms per event); the extraction itself takes a
  // few ms, with room for a loaded machine
  const started = Date.now();
  for await (const e of extractMessage(Readable.from([archive]), { ...LIMITS, timeout: 250 })) {
    seen.push(e.type);
    await new Promise((r) => setTimeout(r, 60));
  }
  t.ok(Date.now() - started > 250, 'the consumer took longer than the timeout');
  t.notOk(seen.includes('unscannable'), 'time spent by the consumer is not counted');
});

t.test('deflate stream is not trusted to end: data after the end is ignored, sizes are not checked', async (t) => {
  const payload = Buffer.from(`${SENTENCE} ${BSN}`);
  const stored = Buffer.concat([deflateRawSync(payload), Buffer.from('rommel')]);
  const data = rawZip([{ name: 'a.txt', stored, method: 8, size: 5 }]);
  const events = await extractAll(withZip('a.zip', data));
  t.same(unscannable(events), []);
  t.equal(textAt(events, 'attachment:a.zip/a.txt'), payload.toString());
});
