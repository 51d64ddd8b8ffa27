import fs from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { MeasuredValuesDetector } from '../src/classify/detectors/measured.js';
import { createWordListDetector, MergedWordLists } from '../src/classify/detectors/wordlist.js';
import { classify } from '../src/classify/engine.js';
import { lintRules } from '../src/classify/rules/lint.js';
import { loadRules, shippedRulesDir, type RuleSet } from '../src/classify/rules/load.js';
import type { ExtractEvent } from '../src/classify/types.js';
import { runZegel } from './helpers/child-relay.js';
import { tempDir } from './helpers/relay.js';

/*
 * The measured-values detector (src/classify/detectors/measured.ts): a vital
 * sign or lab value counts when its keyword, a whole word, has a plausible
 * value right after it. Dates, times, versions, prices, compounds ("RR-nummer")
 * and "pols" the wrist are no hits; case and accents do not matter; the
 * keywords run in the merged word-list pass with the same hits as alone; the
 * shipped rule `measured-values` encrypts two distinct measurements and
 * advises one; `zegel rules lint` accepts the detector and refuses options it
 * does not have; `zegel scan --json` names the rule in `matches`.
 */

const detector = new MeasuredValuesDetector();
/** `measure:keyword` per hit, in text order. */
const found = (text: string) => detector.find(text).map((h) => `${h.key}:${h.excerpt}`);

t.test('vital signs and lab values with a plausible value are hits, one key per measure', async (t) => {
  const cases: Array<[string, string[]]> = [
    ['Dhr Wolters (kamer 7) RR vanochtend 178/102, pols 96 irregulair.', ['bloeddruk:rr', 'pols:pols']],
    ['Bloeddruk: 150/90 en hartslag 88/min.', ['bloeddruk:bloeddruk', 'pols:hartslag']],
    ['Saturatie 92% bij 2 liter zuurstof.', ['saturatie:saturatie']],
    ['sat 88 % zonder zuurstof', ['saturatie:sat']],
    ['Temp. 38,5 en gisteren temperatuur van 39.2', ['temperatuur:temp', 'temperatuur:temperatuur']],
    ['HbA1c 53 mmol/mol, glucose nuchter 12,3 mmol/l', ['hba1c:hba1c', 'glucose:glucose']],
    ['eGFR 38 ml/min, kreatinine 145 µmol/l, kalium 5,8', ['egfr:egfr', 'kreatinine:kreatinine', 'kalium:kalium']],
    ['INR 3,4 vandaag; BMI 31', ['inr:inr', 'bmi:bmi']],
    ['Hb 6,1 en CRP 85', ['hb:hb', 'crp:crp']],
    ['BP 165/95, heart rate 110, temperature 38.9', ['bloeddruk:bp', 'pols:heart rate', 'temperatuur:temperature']],
  ];
  for (const [text, want] of cases) t.same(found(text), want, text);
});

t.test('the value is not shown: the excerpt is the keyword, the hit spans keyword and value', async (t) => {
  const text = 'Meting: RR vanochtend 178/102.';
  const [hit] = detector.find(text);
  t.equal(hit?.excerpt, 'rr');
  t.notMatch(hit?.excerpt ?? '', /\d/, 'no digits of the value in the excerpt');
  t.equal(text.slice(hit!.start, hit!.end), 'RR vanochtend 178/102');
});

