import t from 'tap';
import { attachment, extractAll, message, textPart, unscannable, zip } from './fixtures/extract/fixtures.js';

/**
 * Fail closed: a document or archive Zegel recognises but cannot open is
 * unscannable (the shipped policy then encrypts), sealed content (S/MIME,
 * OpenPGP) is `encrypted`; images are not read and raise nothing.
 */
const pad = (head: number[], size = 600) => Buffer.concat([Buffer.from(head), Buffer.alloc(size - head.length, 0x41)]);

const cases: Array<[string, string, Buffer, string]> = [
  ['7z archive by its bytes', 'archief.bin', pad([0x37, 0x7a, 0xbc, 0xaf, 0x27, 0x1c]), 'unsupported'],
  ['RAR archive by its bytes', 'archief.dat', pad([0x52, 0x61, 0x72, 0x21, 0x1a, 0x07, 0x00]), 'unsupported'],
  ['gzip by its bytes', 'log.bin', pad([0x1f, 0x8b, 0x08]), 'unsupported'],
  ['a .rar by its name', 'stukken.rar', Buffer.from('not really rar'), 'unsupported'],
  ['winmail.dat', 'winmail.dat', pad([0x78, 0x9f, 0x3e, 0x22]), 'unsupported'],
  ['legacy Word (OLE) document', 'verslag.doc', pad([0xd0, 0xcf, 0x11, 0xe0, 0xa1, 0xb1, 0x1a, 0xe1], 4096), 'unsupported'],
  ['OpenPGP message', 'bericht.asc', Buffer.from('-----BEGIN PGP MESSAGE-----\r\n\r\nhQEMA0xyz\r\n-----END PGP MESSAGE-----\r\n'), 'encrypted'],
];

for (const [what, name, data, reason] of cases) {
  t.test(`${what} is unscannable: ${reason}`, async (t) => {
    const events = await extractAll(message('stukken', [textPart('Zie bijlage.'), attachment(name, 'application/octet-stream', data)]));
    t.same(unscannable(events), [{ location: `attachment:${name}`, reason }]);
  });
}

t.test('S/MIME enveloped data is unscannable: encrypted', async (t) => {
  const events = await extractAll(message('geheim', [attachment('smime.p7m', 'application/pkcs7-mime; smime-type=enveloped-data', Buffer.from([0x30, 0x82, 0x01, 0x00, 1, 2, 3]))]));
  t.same(unscannable(events), [{ location: 'attachment:smime.p7m', reason: 'encrypted' }]);
});

t.test('inside a ZIP too', async (t) => {
  const archive = await zip({ 'map/oud.doc': pad([0xd0, 0xcf, 0x11, 0xe0, 0xa1, 0xb1, 0x1a, 0xe1], 4096), 'map/leesmij.txt': 'Hallo' });
  const events = await extractAll(message('zip', [attachment('archief.zip', 'application/zip', archive)]));
  t.same(unscannable(events), [{ location: 'attachment:archief.zip/map/oud.doc', reason: 'unsupported' }]);
});

t.test('an image is not read and raises nothing', async (t) => {
  const png = pad([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
  const events = await extractAll(message('foto', [attachment('foto.png', 'image/png', png)]));
  t.same(unscannable(events), []);
  t.ok(events.some((e) => e.type === 'text' && e.chunk.location === 'filename:foto.png'), 'its name is still scanned');
});
