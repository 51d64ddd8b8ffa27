import t, { type Test } from 'tap';
import {
  BSN,
  SENTENCE,
  attachment,
  bytes,
  docx,
  extractAll,
  locations,
  message,
  ods,
  odt,
  pdf,
  pptx,
  rfc822,
  textAt,
  textPart,
  unscannable,
  xlsx,
  zip,
} from './fixtures/extract/fixtures.js';

const LINE = `${SENTENCE} BSN ${BSN}.`;

/** One message with the attachment; its name and text must come out. */
async function roundTrip(t: Test, name: string, type: string, data: Buffer): Promise<string> {
  const events = await extractAll(message('Bijlage', [textPart('Zie bijlage.'), attachment(name, type, data)]));
  t.same(unscannable(events), [], 'nothing unscannable');
  t.equal(textAt(events, `filename:${name}`), name, 'the file name is scanned');
  t.same(locations(events), ['subject', 'body', `filename:${name}`, `attachment:${name}`], 'in message order');
  const text = textAt(events, `attachment:${name}`);
  for (const e of events) if (e.type === 'text' && e.chunk.location === `attachment:${name}`) t.equal(e.chunk.scope, 'attachment');
  return text;
}

t.test('PDF: the text of every page', async (t) => {
  const data = await pdf([['Pagina een', SENTENCE], ['Pagina twee', `BSN ${BSN}`]]);
  const text = await roundTrip(t, 'verslag.pdf', 'application/pdf', data);
  t.match(text, SENTENCE);
  t.match(text, new RegExp(`BSN ${BSN}`));
  t.ok(text.indexOf('Pagina een') < text.indexOf('Pagina twee'), 'pages in order');
});

t.test('PDF: table cells on one line stay apart, runs of one word stay together', async (t) => {
  const { PDFDocument, StandardFonts } = await import('pdf-lib');
  const doc = await PDFDocument.create();
  const font = await doc.embedFont(StandardFonts.Helvetica);
  const page = doc.addPage([595, 842]);
  page.drawText('Nummer', { x: 40, y: 800, size: 10, font });
  page.drawText(BSN, { x: 150, y: 800, size: 10, font });
  page.drawText('111222333', { x: 210, y: 800, size: 10, font });
  page.drawText('Over', { x: 40, y: 780, size: 10, font });
  page.drawText('dracht', { x: 40 + font.widthOfTextAtSize('Over', 10), y: 780, size: 10, font });
  const text = await roundTrip(t, 'tabel.pdf', 'application/pdf', Buffer.from(await doc.save()));
  t.equal(text, `Nummer ${BSN} 111222333\nOverdracht\n`);
});

t.test('DOCX: paragraphs and table cells', async (t) => {
  const data = await docx([SENTENCE], [['Naam', 'BSN'], ['Jan de Vries', BSN]]);
  const text = await roundTrip(t, 'overdracht.docx', 'application/vnd.openxmlformats-officedocument.wordprocessingml.document', data);
  t.match(text, SENTENCE);
  t.match(text, /Jan de Vries\s+123456782/);
});

t.test('DOCX sent as application/octet-stream is still read (magic bytes and contents decide)', async (t) => {
  const data = await docx([LINE]);
  const text = await roundTrip(t, 'overdracht.bin', 'application/octet-stream', data);
  t.match(text, LINE);
});

t.test('XLSX: shared strings, inline strings and numbers', async (t) => {
  const data = await xlsx([
    ['Omschrijving', 'Nummer', 'Opmerking'],
    [SENTENCE, 123456782, { inline: 'inline tekst 111222333' }],
    ['Exponent', 1.23456782e8, 'klaar'],
  ]);
  const text = await roundTrip(t, 'lijst.xlsx', 'application/vnd.openxmlformats-officedocument.spreadsheetml.sheet', data);
  t.match(text, `${SENTENCE}\t${BSN}\tinline tekst 111222333`);
  t.match(text, `Exponent\t${BSN}\tklaar`);
});

t.test('XLSX: a number stored in E notation is written out', async (t) => {
  const { plainNumber } = await import('../src/classify/extract/ooxml.js');
  t.equal(plainNumber('1.23456782E8'), BSN);
  t.equal(plainNumber('123456782'), BSN);
  t.equal(plainNumber('3.5'), '3.5');
});