t.test('no hit without a measurement: dates, times, versions, prices, counts, compounds, the wrist', async (t) => {
  const negatives = [
    'Uw RR-nummer is 12345 en het RR-nummer 120/80 staat op de pas.',
    'Graag de bloeddruk-meters van 12/03 retour sturen.',
    'De bloeddruk 12/03 meting', // a date: diastolic 3, systolic not above it
    'pols 10:30 even bij de receptie',
    'Ik heb mijn pols verstuikt bij het volleyballen, dus typ ik langzaam.',
    'Zij voelde haar pols na de trap, daarna ging het weer.',
    'Pols van 45 medewerkers is de vraag',
    'De temperatuur in de vergaderzaal was 21 graden.',
    'Morgen wordt een temperatuur van 35 graden verwacht.',
    'Temp 39 in de serverruimte',
    'De nieuwe versie temp 38.5.1 staat klaar.',
    'Hb 4,50 euro per stuk',
    'INR 2,500 per night at the hotel',
    'INR 450 for the taxi',
    'sat 92 minuten in de wachtkamer',
    'Bp 2025/26 begroting',
    'BMI 25 jaar jubileum',
    'pols 96x per dag',
    'temperatuur 34,0–43,9 is het bereik van de thermometer', // a range, with an en dash
    'pulse 20-250 on the spec sheet',
    'Bij een BMI boven 30 en een bloeddruk van 140/90 of hoger adviseren wij de huisarts.', // a campaign's thresholds
    'Streefwaarde HbA1c onder 53 mmol/mol; glucose maximaal 10 mmol/l.',
    'Staff with a blood pressure above 140/90 or a BMI of 30 or more can join.',
    'RR\n120/80 staat op een andere regel',
    'bloeddruk, 150/90', // a comma ends the clause
    'glucose € 12,30 per pot',
    'De HbA1c-meter kost 53 euro',
  ];
  for (const text of negatives) t.same(found(text), [], text);
});

t.test('case and accents do not matter; compatibility forms fold (SpO₂)', async (t) => {
  t.same(found('TEMPERATUUR 38,9 °C'), ['temperatuur:temperatuur']);
  t.same(found('Hémoglobine 7,2'), ['hb:hemoglobine']);
  t.same(found('SpO₂ 91%'), ['saturatie:spo2']);
  t.same(found('HBA1C 64'), ['hba1c:hba1c']);
  t.same(found('Pols 72'), ['pols:pols']);
});

t.test('in the merged word-list pass the hits are the same as alone', async (t) => {
  const other = createWordListDetector(['pols', 'bloeddruk*', 'diabetes']);
  const merged = new MergedWordLists([other, detector]);
  const texts = ['RR vanochtend 178/102, pols 96. Diabetes bekend.', 'Mijn pols doet pijn; bloeddrukmeter kapot.', 'sat 92% en temp 38,4'];
  for (const text of texts) {
    const [otherHits, measuredHits] = merged.find(text);
    t.same(measuredHits, detector.find(text), `measured hits: ${text}`);
    t.same(otherHits, other.find(text), `the other list keeps its own hits: ${text}`);
  }
});

const shipped = loadRules(shippedRulesDir());

async function run(rules: RuleSet, chunks: string[], subject = 'Overdracht') {
  async function* events(): AsyncGenerator<ExtractEvent> {
    yield { type: 'text', chunk: { location: 'subject', scope: 'subject', text: subject } };
    for (const text of chunks) yield { type: 'text', chunk: { location: 'body', scope: 'body', text } };
  }
  return classify(events(), rules, { optInTags: [] });
}

t.test('the shipped rule: two distinct measurements encrypt, one advises, two of the same measure advise', async (t) => {
  const rule = shipped.rules.find((r) => r.id === 'measured-values');
  t.same(rule?.thresholds, [
    { min: 2, action: 'encrypt' },
    { min: 1, action: 'advise' },
  ]);
  t.match(rule?.description.nl, /twee of meer verschillende metingen/);
  t.match(rule?.description.en, /two or more distinct measurements/);
  const two = await run(shipped, ['Hoi,\nDhr Wolters (kamer 7) RR vanochtend 178/102, pols 96 irregulair. Arts gebeld?\nGr Sandra']);
  t.equal(two.decision, 'encrypt');
  t.same(
    two.matches.filter((m) => m.rule === 'measured-values').map((m) => [m.action, m.excerpt]),
    [
      ['encrypt', 'rr'],
      ['encrypt', 'pols'],
    ],
  );
  const one = await run(shipped, ['De bloeddruk was 150/90 bij de controle.']);
  t.same(
    one.matches.filter((m) => m.rule === 'measured-values').map((m) => m.action),
    ['advise'],
  );
  t.equal(one.decision, 'deliver', 'one measurement alone is advice');
  const same = await run(shipped, ['RR 150/90 om 8 uur, bloeddruk 145/85 om 12 uur.']);
  t.equal(same.decision, 'deliver', 'two readings of one measure are one measure');
  const plain = await run(shipped, ['Ik heb mijn pols gebroken. Het RR-nummer is 12345. Temperatuur in de zaal 21 graden.']);
  t.same(plain.matches.filter((m) => m.rule === 'measured-values'), [], 'no measurement, no finding');
});

