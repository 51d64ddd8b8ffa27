import t from 'tap';
import { createDetector } from '../src/classify/detectors/index.js';
import {
  PatternError,
  RegexDetector,
  compilePattern,
  elfproefDigits,
  luhn,
  mod97,
  passesChecksum,
  redactMatch,
} from '../src/classify/detectors/regex.js';

const keys = (spec: Parameters<typeof createDetector>[0], text: string): string[] => createDetector(spec).find(text).map((h) => h.key);

t.test('patterns RE2 cannot run in linear time are refused with ZEGEL_RULE_PATTERN', async (t) => {
  const refused = ['(a)\\1', '(?<x>a)\\k<x>', 'foo(?=bar)', 'foo(?!bar)', '(?<=a)b', '(?<!a)b', 'a(b'];
  for (const pattern of refused) {
    t.throws(() => createDetector({ kind: 'regex', pattern }), { code: 'ZEGEL_RULE_PATTERN', name: 'PatternError' }, pattern);
  }
  try {
    compilePattern('(a)\\1');
    t.fail('should throw');
  } catch (err) {
    t.ok(err instanceof PatternError);
    t.match((err as Error).message, /RE2/);
  }
});

t.test('nested quantifiers compile and run in linear time', async (t) => {
  // A backtracking engine takes exponential time on this input; RE2 does not.
  const det = createDetector({ kind: 'regex', pattern: '(a+)+$' });
  const text = `${'a'.repeat(50_000)}!`;
  t.same(det.find(text), []);
  t.equal(createDetector({ kind: 'regex', pattern: '(x+x+)+y' }).find('x'.repeat(20_000)).length, 0);
});

t.test('flags', async (t) => {
  t.same(keys({ kind: 'regex', pattern: 'PAT-[0-9]{6}', flags: 'i' }, 'pat-123456'), ['pat-123456']);
  t.same(keys({ kind: 'regex', pattern: 'PAT-[0-9]{6}' }, 'pat-123456'), []);
  for (const flags of ['g', 'y', 'x', 'ii', 'iz']) {
    t.throws(() => createDetector({ kind: 'regex', pattern: 'a', flags }), { code: 'ZEGEL_RULE_PATTERN' }, flags);
  }
  t.throws(() => createDetector({ kind: 'regex', pattern: 'a*' }), { code: 'ZEGEL_RULE_PATTERN' }, 'matches the empty string');
});

t.test('matches, offsets (UTF-16) and redacted excerpts', async (t) => {
  const det = createDetector({ kind: 'regex', pattern: 'PAT-[0-9]{6}' });
  const text = 'Cliënt 😀 PAT-123456 en PAT-654321.';
  const hits = det.find(text);
  t.same(
    hits.map((h) => [text.slice(h.start, h.end), h.key, h.excerpt]),
    [
      ['PAT-123456', 'PAT-123456', '*******456'],
      ['PAT-654321', 'PAT-654321', '*******321'],
    ],
  );
  t.same(det.find(text), hits, 'the detector can be used again');
  t.equal(redactMatch('12345'), '**345');
  t.equal(redactMatch('123'), '***', 'three characters or fewer are masked entirely');
  t.equal(redactMatch('ab'), '**');
  t.ok(det.maxMatchLength >= 256);
});

t.test('checksums', async (t) => {
  t.ok(elfproefDigits('123456782'));
  t.notOk(elfproefDigits('123456781'));
  t.notOk(elfproefDigits('000000000'));
  t.ok(luhn('79927398713'));
  t.notOk(luhn('79927398710'));
  t.ok(luhn('4111111111111111'));
  t.ok(mod97('NL91ABNA0417164300'));
  t.notOk(mod97('NL92ABNA0417164300'));
  t.ok(passesChecksum('elfproef', '123-456-782'), 'digits of the match');
  t.ok(passesChecksum('mod97', 'NL91 ABNA 0417 1643 00'), 'letters and digits of the match');

  const numbers = 'nummers 123456782 en 123456781';
  t.same(keys({ kind: 'regex', pattern: '\\b[0-9]{9}\\b' }, numbers), ['123456782', '123456781']);
  t.same(keys({ kind: 'regex', pattern: '\\b[0-9]{9}\\b', checksum: 'elfproef' }, numbers), ['123456782']);
  t.same(keys({ kind: 'regex', pattern: '\\b[0-9]{11}\\b', checksum: 'luhn' }, '79927398713 79927398710'), ['79927398713']);
  t.same(
    keys({ kind: 'regex', pattern: '\\b[A-Z]{2}[0-9]{2}[A-Z0-9]{14}\\b', checksum: 'mod97' }, 'NL91ABNA0417164300 NL92ABNA0417164300'),
    ['NL91ABNA0417164300'],
  );
  t.throws(() => new RegexDetector({ pattern: 'a', checksum: 'crc' as 'luhn' }), /unknown checksum/);
});

t.test('keyword proximity', async (t) => {
  const spec = { kind: 'regex' as const, pattern: '\\b[0-9]{7}\\b', keywords: ['patiëntnummer', 'patient number'], proximity: 20 };
  t.same(keys(spec, 'Patientnummer: 1234567'), ['1234567'], 'keyword folded like word lists');
  t.same(keys(spec, '1234567 is het PATIËNTNUMMER'), ['1234567'], 'keyword after the match');
  t.same(keys(spec, 'patient-number 1234567'), ['1234567'], 'phrase across a hyphen');
  t.same(keys(spec, 'Ordernummer 1234567'), [], 'no keyword');
  t.same(keys(spec, `patiëntnummer${' '.repeat(21)}1234567`), [], '21 characters away');
  t.same(keys(spec, `patiëntnummer${' '.repeat(20)}1234567`), ['1234567'], '20 characters away');
  t.same(keys(spec, 'oudpatiëntnummer 1234567'), [], 'whole words only');
  t.same(keys(spec, `${'x'.repeat(100)}patiëntnummer 1234567`), [], 'a keyword glued to letters outside the scanned window');
  const defaults = { kind: 'regex' as const, pattern: '\\b[0-9]{7}\\b', keywords: ['dossier'] };
  t.same(keys(defaults, `dossier ${'.'.repeat(38)} 1234567`), ['1234567'], 'default proximity is 40');
  t.same(keys(defaults, `dossier ${'.'.repeat(39)} 1234567`), []);
  t.same(
    keys({ ...spec, checksum: 'elfproef', pattern: '\\b[0-9]{9}\\b' }, 'patiëntnummer 123456782, patiëntnummer 123456781'),
    ['123456782'],
    'checksum and keywords together',
  );
});
