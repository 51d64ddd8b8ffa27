import fs from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { createWordListDetector, MergedWordLists, NearWordListDetector } from '../src/classify/detectors/wordlist.js';
import { classify } from '../src/classify/engine.js';
import { lintRules } from '../src/classify/rules/lint.js';
import { loadRules } from '../src/classify/rules/load.js';
import type { ExtractEvent, Scope } from '../src/classify/types.js';
import { runZegel } from './helpers/child-relay.js';
import { tempDir } from './helpers/relay.js';
import { repoRoot } from './helpers/repo-root.js';

/*
 * Word lists with cues (issue 16): `near: { list, within }` keeps a hit of the
 * list only when a cue term is at most `within` characters away, on either
 * side. A party's name next to "lid" or "kandidaat" is a statement about
 * someone; the same name in an election notice is not. Cues follow the
 * word-list rules (folded, whole words, `kandida*` a prefix), the engine finds
 * the same hits across chunk borders and in merged lists, lint names a bad cue
 * at its line, and the shipped rules use it.
 */

const near = (terms: string[], cues: string[], within: number) => new NearWordListDetector(terms, { terms: cues, within });
const keys = (d: { find(text: string): Array<{ key: string }> }, text: string) => d.find(text).map((h) => h.key);

t.test('a hit counts only with a cue within the distance, before or after it', async (t) => {
  const d = near(['sp', 'partij voor de dieren'], ['lid', 'kandida*'], 20);
  t.same(keys(d, 'Ik ben sinds 2015 lid van de SP.'), ['sp'], 'cue before the name');
  t.same(keys(d, 'De SP heeft mij als KANDIDAAT gevraagd'), ['sp'], 'cue after the name, folded, a prefix cue');
  t.same(keys(d, 'Lid (afd. Groningen): Partij voor de Dieren'), ['partij voor de dieren'], 'punctuation between');
  t.same(keys(d, 'Stembureau 4: de lijsten van de SP en de Partij voor de Dieren liggen klaar.'), [], 'names without a cue');
  t.same(keys(d, `lid${' '.repeat(20)}SP`), ['sp'], 'exactly `within` characters apart');
  t.same(keys(d, `lid${' '.repeat(21)}SP`), [], 'one character further');
  t.same(keys(d, 'De lidstaat en de SP; de lidmaatschapskaart'), [], 'cues are whole words too (lidstaat is not lid)');
  t.same(keys(createWordListDetector(['sp']), 'de lijst van de SP'), ['sp'], 'without near the list is unchanged');
});

t.test('a detector with cues reads far enough past a hit for the engine to keep context', async (t) => {
  const d = near(['sp'], ['gemeenteraadslid'], 120);
  const plain = createWordListDetector(['sp']);
  t.ok(d.maxMatchLength >= plain.maxMatchLength + 120 + 2 * 'gemeenteraadslid'.length, `maxMatchLength ${d.maxMatchLength}`);
  t.ok(d.refines, 'merged lists call its refine');
});

async function* stream(events: ExtractEvent[]): AsyncGenerator<ExtractEvent> {
  for (const e of events) yield e;
}
const body = (text: string): ExtractEvent => ({ type: 'text', chunk: { location: 'body', scope: 'body', text } });

