import { Readable } from 'node:stream';
import t from 'tap';
import { extractMessage } from '../src/classify/extract/index.js';
import type { ExtractEvent } from '../src/classify/types.js';
import { BSN, LIMITS, attachment, bytes, docx, markEncrypted, message, odt, pdf, rfc822, textPart, xlsx, zip } from './fixtures/extract/fixtures.js';

/**
 * Damaged input of every supported kind (bytes changed, cut short, cut out)
 * never makes extraction throw, hang or leave an unhandled rejection behind.
 */
t.test('damaged files and messages never throw', async (t) => {
  const rejections: unknown[] = [];
  const onRejection = (e: unknown): void => void rejections.push(e);
  process.on('unhandledRejection', onRejection);
  t.teardown(() => void process.off('unhandledRejection', onRejection));

  let seed = 20261102;
  const random = (): number => {
    seed = (seed * 1103515245 + 12345) & 0x7fffffff;
    return seed / 0x7fffffff;
  };
  const inner = message('Binnen', [textPart(`binnen ${BSN}`), attachment('x.pdf', 'application/pdf', await pdf([[`hallo ${BSN}`]]))]);
  const files: Array<[string, string, Buffer]> = [
    ['a.pdf', 'application/pdf', await pdf([[`Regel een ${BSN}`, 'Regel twee'], ['Pagina 2']])],
    ['b.docx', 'application/octet-stream', await docx([`Alinea ${BSN}`], [['a', 'b']])],
    ['c.xlsx', 'application/octet-stream', await xlsx([['a', 123456782, { inline: 'x' }]])],
    ['d.zip', 'application/zip', await zip({ 'in.eml': bytes(inner), 'm/x.txt': 'tekst', 'y.docx': await docx(['q']) })],
    ['e.odt', 'application/octet-stream', await odt([`p ${BSN}`])],
    ['f.zip', 'application/zip', markEncrypted(await zip({ 'a.txt': 'x' }))],
  ];
  let runs = 0;
  for (let i = 0; i < 150; i++) {
    const [name, type, original] = files[Math.floor(random() * files.length)] as [string, string, Buffer];
    let data = Buffer.from(original);
    const mode = random();
    if (mode < 0.4) for (let k = 0; k < 1 + random() * 20; k++) data[Math.floor(random() * data.length)] = Math.floor(random() * 256);
    else if (mode < 0.7) data = data.subarray(0, Math.floor(random() * data.length));
    else {
      const at = Math.floor(random() * data.length);
      data = Buffer.concat([data.subarray(0, at), data.subarray(at + Math.floor(random() * 200))]);
    }
    const raw = bytes(message('Beschadigd', [textPart('x'), attachment(name, type, data), rfc822('r.eml', inner)]));
    // Now and then the message itself is damaged too.
    if (random() < 0.2) for (let k = 0; k < 5; k++) raw[Math.floor(random() * raw.length)] = Math.floor(random() * 256);
    const events: ExtractEvent[] = [];
    try {
      for await (const e of extractMessage(Readable.from([raw]), LIMITS)) events.push(e);
      runs++;
    } catch (err) {
      t.fail(`${name} (mode ${mode.toFixed(2)}) threw: ${String(err)}`);
    }
  }
  await new Promise((r) => setTimeout(r, 100));
  t.equal(runs, 150, 'every damaged message was extracted');
  t.same(rejections, [], 'no unhandled rejections');
});
