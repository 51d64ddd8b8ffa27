import t from 'tap';
import { BsnDetector, elfproef, redactBsn } from '../src/classify/detectors/bsn.js';
import { createDetector } from '../src/classify/detectors/index.js';

const bsn = createDetector({ kind: 'bsn' });
const keys = (text: string): string[] => bsn.find(text).map((h) => h.key);

t.test('the 11-proef', async (t) => {
  t.ok(elfproef('111222333'));
  t.ok(elfproef('123456782'));
  t.notOk(elfproef('123456781'), 'neighbour of a valid number');
  t.notOk(elfproef('123456783'));
  t.notOk(elfproef('111222334'));
  t.notOk(elfproef('000000000'), 'all zeros pass the sum but are no BSN');
  t.notOk(elfproef('12345678'), '8 digits are padded by the detector, not here');
  t.notOk(elfproef('12345678x'));
});

t.test('known valid numbers are found, with redacted excerpt and digits as key', async (t) => {
  const text = 'Het BSN van mevrouw is 111222333 en van meneer 123456782.';
  const hits = bsn.find(text);
  t.same(
    hits.map((h) => [h.key, h.excerpt, text.slice(h.start, h.end)]),
    [
      ['111222333', '******333', '111222333'],
      ['123456782', '******782', '123456782'],
    ],
  );
  t.equal(redactBsn('123456782'), '******782');
  t.ok(bsn.maxMatchLength >= 11 + 40, 'covers the number and the keyword window');
  t.ok(new BsnDetector().find('123456782').length === 1, 'a text that is only the number');
});

t.test('invalid neighbours are not found', async (t) => {
  for (const n of ['123456781', '123456783', '111222334', '111222332', '636966184']) t.same(keys(`nummer ${n} graag`), [], n);
});

t.test('every grouping', async (t) => {
  const forms = [
    '123456782',
    '123 456 782',
    '123.456.782',
    '123-456-782',
    '1234.56.782',
    '1234 56 782',
    '1234-56-782',
    '123\u00A0456\u00A0782',
    '123\u202F456\u202F782',
  ];
  for (const form of forms) {
    const text = `Cliënt (${form}) is aangemeld.`;
    const hits = bsn.find(text);
    t.equal(hits.length, 1, JSON.stringify(form));
    t.equal(hits[0]?.key, '123456782');
    t.equal(hits[0]?.excerpt, '******782');
    t.equal(text.slice(hits[0]?.start, hits[0]?.end), form, 'span is the number as written');
  }
  for (const bad of ['123.456 782', '123-456.782', '12 3456 782', '123456 782', '12.34.56.782', '1.2345.6782', '123  456  782']) {
    t.same(keys(`nummer ${bad} graag`), [], `not a BSN grouping: ${JSON.stringify(bad)}`);
  }
});

t.test('digit boundaries: never part of a longer digit run or digit group', async (t) => {
  const cases = [
    '1234567820',
    '0123456782',
    '91234567829',
    'nummer 1 123456782',
    '123456782 10',
    '123 456 782 10',
    '10 123 456 782',
    '123456782-1',
    '2024/123456782',
    '123456782/2024',
    '1.123.456.782',
  ];
  for (const c of cases) t.same(keys(`zie ${c} hier`), [], c);
  // Separators that do not continue a number: sentence punctuation, tabs, line breaks, CSV.
  t.same(keys('BSN: 123456782.'), ['123456782']);
  t.same(keys('nummers 123456782, 111222333 en 636966185;'), ['123456782', '111222333', '636966185']);
  t.same(keys('1\t123456782\t2024'), ['123456782'], 'table cells separated by tabs');
  t.same(keys('12\n123456782\n'), ['123456782'], 'lines');
  t.same(keys('1,123456782,2024\n2;111222333;2025'), ['123456782', '111222333'], 'CSV fields');
  t.same(keys('regel 1  123456782'), ['123456782'], 'two spaces separate');
});

