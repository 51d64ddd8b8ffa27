import t from 'tap';
import { classify } from '../src/classify/engine.js';
import type { CompiledRule, RuleSet, Threshold } from '../src/classify/rules/load.js';
import type { Action, Detector, ExtractEvent, Hit, Scope, UnscannableReason } from '../src/classify/types.js';

/*
 * The engine on its own, with small local detectors: thresholds, the strictest
 * action, opt-in tags, subjectSensitive, chunk borders, unscannable parts,
 * de-duplication and message order.
 */

/** 9-digit runs not touching other digits that pass the 11-proef (like the real bsn detector, without groupings). */
function digitsDetector(): Detector {
  return {
    maxMatchLength: 9,
    find(text: string): Hit[] {
      const hits: Hit[] = [];
      for (const m of text.matchAll(/(?<!\d)\d{9}(?!\d)/g)) {
        const d = m[0];
        const sum = [...d].reduce((acc, c, i) => acc + Number(c) * (i === 8 ? -1 : 9 - i), 0);
        if (sum % 11 !== 0 || /^0+$/.test(d)) continue;
        hits.push({ start: m.index, end: m.index + 9, excerpt: `******${d.slice(6)}`, key: d });
      }
      return hits;
    },
  };
}

/** Whole-word, case-insensitive terms; the key and excerpt are the term as listed. */
function wordsDetector(terms: string[]): Detector {
  const pattern = new RegExp(`(?<![\\p{L}\\p{N}])(${terms.join('|')})(?![\\p{L}\\p{N}])`, 'giu');
  return {
    maxMatchLength: Math.max(...terms.map((x) => x.length)),
    find(text: string): Hit[] {
      return [...text.matchAll(pattern)].map((m) => {
        const term = terms.find((x) => x.toLowerCase() === m[0].toLowerCase()) ?? m[0];
        return { start: m.index, end: m.index + m[0].length, excerpt: term, key: term };
      });
    },
  };
}

const ALL: Scope[] = ['subject', 'body', 'filename', 'attachment'];

function rule(id: string, detector: Detector | 'unscannable' | 'opt-in-tag', action: Action | Threshold[], scopes: Scope[] = ALL): CompiledRule {
  const thresholds = typeof action === 'string' ? [{ min: 1, action }] : [...action].sort((a, b) => b.min - a.min);
  const base = { id, description: { nl: id, en: id }, scopes: new Set(scopes), thresholds, source: { file: 'test', line: 1 } };
  if (detector === 'unscannable') return { ...base, kind: 'unscannable' };
  if (detector === 'opt-in-tag') return { ...base, kind: 'opt-in-tag' };
  return { ...base, kind: 'text', detector };
}

/** The shipped policy's shape, with the local detectors. */
function policy(extra: CompiledRule[] = []): RuleSet {
  return {
    dir: '',
    rules: [
      rule('bsn', digitsDetector(), 'encrypt'),
      rule('personal-words', wordsDetector(['burgerservicenummer', 'bsn']), 'encrypt'),
      rule('medical-words', wordsDetector(['diabetes', 'oncologie', 'psychiater']), [
        { min: 2, action: 'encrypt' },
        { min: 1, action: 'advise' },
      ]),
      rule('unscannable-attachment', 'unscannable', 'encrypt', ['body', 'attachment']),
      rule('opt-in-tag', 'opt-in-tag', 'encrypt', ['subject']),
      ...extra,
    ],
  };
}

const OPT_IN = { optInTags: ['veilig', 'secure', 'vertrouwelijk'] };

function text(location: string, scope: Scope, body: string): ExtractEvent {
  return { type: 'text', chunk: { location, scope, text: body } };
}
function subject(s: string): ExtractEvent {
  return text('subject', 'subject', s);
}
function body(s: string): ExtractEvent {
  return text('body', 'body', s);
}
function unscannable(location: string, reason: UnscannableReason): ExtractEvent {
  return { type: 'unscannable', part: { location, reason } };
}
async function* stream(events: ExtractEvent[]): AsyncGenerator<ExtractEvent> {
  for (const e of events) yield e;
}
function run(events: ExtractEvent[], rules: RuleSet = policy(), options = OPT_IN) {
  return classify(stream(events), rules, options);
}

t.test('nothing found: deliver, no matches, the subject unchanged', async (t) => {
  const r = await run([subject('Planning volgende week'), body('Hallo, tot dinsdag. Nummer 123456789 klopt niet.')]);
  t.equal(r.decision, 'deliver');
  t.same(r.matches, []);
  t.equal(r.subjectSensitive, false);
  t.equal(r.subject, 'Planning volgende week');
  t.equal(r.strippedSubject, 'Planning volgende week');
  const none = await run([body('geen onderwerp')]);
  t.equal(none.subject, undefined, 'no subject chunk: undefined');
  t.equal(none.strippedSubject, undefined);
});