t.test('merged lists and chunk borders give the same hits as one scan', async (t) => {
  const lists: Array<[string, () => ReturnType<typeof createWordListDetector>]> = [
    ['partij', () => near(['vvd', 'sp', 'volt'], ['lid', 'kandida*'], 30)],
    ['woord', () => createWordListDetector(['lid', 'sp'])],
    ['bond', () => near(['fnv'], ['lid', 'contributie'], 12)],
  ];
  const sample = 'lid van de VVD; de SP . . . . . . . . . . . . . . . . . . kandidaat; FNV contributie; volt';
  const merged = new MergedWordLists(lists.map(([, make]) => make()));
  t.same(
    merged.find(sample).map((hits) => hits.map((h) => `${h.key}@${h.start}`)),
    lists.map(([, make]) => make().find(sample).map((h) => `${h.key}@${h.start}`)),
    'each list gets exactly its own hits',
  );
  const ALL: Scope[] = ['subject', 'body', 'filename', 'attachment'];
  const ruleSet = (merge: boolean) => ({
    dir: '',
    rules: lists.map(([id, make]) => {
      const d = make();
      const detector = merge ? d : { maxMatchLength: d.maxMatchLength, find: (text: string) => d.find(text) };
      return { id, description: { nl: id, en: id }, scopes: new Set(ALL), thresholds: [{ min: 1, action: 'encrypt' as const }], source: { file: 'test', line: 1 }, kind: 'text' as const, detector };
    }),
  });
  // mulberry32: the low bits of a power-of-two LCG repeat with a short period
  let seed = 9;
  const random = (n: number) => {
    seed = (seed + 0x6d2b79f5) | 0;
    let x = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    x = (x + Math.imul(x ^ (x >>> 7), 61 | x)) ^ x;
    return ((x ^ (x >>> 14)) >>> 0) % n;
  };
  const pieces = ['lid', 'vvd', 'sp', 'volt', 'fnv', 'kandidaat', 'contributie', 'lidstaat', ' ', ' ', '  ', '. ', '-', 'x', 'tekst ', '\n'];
  let withHits = 0;
  for (let round = 0; round < 150; round++) {
    let whole = '';
    while (whole.length < 400) whole += pieces[random(pieces.length)]!;
    const chunks: ExtractEvent[] = [];
    for (let at = 0; at < whole.length; ) {
      const size = 1 + random(round % 2 ? 12 : 150);
      chunks.push(body(whole.slice(at, at + size)));
      at += size;
    }
    const once = await classify(stream([body(whole)]), ruleSet(false), { optInTags: [] });
    const split = await classify(stream(chunks), ruleSet(true), { optInTags: [] });
    if (once.matches.some((m) => m.rule !== 'woord')) withHits++;
    if (JSON.stringify(split) !== JSON.stringify(once)) {
      t.same(split, once, `round ${round}: ${JSON.stringify(whole)}`);
      return;
    }
  }
  t.ok(withHits > 50, `the texts exercise the cue rules (${withHits} of 150 with hits)`);
});

const rule = (id: string, detector: string) =>
  `  - id: ${id}\n    description: { nl: ${id}, en: ${id} }\n    detector: ${detector}\n    scopes: [subject, body, filename, attachment]\n    action: encrypt\n`;

function rulesDir(t: Parameters<typeof tempDir>[0], yaml: string, lists: Record<string, string>): string {
  const dir = tempDir(t, 'zegel-near-');
  fs.mkdirSync(path.join(dir, 'lists'));
  fs.writeFileSync(path.join(dir, 'rules.yaml'), yaml);
  for (const [name, text] of Object.entries(lists)) fs.writeFileSync(path.join(dir, 'lists', `${name}.txt`), text);
  return dir;
}

t.test('rule files: what near accepts and what lint reports', async (t) => {
  const dir = rulesDir(
    t,
    `rules:\n${rule('geen-cues', '{ kind: wordlist, list: partijen, near: { within: 40 } }')}${rule('onbekend', '{ kind: wordlist, list: partijen, near: { list: rollen-weg, within: 40 } }')}${rule('slechte-cue', "{ kind: wordlist, list: partijen, near: { terms: [lid, 'ka*'], within: 40 } }")}${rule('cue-lijst', '{ kind: wordlist, list: partijen, near: { list: rollen, within: 40 } }')}`,
    { partijen: 'sp\nvvd\n', rollen: 'lid\nkandi*er\n' },
  );
  const problems = lintRules(dir).map((p) => `${path.basename(p.file)}:${p.line}: ${p.problem}`);
  t.match(problems.join('\n'), /rules\.yaml:\d+: rule geen-cues: near needs list \(a name from lists\/\) or terms/);
  t.match(problems.join('\n'), /rules\.yaml:\d+: rule onbekend: unknown word list "rollen-weg" \(no lists\/rollen-weg\.txt\)/);
  t.match(problems.join('\n'), /rules\.yaml:\d+: rule slechte-cue: detector\.near\.terms\[1\]: bad prefix term "ka\*": too short/);
  t.match(problems.join('\n'), /rollen\.txt:2: bad prefix term "kandi\*er"/, 'a bad term in a cue list at its own line');

  fs.writeFileSync(path.join(dir, 'rules.yaml'), `rules:\n${rule('te-ver', '{ kind: wordlist, list: partijen, near: { terms: [lid], within: 5000 } }')}`);
  t.match(lintRules(dir).map((p) => `${p.line}: ${p.problem}`).join('\n'), /^\d+: .*near\.within.*300/, 'within is at most 300 characters');

  fs.writeFileSync(path.join(dir, 'rules.yaml'), `rules:\n${rule('partij', '{ kind: wordlist, list: partijen, near: { list: rollen, terms: [namens], within: 40 } }')}`);
  fs.writeFileSync(path.join(dir, 'lists', 'rollen.txt'), 'lid\nkandida*\n');
  t.same(lintRules(dir), [], 'list and terms together: clean');
  const rules = loadRules(dir);
  const run = async (text: string) => (await classify(stream([body(text)]), rules, { optInTags: [] })).decision;
  t.equal(await run('Ik spreek namens de VVD.'), 'encrypt', 'a cue from terms');
  t.equal(await run('Kandidatenlijst VVD ligt ter inzage'), 'encrypt', 'a prefix cue from the list');
  t.equal(await run('Op het stembureau liggen de lijsten van de VVD en de SP.'), 'deliver', 'no cue, no hit');
});