t.test('PPTX: slides in numeric order', async (t) => {
  const slides = Array.from({ length: 11 }, (_, i) => `Dia ${i + 1}`);
  slides[1] = LINE;
  const data = await pptx(slides);
  const text = await roundTrip(t, 'presentatie.pptx', 'application/vnd.openxmlformats-officedocument.presentationml.presentation', data);
  t.match(text, LINE);
  t.ok(text.indexOf('Dia 3') < text.indexOf('Dia 10'), 'slide 3 before slide 10');
});

t.test('ODT: paragraphs, with text:s spaces', async (t) => {
  const data = await odt([SENTENCE, `BSN  ${BSN}`]);
  const text = await roundTrip(t, 'brief.odt', 'application/vnd.oasis.opendocument.text', data);
  t.match(text, SENTENCE);
  t.match(text, `BSN  ${BSN}`);
});

t.test('ODS: cells, and a numeric value hidden by its display format', async (t) => {
  const data = await ods(
    [
      ['Omschrijving', 'Nummer'],
      [SENTENCE, 123456782],
    ],
    (n) => n.toExponential(2),
  );
  const text = await roundTrip(t, 'lijst.ods', 'application/vnd.oasis.opendocument.spreadsheet', data);
  t.match(text, SENTENCE);
  t.match(text, BSN, 'office:value added next to the shown 1.23e+8');
});

t.test('CSV, TXT, XML and JSON are read as text', async (t) => {
  const cases: Array<[string, string, string]> = [
    ['export.csv', 'text/csv', `naam;nummer;opmerking\nJan de Vries;${BSN};"${SENTENCE}"\n`],
    ['notitie.txt', 'text/plain', `${LINE}\n`],
    ['dossier.xml', 'application/xml', `<?xml version="1.0"?><dossier><bsn>${BSN}</bsn><notitie>${SENTENCE}</notitie></dossier>`],
    ['dossier.json', 'application/json', JSON.stringify({ bsn: BSN, notitie: SENTENCE })],
  ];
  for (const [name, type, content] of cases) {
    const text = await roundTrip(t, name, type, Buffer.from(content, 'utf8'));
    t.match(text, SENTENCE, name);
    t.match(text, BSN, name);
  }
});

t.test('a text attachment with an unknown type is sniffed as text; a binary one is not read', async (t) => {
  const png = Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0, 0, 0, 13]), Buffer.from(`IHDR ${BSN}`)]);
  const events = await extractAll(
    message('Bijlagen', [
      textPart('Zie bijlage.'),
      attachment('export.dat', 'application/octet-stream', Buffer.from(LINE)),
      attachment('scan.png', 'image/png', png),
      attachment('oud.doc', 'application/msword', Buffer.from([0xd0, 0xcf, 0x11, 0xe0, 0xa1, 0xb1, 0x1a, 0xe1, 0, 0, 0, 0])),
    ]),
  );
  t.match(textAt(events, 'attachment:export.dat'), LINE);
  t.equal(textAt(events, 'filename:scan.png'), 'scan.png', 'an image yields its name');
  t.equal(textAt(events, 'attachment:scan.png'), '', 'and no text (images are not read)');
  t.equal(textAt(events, 'attachment:oud.doc'), '', 'legacy binary Office files are not read');
  t.same(unscannable(events), [{ location: 'attachment:oud.doc', reason: 'unsupported' }], 'they are unscannable (fail closed); the image raises nothing');
});

t.test('HTML attachment: text without tags, charset from <meta>', async (t) => {
  const html = Buffer.from(`<html><head><meta charset="iso-8859-1"><style>p { color: red }</style></head><body><p>${SENTENCE}</p><table><tr><td>BSN</td><td>${BSN}</td></tr></table></body></html>`, 'latin1');
  const text = await roundTrip(t, 'pagina.html', 'text/html', html);
  t.match(text, SENTENCE, 'ë decoded from latin1');
  t.match(text, `BSN\t${BSN}`);
  t.notMatch(text, /<|color/, 'no tags, no style');
});

