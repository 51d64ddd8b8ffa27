import t from 'tap';
import {
  BSN,
  LIMITS,
  SENTENCE,
  attachment,
  bytes,
  deflated,
  docx,
  extractAll,
  locations,
  markEncrypted,
  message,
  pdf,
  rawZip,
  textAt,
  textPart,
  unscannable,
  zip,
} from './fixtures/extract/fixtures.js';

const LINE = `${SENTENCE} BSN ${BSN}.`;

async function nested(): Promise<string> {
  const archief = await zip({ 'map/overdracht.docx': await docx([LINE]), 'map/verslag.pdf': await pdf([[`Verslag ${BSN}`]]) });
  const bericht = message('Doorgestuurd dossier', [textPart(`Doorgestuurde tekst ${BSN}`), attachment('archief.zip', 'application/zip', archief)]);
  const buiten = await zip({ 'bericht.eml': bytes(bericht), 'lees-mij.txt': 'Lees mij' });
  return message('Alles', [textPart('Zie bijlage.'), attachment('buiten.zip', 'application/zip', buiten)]);
}

t.test('a ZIP inside a forwarded message inside a ZIP: every part at its own location, in order', async (t) => {
  const events = await extractAll(await nested());
  t.same(unscannable(events), []);
  t.same(locations(events), [
    'subject',
    'body',
    'filename:buiten.zip',
    'filename:buiten.zip/bericht.eml',
    'attachment:buiten.zip/bericht.eml',
    'filename:buiten.zip/bericht.eml/archief.zip',
    'filename:buiten.zip/bericht.eml/archief.zip/map/overdracht.docx',
    'attachment:buiten.zip/bericht.eml/archief.zip/map/overdracht.docx',
    'filename:buiten.zip/bericht.eml/archief.zip/map/verslag.pdf',
    'attachment:buiten.zip/bericht.eml/archief.zip/map/verslag.pdf',
    'filename:buiten.zip/lees-mij.txt',
    'attachment:buiten.zip/lees-mij.txt',
  ]);
  t.match(textAt(events, 'attachment:buiten.zip/bericht.eml/archief.zip/map/overdracht.docx'), LINE);
  t.match(textAt(events, 'attachment:buiten.zip/bericht.eml/archief.zip/map/verslag.pdf'), `Verslag ${BSN}`);
  const own = events.filter((e) => e.type === 'text' && e.chunk.location === 'attachment:buiten.zip/bericht.eml');
  t.ok(own.every((e) => e.type === 'text' && e.chunk.scope === 'attachment'), 'the forwarded subject and body are attachment text');
  t.equal(textAt(events, 'attachment:buiten.zip/bericht.eml'), `Doorgestuurd dossier\nDoorgestuurde tekst ${BSN}\n`);
  t.equal(textAt(events, 'filename:buiten.zip/bericht.eml/archief.zip/map/overdracht.docx'), 'map/overdracht.docx');
});

t.test('the default depth (3) allows zip → eml → zip; depth 2 stops at the inner archive', async (t) => {
  const events = await extractAll(await nested(), { ...LIMITS, depth: 2 });
  t.same(unscannable(events), [{ location: 'attachment:buiten.zip/bericht.eml/archief.zip', reason: 'limit:depth' }]);
  t.match(textAt(events, 'attachment:buiten.zip/bericht.eml'), 'Doorgestuurde tekst');
});

t.test('unscannable parts deep inside are reported where they are; their siblings go on', async (t) => {
  const geheim = markEncrypted(await zip({ 'geheim.txt': BSN }));
  const bom = rawZip([deflated('bom.txt', Buffer.alloc(16 * 1024 * 1024, 0x41))]);
  const bericht = message('Fwd', [textPart('tekst'), attachment('geheim.zip', 'application/zip', geheim), attachment('bom.zip', 'application/zip', bom), attachment('na.txt', 'text/plain', Buffer.from(BSN))]);
  const buiten = await zip({ 'bericht.eml': bytes(bericht), 'daarna.txt': 'daarna' });
  const events = await extractAll(message('Diep', [attachment('buiten.zip', 'application/zip', buiten)]));
  t.same(unscannable(events), [
    { location: 'attachment:buiten.zip/bericht.eml/geheim.zip/geheim.txt', reason: 'encrypted' },
    { location: 'attachment:buiten.zip/bericht.eml/bom.zip/bom.txt', reason: 'limit:ratio' },
  ]);
  t.equal(textAt(events, 'attachment:buiten.zip/bericht.eml/na.txt'), BSN);
  t.equal(textAt(events, 'attachment:buiten.zip/daarna.txt'), 'daarna');
});

t.test('a forwarded message whose own bytes hit a limit is reported at the message, not at its part', async (t) => {
  // bericht.eml inflates at a ratio far above the limit while its PDF attachment is being read.
  const inner = message('Fwd', [textPart('tekst'), attachment('verslag.pdf', 'application/pdf', Buffer.from(`%PDF-1.4\n${' '.repeat(4 * 1024 * 1024)}`))]);
  const data = rawZip([deflated('bericht.eml', bytes(inner))]);
  const events = await extractAll(message('Fwd', [attachment('buiten.zip', 'application/zip', data)]), { ...LIMITS, ratio: 20 });
  t.same(unscannable(events), [{ location: 'attachment:buiten.zip/bericht.eml', reason: 'limit:ratio' }]);
});

t.test('a fatal limit deep inside stops the whole top-level attachment; the budget stays spent', async (t) => {
  const inner = message('Fwd', [textPart('tekst'), attachment('groot.txt', 'text/plain', Buffer.alloc(600 * 1024, 'g')), attachment('klein.txt', 'text/plain', Buffer.from('klein'))]);
  const buiten = await zip({ 'bericht.eml': bytes(inner), 'daarna.txt': 'niet meer' });
  const events = await extractAll(
    message('Groot', [attachment('buiten.zip', 'application/zip', buiten), textPart(`tekst ${BSN}`), attachment('volgende.txt', 'text/plain', Buffer.from(BSN))]),
    { ...LIMITS, totalBytes: 500 * 1024 },
  );
  t.same(unscannable(events), [
    { location: 'attachment:buiten.zip/bericht.eml', reason: 'limit:totalBytes' },
    { location: 'attachment:volgende.txt', reason: 'limit:totalBytes' },
  ]);
  t.equal(textAt(events, 'attachment:buiten.zip/daarna.txt'), '', 'the rest of that attachment is not read');
  t.equal(textAt(events, 'body'), `tekst ${BSN}\n`, 'bodies are not part of the budget');
  t.equal(textAt(events, 'filename:volgende.txt'), 'volgende.txt', 'names are still scanned');
});