t.test('thresholds count distinct terms over the whole message', async (t) => {
  const one = await run([subject('Overleg'), body('De patiënt heeft diabetes. Diabetes blijft lastig.'), text('attachment:verslag.txt', 'attachment', 'diabetes')]);
  t.equal(one.decision, 'deliver', 'one distinct medical term: advise keeps deliver');
  t.same(
    one.matches,
    [
      { rule: 'medical-words', action: 'advise', location: 'body', excerpt: 'diabetes' },
      { rule: 'medical-words', action: 'advise', location: 'attachment:verslag.txt', excerpt: 'diabetes' },
    ],
    'one finding per (rule, location, excerpt): twice in the body is one finding; the attachment is another location',
  );

  const two = await run([body('diabetes'), text('attachment:verslag.txt', 'attachment', 'verwezen naar de psychiater')]);
  t.equal(two.decision, 'encrypt', 'two distinct terms, even in different parts: encrypt');
  t.same(
    two.matches.map((m) => [m.rule, m.action, m.excerpt]),
    [
      ['medical-words', 'encrypt', 'diabetes'],
      ['medical-words', 'encrypt', 'psychiater'],
    ],
    'every finding of the rule carries the action of the threshold reached',
  );

  const high = policy([rule('three-words', wordsDetector(['alfa', 'beta', 'gamma']), [{ min: 3, action: 'block' }])]);
  const below = await run([body('alfa beta')], high);
  t.same(below.matches, [], 'below the lowest threshold: no finding at all');
  const reached = await run([body('alfa beta gamma')], high);
  t.equal(reached.decision, 'block');
  t.equal(reached.matches.length, 3);
});

t.test('the strictest action wins: block > encrypt > advise (deliver)', async (t) => {
  const rules = policy([rule('stop', wordsDetector(['staatsgeheim']), 'block'), rule('iban', wordsDetector(['NL91ABNA0417164300']), 'advise')]);
  t.equal((await run([body('NL91ABNA0417164300')], rules)).decision, 'deliver', 'advise alone delivers');
  const r = await run([body('NL91ABNA0417164300 111222333')], rules);
  t.equal(r.decision, 'encrypt');
  t.same(
    r.matches.map((m) => [m.rule, m.action]),
    [
      ['iban', 'advise'],
      ['bsn', 'encrypt'],
    ],
    'advise findings stay in matches beside the decision, in message order',
  );
  t.equal((await run([body('111222333 staatsgeheim NL91ABNA0417164300')], rules)).decision, 'block');
});

t.test('opt-in tags: any case, anywhere in the subject, removed from what recipients see', async (t) => {
  const r = await run([subject('Planning [VEILIG] overleg  [Secure]'), body('Hallo')]);
  t.equal(r.decision, 'encrypt');
  t.same(r.matches, [
    { rule: 'opt-in-tag', action: 'encrypt', location: 'subject', excerpt: '[veilig]' },
    { rule: 'opt-in-tag', action: 'encrypt', location: 'subject', excerpt: '[secure]' },
  ]);
  t.equal(r.subjectSensitive, false, 'a tag is not sensitive content');
  t.equal(r.subject, 'Planning [VEILIG] overleg  [Secure]');
  t.equal(r.strippedSubject, 'Planning overleg', 'tags removed, double spaces collapsed');

  const front = await run([subject('[Vertrouwelijk] Dossier')]);
  t.equal(front.strippedSubject, 'Dossier');
  t.same(front.matches.map((m) => m.excerpt), ['[vertrouwelijk]']);

  const zegelTags = await run([subject('Uitslag [sms:+31612345678] [verloopt:7d]')]);
  t.equal(zegelTags.decision, 'encrypt', '[sms:…] and [verloopt:…] opt in as well');
  t.same(zegelTags.matches.map((m) => m.excerpt), ['[sms:…678]', '[verloopt:7d]'], 'the phone number is redacted');
  t.equal(zegelTags.strippedSubject, 'Uitslag');

  const custom = await run([subject('[veilig] [Geheim] test')], policy(), { optInTags: ['geheim'] });
  t.same(custom.matches.map((m) => m.excerpt), ['[geheim]'], 'the configured list decides which plain tags count');
  t.equal(custom.strippedSubject, '[veilig] test');

  const words = await run([subject('veilig verzonden, secure')]);
  t.equal(words.decision, 'deliver', 'the words without brackets are no tags');
  t.equal(words.strippedSubject, 'veilig verzonden, secure');
});

t.test('subjectSensitive: only an encrypt finding in the subject, not a tag', async (t) => {
  const inSubject = await run([subject('Dossier 111222333 [veilig]'), body('zie bijlage')]);
  t.equal(inSubject.subjectSensitive, true);
  t.equal(inSubject.strippedSubject, 'Dossier 111222333', 'only tags are stripped');
  t.equal((await run([subject('Dossier'), body('BSN 111222333')])).subjectSensitive, false, 'a BSN in the body only');
  t.equal((await run([subject('diabetes'), body('hallo')])).subjectSensitive, false, 'an advise finding in the subject');
  const twoMedical = await run([subject('diabetes'), body('oncologie')]);
  t.equal(twoMedical.subjectSensitive, true, 'a medical term in the subject once the threshold makes it encrypt');
});