t.test('a measurement across a chunk border is found once', async (t) => {
  const filler = 'De vergadering begint om negen uur. '.repeat(3000);
  const text = `${filler}RR vanochtend 178/102, pols 96.${filler}`;
  for (const cut of [filler.length + 1, filler.length + 5, filler.length + 17, filler.length + 28]) {
    const r = await run(shipped, [text.slice(0, cut), text.slice(cut)]);
    t.same(
      r.matches.filter((m) => m.rule === 'measured-values').map((m) => m.excerpt),
      ['rr', 'pols'],
      `cut at ${cut - filler.length} characters into the measurement`,
    );
  }
});

/** A rules directory with one rule file. */
function rulesDir(t: Parameters<typeof tempDir>[0], yaml: string): string {
  const dir = tempDir(t, 'zegel-measured-');
  fs.mkdirSync(path.join(dir, 'lists'));
  fs.writeFileSync(path.join(dir, 'rules.yaml'), yaml);
  return dir;
}

const RULE = (detector: string) => `rules:
  - id: metingen
    description: { nl: Metingen, en: Measurements }
    detector: ${detector}
    scopes: [body]
    thresholds:
      - { min: 2, action: encrypt }
      - { min: 1, action: advise }
`;

t.test('zegel rules lint: accepts kind measured-values, refuses options it does not have', async (t) => {
  t.same(lintRules(rulesDir(t, RULE('{ kind: measured-values }'))), [], 'accepted');
  const refused = lintRules(rulesDir(t, RULE('{ kind: measured-values, list: medical }')));
  t.equal(refused.length, 1);
  t.equal(refused[0]?.line, 4, 'at the detector line');
  t.match(refused[0]?.problem, /detector\.list: unknown key/);
  const misspelt = lintRules(rulesDir(t, RULE('{ kind: measured-value }')));
  t.match(misspelt[0]?.problem, /measured-values/, 'the message names the kind');
  const dir = rulesDir(t, RULE('{ kind: measured-values }'));
  const cli = await runZegel(['rules', 'lint', dir]);
  t.equal(cli.code, 0, `lint exits 0: ${cli.stderr}`);
  const bad = await runZegel(['rules', 'lint', rulesDir(t, RULE('{ kind: measured-values, keywords: [rr] }'))]);
  t.equal(bad.code, 1, 'lint exits 1 for a refused set');
  t.match(bad.stdout + bad.stderr, /rules\.yaml:4: .*detector\.keywords: unknown key/);
});

t.test('zegel scan --json names measured-values in matches', async (t) => {
  const dir = tempDir(t, 'zegel-measured-scan-');
  const file = path.join(dir, 'overdracht.eml');
  fs.writeFileSync(
    file,
    [
      'From: verpleging@org.test',
      'To: huisarts@example.com',
      'Subject: RR en pols dhr. Wolters',
      'Date: Fri, 04 Dec 2026 09:00:00 +0000',
      'Message-ID: <measured@org.test>',
      'MIME-Version: 1.0',
      'Content-Type: text/plain; charset=utf-8',
      '',
      'RR vanochtend 178/102, pols 96 irregulair.',
      '',
    ].join('\r\n'),
  );
  const r = await runZegel(['scan', '--json', file], { cwd: dir });
  t.equal(r.code, 0, r.stderr);
  const line = JSON.parse(r.stdout) as { decision: string; matches: Array<{ rule: string; action: string; location: string; excerpt: string }> };
  t.equal(line.decision, 'encrypt');
  t.same(
    line.matches.filter((m) => m.rule === 'measured-values'),
    [
      { rule: 'measured-values', action: 'encrypt', location: 'body', excerpt: 'rr' },
      { rule: 'measured-values', action: 'encrypt', location: 'body', excerpt: 'pols' },
    ],
  );
});
