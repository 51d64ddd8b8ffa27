import t from 'tap';
import { IBAN_LENGTHS, IbanDetector, ibanRemainder, isValidIban, redactIban } from '../src/classify/detectors/iban.js';
import { createDetector } from '../src/classify/detectors/index.js';

const iban = createDetector({ kind: 'iban' });
const keys = (text: string): string[] => iban.find(text).map((h) => h.key);

/** Registry example IBANs, as printed (groups of four). */
const VALID = [
  'NL91 ABNA 0417 1643 00',
  'NL61 RABO 8134 5751 27',
  'BE68 5390 0754 7034',
  'DE89 3704 0044 0532 0130 00',
  'GB29 NWBK 6016 1331 9268 19',
  'FR14 2004 1010 0505 0001 3M02 606',
  'NO93 8601 1117 947',
  'MT84 MALT 0110 0001 2345 MTLC AST0 01S',
  'LC55 HEMM 0001 0001 0012 0012 0002 3015',
  'IT60 X054 2811 1010 0000 0123 456',
  'CH93 0076 2011 6238 5295 7',
];

t.test('the length table and the mod-97 check', async (t) => {
  t.equal(IBAN_LENGTHS.NL, 18);
  t.equal(IBAN_LENGTHS.NO, 15);
  t.equal(IBAN_LENGTHS.LC, 32);
  t.ok(Object.keys(IBAN_LENGTHS).length >= 80, 'every registry country');
  t.equal(ibanRemainder('NL91ABNA0417164300'), 1);
  t.ok(isValidIban('NL91ABNA0417164300'));
  t.ok(isValidIban('nl91abna0417164300'), 'any case');
  t.notOk(isValidIban('NL92ABNA0417164300'), 'check digits broken');
  t.notOk(isValidIban('NL91ABNA0417164301'), 'account digit broken');
  t.notOk(isValidIban('NL91ABNA041716430'), 'too short for NL');
  t.notOk(isValidIban('XX91ABNA0417164300'), 'no such country');
  t.equal(redactIban('NL91ABNA0417164300'), 'NL…4300');
});

t.test('valid IBANs of several countries, spaced and compact', async (t) => {
  for (const printed of VALID) {
    const compact = printed.replace(/ /g, '');
    for (const form of [printed, compact, compact.toLowerCase()]) {
      const text = `Graag overmaken naar ${form}, t.n.v. Stichting Voorbeeld.`;
      const hits = iban.find(text);
      t.equal(hits.length, 1, form);
      t.equal(hits[0]?.key, compact, 'key is the compact upper-case IBAN');
      t.equal(hits[0]?.excerpt, `${compact.slice(0, 2)}…${compact.slice(-4)}`);
      t.equal(text.slice(hits[0]?.start, hits[0]?.end), form, 'span is the IBAN as written');
    }
  }
});

t.test('a checksum-broken IBAN is not found', async (t) => {
  t.same(keys('IBAN NL92ABNA0417164300'), []);
  t.same(keys('IBAN NL91 ABNA 0417 1643 01'), []);
  t.same(keys('IBAN DE89 3704 0044 0532 0130 01'), []);
});

t.test('excerpt: country plus last four', async (t) => {
  const hits = iban.find('IBAN NL61RABO8134575127\nBIC RABONL2U');
  t.same(hits.map((h) => h.excerpt), ['NL…5127']);
});

t.test('embedded in text, with boundaries', async (t) => {
  t.same(keys('Signature:\n--\nStichting Voorbeeld\nIBAN: NL91ABNA0417164300\nKvK 12345678'), ['NL91ABNA0417164300']);
  t.same(keys('(NL91 ABNA 0417 1643 00)'), ['NL91ABNA0417164300']);
  t.same(keys('NL91 ABNA 0417 1643 00 BIC ABNANL2A'), ['NL91ABNA0417164300'], 'a word after a spaced IBAN');
  t.same(keys('XNL91ABNA0417164300'), [], 'letter directly before');
  t.same(keys('NL91ABNA04171643001'), [], 'digit directly after: too long');
  t.same(keys('NL91ABNA0417164300X'), [], 'letter directly after');
  t.same(keys('NL91 ABN A041 7164 300'), [], 'groups must be of four');
  t.same(keys('NL91  ABNA  0417  1643  00'), [], 'single spaces only');
  t.same(keys('twee: NL91ABNA0417164300 en BE68539007547034.'), ['NL91ABNA0417164300', 'BE68539007547034']);
  t.same(keys('van de 12 mensen zijn er 34 aanwezig'), []);
});

t.test('a broken candidate does not hide a valid IBAN after it', async (t) => {
  t.same(keys('ab12 cdef NL91ABNA0417164300'), ['NL91ABNA0417164300']);
  t.same(keys('NL99NL91ABNA0417164300'), [], 'glued to another candidate');
});

t.test('check digits 00, 01 and 99 are never valid', async (t) => {
  // 00 is 97, 01 is 98 and 99 is 2 modulo 97: find accounts where those pass mod-97 and check they are refused.
  for (const [cd, twin] of [['01', '98'], ['99', '02'], ['00', '97']] as const) {
    let bban = '';
    for (let n = 0; n < 10000 && bban === ''; n++) {
      const candidate = `ABNA04171${String(n).padStart(5, '0')}`;
      if (ibanRemainder(`NL${cd}${candidate}`) === 1) bban = candidate;
    }
    t.not(bban, '', `an account where ${cd} passes mod-97`);
    t.ok(isValidIban(`NL${twin}${bban}`), `its proper check digits ${twin}`);
    t.notOk(isValidIban(`NL${cd}${bban}`), `${cd} refused`);
    t.same(keys(`IBAN NL${cd}${bban}`), []);
  }
  t.equal(new IbanDetector().maxMatchLength >= 34 + 8, true);
});