t.test('a BSN split across two chunks of one location is found once', async (t) => {
  const r = await run([body('Het nummer is 1234'), body('56782 en verder niets.')]);
  t.same(r.matches, [{ rule: 'bsn', action: 'encrypt', location: 'body', excerpt: '******782' }]);

  const digitByDigit = await run(['BSN: ', ...'123456782', ' einde'].map((c) => body(c)));
  t.same(digitByDigit.matches.map((m) => [m.rule, m.excerpt]), [['personal-words', 'bsn'], ['bsn', '******782']], 'one character per chunk');

  const longer = await run([body('rekening 12345678'), body('23 is geen burgerdienstnummer')]);
  t.same(longer.matches, [], 'a 10-digit run split at the border is not a BSN (the engine sees the right neighbour)');

  const leftNeighbour = await run([body('x'.repeat(200) + '9'), body('123456782')]);
  t.same(leftNeighbour.matches, [], 'nor when the extra digit is at the end of the previous chunk');

  const otherLocation = await run([body('1234'), text('attachment:a.txt', 'attachment', '56782')]);
  t.same(otherLocation.matches, [], 'chunks of different locations are never joined');
});

t.test('any chunking gives the same findings as one chunk (no loss, no double count)', async (t) => {
  let seed = 7;
  const random = (n: number) => {
    seed = (seed * 1103515245 + 12345) % 2147483648;
    return seed % n;
  };
  const pieces = ['111222333', '123456782', '123456789', 'diabetes', 'oncologie', 'bsn', 'tekst', ' ', ' ', '. ', '0', '1'];
  for (let round = 0; round < 200; round++) {
    let whole = '';
    while (whole.length < 400) whole += pieces[random(pieces.length)]!;
    const once = await run([body(whole)]);
    const chunks: ExtractEvent[] = [];
    for (let at = 0; at < whole.length; ) {
      const size = 1 + random(round % 2 ? 12 : 150);
      chunks.push(body(whole.slice(at, at + size)));
      at += size;
    }
    const split = await run(chunks);
    if (JSON.stringify(split) !== JSON.stringify(once)) {
      t.same(split, once, `round ${round}: ${JSON.stringify(whole)}`);
      return;
    }
  }
  t.pass('200 random texts and chunkings agree');
});

t.test('unscannable parts: encrypt, the reason as excerpt, the part as location', async (t) => {
  const r = await run([subject('Stukken'), body('Zie bijlagen.'), unscannable('attachment:dossier.zip', 'encrypted'), unscannable('attachment:archief.zip/map/scan.pdf', 'corrupt'), unscannable('attachment:bom.zip', 'limit:depth')]);
  t.equal(r.decision, 'encrypt');
  t.same(r.matches, [
    { rule: 'unscannable-attachment', action: 'encrypt', location: 'attachment:dossier.zip', excerpt: 'encrypted' },
    { rule: 'unscannable-attachment', action: 'encrypt', location: 'attachment:archief.zip/map/scan.pdf', excerpt: 'corrupt' },
    { rule: 'unscannable-attachment', action: 'encrypt', location: 'attachment:bom.zip', excerpt: 'limit:depth' },
  ]);
  t.equal(r.subjectSensitive, false);
});

t.test('findings in message order, de-duplicated per (rule, location, excerpt)', async (t) => {
  const r = await run([
    subject('Dossier 111222333'),
    body('BSN 111222333, nogmaals 111222333 en 123456782'),
    text('filename:overdracht 123456782.pdf', 'filename', 'overdracht 123456782.pdf'),
    text('attachment:overdracht 123456782.pdf', 'attachment', 'diabetes, 111222333'),
    unscannable('attachment:bijlage.zip', 'encrypted'),
  ]);
  t.same(
    r.matches.map((m) => `${m.rule}|${m.location}|${m.excerpt}|${m.action}`),
    [
      'bsn|subject|******333|encrypt',
      'personal-words|body|bsn|encrypt',
      'bsn|body|******333|encrypt',
      'bsn|body|******782|encrypt',
      'bsn|filename:overdracht 123456782.pdf|******782|encrypt',
      'medical-words|attachment:overdracht 123456782.pdf|diabetes|advise',
      'bsn|attachment:overdracht 123456782.pdf|******333|encrypt',
      'unscannable-attachment|attachment:bijlage.zip|encrypted|encrypt',
    ],
  );
  t.equal(r.decision, 'encrypt');
  t.equal(r.subjectSensitive, true);
});

t.test('rules look only at their scopes', async (t) => {
  const rules: RuleSet = { dir: '', rules: [rule('body-only', digitsDetector(), 'encrypt', ['body'])] };
  const r = await run([subject('111222333'), text('filename:111222333.pdf', 'filename', '111222333.pdf'), text('attachment:a.txt', 'attachment', '111222333')], rules);
  t.same(r.matches, [], 'subject, file name and attachment are not looked at');
  t.same((await run([body('111222333')], rules)).matches.length, 1);
  const unscannableBodyOnly: RuleSet = { dir: '', rules: [rule('u', 'unscannable', 'encrypt', ['body'])] };
  t.same((await run([unscannable('attachment:x.zip', 'encrypted')], unscannableBodyOnly)).matches, [], 'an unscannable attachment outside the scopes');
});