t.test('a forwarded message (message/rfc822): its subject, body and attachments', async (t) => {
  const inner = message('Doorgestuurd: uitslag', [textPart(LINE), attachment('verslag.pdf', 'application/pdf', await pdf([[`Uitslag ${BSN}`]]))]);
  const events = await extractAll(message('Fwd', [textPart('Zie hieronder.'), rfc822('bericht.eml', inner)]));
  t.same(unscannable(events), []);
  t.same(locations(events), ['subject', 'body', 'filename:bericht.eml', 'attachment:bericht.eml', 'filename:bericht.eml/verslag.pdf', 'attachment:bericht.eml/verslag.pdf']);
  const own = textAt(events, 'attachment:bericht.eml');
  t.match(own, 'Doorgestuurd: uitslag', 'the forwarded subject');
  t.match(own, LINE, 'the forwarded body');
  for (const e of events) if (e.type === 'text' && e.chunk.location === 'attachment:bericht.eml') t.equal(e.chunk.scope, 'attachment');
  t.equal(textAt(events, 'filename:bericht.eml/verslag.pdf'), 'verslag.pdf');
  t.match(textAt(events, 'attachment:bericht.eml/verslag.pdf'), `Uitslag ${BSN}`);
});

t.test('a forwarded message sent 8bit inline and one without a file name', async (t) => {
  const inner = message('Intern', [textPart(LINE)]);
  const part = rfc822('x.eml', inner, '8bit');
  part.headers = part.headers.filter((h) => !h.startsWith('Content-Disposition')).map((h) => h.replace(/; name="x.eml"/, ''));
  const events = await extractAll(message('Fwd', [textPart('Zie hieronder.'), part]));
  t.same(locations(events), ['subject', 'body', 'attachment:part2.eml']);
  t.match(textAt(events, 'attachment:part2.eml'), LINE);
});

t.test('ZIP: every entry with its path, its name scanned', async (t) => {
  const data = await zip({
    'map/overdracht.docx': await docx([LINE]),
    'map/leeg/': '',
    'notitie.txt': `Notitie ${BSN}`,
    'foto.jpg': Buffer.from([0xff, 0xd8, 0xff, 0xe0, 0, 0x10, 0x4a, 0x46, 0x49, 0x46, 0]),
  });
  const events = await extractAll(message('Archief', [textPart('Zie bijlage.'), attachment('archief.zip', 'application/zip', data)]));
  t.same(unscannable(events), []);
  t.match(textAt(events, 'attachment:archief.zip/map/overdracht.docx'), LINE);
  t.equal(textAt(events, 'filename:archief.zip/map/overdracht.docx'), 'map/overdracht.docx');
  t.match(textAt(events, 'attachment:archief.zip/notitie.txt'), BSN);
  t.equal(textAt(events, 'filename:archief.zip/foto.jpg'), 'foto.jpg');
  t.equal(textAt(events, 'attachment:archief.zip/foto.jpg'), '');
  t.notOk(locations(events).some((l) => l.includes('leeg')), 'directories are not files');
});

t.test('an .eml file inside a ZIP is a forwarded message', async (t) => {
  const inner = message('Verslag', [textPart(LINE)]);
  const data = await zip({ 'bericht.eml': bytes(inner) });
  const events = await extractAll(message('Archief', [attachment('archief.zip', 'application/zip', data)]));
  t.match(textAt(events, 'attachment:archief.zip/bericht.eml'), LINE);
});

t.test('type detection: magic bytes first, then the declared type, then a look at the bytes', async (t) => {
  const { detectKind } = await import('../src/classify/extract/detect.js');
  const b = (s: string): Buffer => Buffer.from(s, 'latin1');
  t.equal(detectKind(b('%PDF-1.7\n'), 'scan.docx', 'application/vnd.openxmlformats-officedocument.wordprocessingml.document'), 'pdf');
  t.equal(detectKind(b('PK\x03\x04\x14\x00'), 'lijst.csv', 'text/csv'), 'zip');
  t.equal(detectKind(b('Subject: uitleg over %PDF-1.4\r\n\r\ntekst'), 'x.eml', 'message/rfc822'), 'eml');
  t.equal(detectKind(b('notitie over het %PDF-formaat'), 'notitie.txt', 'text/plain'), 'text');
  t.equal(detectKind(b('\x00\x01junk%PDF-1.4'), 'x.bin', 'application/octet-stream'), 'pdf');
  t.equal(detectKind(b('<svg><text>hallo</text></svg>'), 'a.svg', 'image/svg+xml'), 'text');
  t.equal(detectKind(Buffer.from([0xff, 0xd8, 0xff, 0xe0, 0, 0x10]), 'foto.jpg', 'image/jpeg'), 'skip');
  t.equal(detectKind(b('gewone tekst'), 'bestand', undefined), 'text');
});