t.test('the shipped rules: statements encrypt, the same names in ordinary mail do not', async (t) => {
  const rules = loadRules(path.join(repoRoot, 'rules'));
  const run = async (text: string) => {
    const r = await classify(stream([body(text)]), rules, { optInTags: [] });
    return { decision: r.decision, rules: [...new Set(r.matches.filter((m) => m.action === 'encrypt').map((m) => m.rule))] };
  };
  const cases: Array<[string, string, string[]]> = [
    ['political-affiliation', 'Graag meld ik mij aan als kandidaat voor de kieslijst van Volt in Zwolle.', ['political-affiliation']],
    ['union-affiliation', 'Ik laat mij bijstaan door mijn consulent van CNV Vakmensen.', ['union-affiliation']],
    ['origin-statement', 'Hij is in 2016 uit Syrië gevlucht en woont nu in Zwolle.', ['origin-statement']],
    ['religion-statement', 'Wij zijn zevendedagsadventist en werken niet op zaterdag.', ['religion-statement']],
    ['biometric-enrolment', 'Jouw vingerafdruk is vandaag opgeslagen in het toegangssysteem.', ['biometric-enrolment']],
    ['health-statement', 'Mijn vader is vergeetachtig geworden en valt vaak.', ['health-statement']],
  ];
  for (const [id, text, want] of cases) t.same(await run(text), { decision: 'encrypt', rules: want }, id);
  const ordinary = [
    'Op 18 maart liggen de kandidatenlijsten van VVD, SP, Volt en de Partij voor de Dieren ter inzage.',
    'Het FNV-bericht over de nieuwe cao staat op intranet.',
    'Onze leverancier uit Turkije levert de tegels in week 12.',
    'De katholieke basisschool sluit om 14.00 uur.',
    'Vanaf maandag opent de deur met een vingerafdrukscanner; registreren kan bij de receptie.',
    'Op de training dementie bespreken we de nieuwe richtlijn.',
  ];
  for (const text of ordinary) t.same(await run(text), { decision: 'deliver', rules: [] }, text);
});

t.test('zegel scan --json names the cue rules in matches', async (t) => {
  const dir = tempDir(t, 'zegel-near-scan-');
  const eml = ['From: hr@org.test', 'To: p.o@example.com', 'Subject: Nevenfunctie', 'Message-ID: <near@org.test>', 'MIME-Version: 1.0', 'Content-Type: text/plain; charset=utf-8', 'Content-Transfer-Encoding: 8bit', '', 'Sinds oktober ben ik voorzitter van de afdeling Groningen van de Partij voor de Dieren.', ''].join('\r\n');
  fs.writeFileSync(path.join(dir, 'nevenfunctie.eml'), eml);
  const r = await runZegel(['scan', '--json', '--rules', path.join(repoRoot, 'rules'), 'nevenfunctie.eml'], { cwd: dir });
  t.equal(r.code, 0, r.stderr);
  t.same(JSON.parse(r.stdout), {
    file: 'nevenfunctie.eml',
    decision: 'encrypt',
    subjectSensitive: false,
    matches: [{ rule: 'political-affiliation', action: 'encrypt', location: 'body', excerpt: 'partij voor de dieren' }],
  });
});