t.test('never inside an IBAN', async (t) => {
  t.same(keys('IBAN NL91ABNA0417164300'), []);
  t.same(keys('IBAN NL91 ABNA 0417 1643 00'), []);
  t.same(keys('IBAN DE89370400440532013000'), []);
  t.same(keys('IBAN NL12ABCD123456782'), [], 'a 9-digit valid run inside an IBAN-shaped token');
  t.same(keys('GB29NWBK123456782193'), []);
});

t.test('never inside a phone number', async (t) => {
  // 612345671 and 12345672 (with a leading zero) pass the 11-proef on their own.
  t.ok(elfproef('612345671'));
  t.ok(elfproef('012345672'));
  const phones = [
    '+31 612345671',
    '+31612345671',
    '+31-612345671',
    '0031 612345671',
    '0031612345671',
    '+31 (0)612345671',
    '+31(0)612345671',
    '0612345671',
    '06-12345672',
    '06 12345672',
    '+31 6 12345672',
    '06 1234 5672',
    '020 612345671',
    '0201234567',
    '020-1234567',
  ];
  for (const p of phones) {
    t.same(keys(`Bel mij op ${p} graag`), [], p);
    t.same(keys(`BSN onbekend, bel ${p}`), [], `${p} with a BSN keyword close by`);
  }
});

t.test('dates, amounts and codes', async (t) => {
  const cases = [
    'op 12-03-2024 om 10:30',
    '€ 123.456.782',
    '€123456782',
    '$ 123456782',
    'totaal 123.456.782,00 euro',
    'hash 3fa9123456782bc',
    'id 550e8400-e29b-41d4-a716-123456782abc',
  ];
  for (const c of cases) t.same(keys(c), [], c);
});

t.test('letters glued to a number do not hide it', async (t) => {
  t.same(keys('NaamSven VisserNummer302 566 648'), ['302566648'], 'HTML table cells without separators');
  t.same(keys('dossier_123456782.pdf'), ['123456782'], 'file name');
  t.same(keys('BSN123456782'), ['123456782']);
});

t.test('all zeros', async (t) => {
  t.same(keys('nummer 000000000'), []);
  t.same(keys('nummer 000 000 000'), []);
  t.same(keys('BSN 00000000'), [], '8 zeros with a keyword');
});

t.test('8-digit numbers count only with a BSN keyword close by', async (t) => {
  // 012345672 passes the 11-proef; 12345670 with a leading zero does not.
  t.same(keys('Klantnummer 12345672'), [], 'no keyword');
  t.same(keys('KvK 67583751'), [], 'KvK is no BSN keyword');
  const found = bsn.find('BSN: 12345672');
  t.same(found.map((h) => [h.key, h.excerpt]), [['012345672', '******672']]);
  t.same(keys('burgerservicenummer 12345672'), ['012345672']);
  t.same(keys('Burger Service Nummer: 12345672'), ['012345672']);
  t.same(keys('sofi-nummer 12345672'), ['012345672']);
  t.same(keys('Sofinummer van de cliënt is 12345672'), ['012345672']);
  t.same(keys('citizen service number 12345672'), ['012345672']);
  t.same(keys('12345672 (bsn)'), ['012345672'], 'keyword after the number');
  t.same(keys('BSN is bij ons bekend, het nummer is 12345672'), ['012345672'], 'within 40 characters');
  t.same(keys(`BSN${' '.repeat(41)}12345672`), [], 'more than 40 characters away');
  t.same(keys(`BSN${' '.repeat(40)}12345672`), ['012345672'], 'exactly 40 characters away');
  t.same(keys('BSN 12345670'), [], 'fails the 11-proef');
  t.same(keys('bsnx 12345672'), [], 'keyword must be a whole word');
  t.same(keys('BSN 9 12345672'), [], 'still no digit-group continuation');
});

t.test('several numbers: distinct keys, in text order', async (t) => {
  const text = 'A 123456782, B 123.456.782, C 111 222 333';
  t.same(keys(text), ['123456782', '123456782', '111222333']);
  t.same([...new Set(keys(text))], ['123456782', '111222333']);
});
