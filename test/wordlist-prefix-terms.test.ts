import fs from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { AhoCorasick, createWordListDetector, MergedWordLists } from '../src/classify/detectors/wordlist.js';
import { createDetector } from '../src/classify/detectors/index.js';
import { classify } from '../src/classify/engine.js';
import { lintRules } from '../src/classify/rules/lint.js';
import { loadRules, type RuleProblem } from '../src/classify/rules/load.js';
import { normaliseText, originalSpan, prefixTermProblem, termKey } from '../src/classify/normalise.js';
import type { ExtractEvent, Scope } from '../src/classify/types.js';
import { runZegel } from './helpers/child-relay.js';
import { tempDir } from './helpers/relay.js';

/*
 * Prefix terms in word lists (issue 16): a term that ends in `*` matches every
 * word that starts with it, from a word start only; every term without `*`
 * keeps the whole-word rule. A hit reports the term as listed and covers the
 * whole word; one word gives one hit (whole-word term before prefix term,
 * longer prefix before shorter); `nier*` counts as one distinct term however
 * many words it matched; `zegel rules lint` names a bad prefix term with its
 * file and line; `zegel scan --json` keeps its contract.
 */

/** [term as listed, text the hit covers] for every hit. */
function found(terms: string[], text: string): [string, string][] {
  return createDetector({ kind: 'wordlist', terms })
    .find(text)
    .map((h) => [h.key, text.slice(h.start, h.end)]);
}

/** The words of `text` a single prefix term matches. */
const words = (term: string, text: string): string[] => found([term], text).map(([, w]) => w);

t.test('a prefix term matches every word that starts with it', async (t) => {
  t.same(words('nier*', 'nier, nieren; Nierfalen/nierdialyse (NIERSTEEN) niertransplantatie-patiënt nier2'), [
    'nier',
    'nieren',
    'Nierfalen',
    'nierdialyse',
    'NIERSTEEN',
    'niertransplantatie',
    'nier2',
  ]);
  t.same(words('ziekenhuis*', 'ziekenhuisopname, ziekenhuizen, ziekenhuisbed en ziekenhuis.'), ['ziekenhuisopname', 'ziekenhuisbed', 'ziekenhuis'], 'ziekenhuizen does not start with ziekenhuis');
  t.same(words('diabet*', 'diabetes diabetisch diabetici Diabetesverpleegkundige diabeet'), ['diabetes', 'diabetisch', 'diabetici', 'Diabetesverpleegkundige'], 'diabeet is another spelling');
  t.same(words('psychiatr*', 'psychiater psychiatrie psychiatrisch kinderpsychiater'), ['psychiatrie', 'psychiatrisch'], 'psychiater: the prefix is not complete');
  t.same(words('chemotherap*', 'chemotherapie chemotherapeut chemotherapieën'), ['chemotherapie', 'chemotherapeut', 'chemotherapieën']);
  t.same(words('covid*', 'covid covid19 covid-19 COVIDpatiënten'), ['covid', 'covid19', 'covid', 'COVIDpatiënten'], 'a hyphen ends the word');
  t.same(words('1234*', 'code 12345 en 1234-9 en 01234'), ['12345', '1234'], 'digits work like letters');
});

t.test('no match inside a word, for a longer prefix, or for whole-word terms', async (t) => {
  t.same(words('nier*', 'binnierig aanierstuk xnieren 2nier _nier'), ['nier'], 'the left edge is a word start; _ is a separator');
  t.same(words('dialyse*', 'hemodialyse nierdialyse dialyse dialysecentrum'), ['dialyse', 'dialysecentrum']);
  t.same(words('nierfal*', 'nier nierfunctie nierfa nierfalen'), ['nierfalen'], 'a longer prefix must be complete');
  t.same(words('chronische nier*', 'chronische lever chronischenierziekte nierziekte chronisch nierfalen'), [], 'a phrase needs all its words');
  t.same(found(['dialyse', 'nier'], 'dialysecentrum hemodialyse nieren dialyse nier'), [
    ['dialyse', 'dialyse'],
    ['nier', 'nier'],
  ], 'whole-word terms are unchanged');
  t.same(words('nier*', ''), []);
  t.same(words('nier*', 'nie'), [], 'the text ends inside the prefix');
});

t.test('case and diacritics fold as for whole words', async (t) => {
  t.same(words('nier*', 'Niërfalen NIERFALEN nïerdialyse'), ['Niërfalen', 'NIERFALEN', 'nïerdialyse']);
  t.same(words('niër*', 'nierfalen Niërfalen'), ['nierfalen', 'Niërfalen'], 'a diacritic in the term folds too');
  t.same(words('ZIEKENHUIS*', 'ziekenhuisopname Ziekenhuisopnamé ZIEKENHUISOPNAME'), ['ziekenhuisopname', 'Ziekenhuisopnamé', 'ZIEKENHUISOPNAME']);
  t.same(words('Ziekenhuisopnamé*', 'ziekenhuisopnames ziekenhuisopname'), ['ziekenhuisopnames', 'ziekenhuisopname']);
  t.same(words('strass*', 'Straßenbahn STRASSE'), ['Straßenbahn', 'STRASSE'], 'ß folds to ss');
  t.same(words('stras*', 'Straße'), ['Straße'], 'the prefix may end inside ß (→ ss)');
  t.same(words('ijzer*', 'ĳzertekort IJzergebrek'), ['ĳzertekort', 'IJzergebrek'], 'the ligature ĳ expands');
  t.same(words('nier*', 'nie\u0308rfalen'), ['nie\u0308rfalen'], 'a decomposed diacritic');
});

t.test('invisible characters inside a compound', async (t) => {
  t.same(words('nier*', 'nier\u00ADfalen'), ['nier\u00ADfalen'], 'a soft hyphen after the prefix: one word');
  t.same(words('nier*', 'ni\u00ADer\u00ADdia\u00ADly\u00ADse'), ['ni\u00ADer\u00ADdia\u00ADly\u00ADse'], 'soft hyphens inside the prefix too');
  t.same(words('nier*', 'nier\u200Dfalen nier\uFEFFfalen'), ['nier\u200Dfalen', 'nier\uFEFFfalen'], 'zero-width joiner, BOM');
  t.same(words('nier*', 'nier\u200Bfalen'), ['nier'], 'a zero-width space ends the word');
  t.same(words('nier*', 'dialyse\u200Bnierfalen'), ['nierfalen'], 'and starts one');
  t.same(words('nier*', 'nierfalen\u00AD '), ['nierfalen\u00AD'], 'a trailing soft hyphen belongs to the word, as for whole words');
  t.same(found(['nierfalen'], 'nier\u00ADfalen'), [['nierfalen', 'nier\u00ADfalen']], 'the whole-word term too');
});

t.test('a prefix as the last word of a phrase', async (t) => {
  const terms = ['chronische nier*'];
  t.same(found(terms, 'Chronische nierinsufficiëntie'), [['chronische nier*', 'Chronische nierinsufficiëntie']]);
  t.same(found(terms, 'chronische-nierschade'), [['chronische nier*', 'chronische-nierschade']], 'any separator run inside the phrase');
  t.same(found(terms, 'chronische\r\n   NIERZIEKTE.'), [['chronische nier*', 'chronische\r\n   NIERZIEKTE']]);
  t.same(found(terms, 'chronische nier'), [['chronische nier*', 'chronische nier']]);
  t.same(found(terms, 'niet chronische anierziekte'), [], 'the last word still starts at a word start');
  t.same(found(['ziekte van alzheimer*', 'alzheimer*'], 'de ziekte van Alzheimers'), [['ziekte van alzheimer*', 'ziekte van Alzheimers']], 'the prefix inside the phrase match is not reported again');
});

t.test('overlap of whole-word and prefix terms: one word, one hit', async (t) => {
  const terms = ['nier', 'nier*', 'nierfalen', 'nierfal*'];
  t.same(found(terms, 'nier'), [['nier', 'nier']], 'the whole-word term wins over nier*');
  t.same(found(terms, 'nierfalen'), [['nierfalen', 'nierfalen']]);
  t.same(found(terms, 'nierfalend'), [['nierfal*', 'nierfalend']], 'the longer prefix wins');
  t.same(found(terms, 'nieren'), [['nier*', 'nieren']]);
  t.same(found(['nier*', 'nier'], 'nier'), [['nier', 'nier']], 'the order of the list does not matter');
  t.same(found(['nier*', 'nier nier'], 'nier nieren'), [['nier*', 'nier'], ['nier*', 'nieren']], 'the whole phrase is not there');
  t.same(found(['nier*', 'nier nier'], 'nier nier'), [['nier nier', 'nier nier']], 'a phrase contains both words');
  const ac = new AhoCorasick(terms);
  t.same(
    ac.findAll('nierfalen').map((m) => ac.terms[m.term]).sort(),
    ['nier*', 'nierfal*', 'nierfalen'],
    'the automaton reports every term that matches; the detector keeps one',
  );
});

/** A rules directory with one `rules.yaml` and its `lists/`. */
function rulesDir(t: Parameters<typeof tempDir>[0], yaml: string, lists: Record<string, string>): string {
  const dir = tempDir(t, 'zegel-prefix-');
  fs.mkdirSync(path.join(dir, 'lists'));
  fs.writeFileSync(path.join(dir, 'rules.yaml'), yaml);
  for (const [name, text] of Object.entries(lists)) fs.writeFileSync(path.join(dir, 'lists', `${name}.txt`), text);
  return dir;
}

const rule = (id: string, detector: string, tail = '    thresholds:\n      - { min: 2, action: encrypt }\n      - { min: 1, action: advise }\n') =>
  `  - id: ${id}\n    description: { nl: ${id}, en: ${id} }\n    detector: ${detector}\n    scopes: [subject, body, filename, attachment]\n${tail}`;

async function* stream(events: ExtractEvent[]): AsyncGenerator<ExtractEvent> {
  for (const e of events) yield e;
}
const body = (text: string): ExtractEvent => ({ type: 'text', chunk: { location: 'body', scope: 'body', text } });

t.test('distinct terms: nier* counts once however many words it matched', async (t) => {
  const dir = rulesDir(t, `rules:\n${rule('alleen-prefix', '{ kind: wordlist, list: prefix }')}${rule('beide', '{ kind: wordlist, list: beide }')}`, {
    prefix: '# one prefix term\nnier*\n',
    beide: 'nier\nnier*\n',
  });
  const rules = loadRules(dir);
  const run = async (text: string) => (await classify(stream([body(text)]), rules, { optInTags: [] })).matches.map((m) => `${m.rule} ${m.action} ${m.excerpt}`);
  t.same(await run('Nierfalen, nierdialyse en een niersteen.'), ['alleen-prefix advise nier*', 'beide advise nier*'], 'three words, one term: advise, not encrypt; one finding');
  t.same(await run('De nier en de nierdialyse.'), ['alleen-prefix advise nier*', 'beide encrypt nier', 'beide encrypt nier*'], 'nier and nier* listed both: two distinct terms');
  t.same(await run('De nier.'), ['alleen-prefix advise nier*', 'beide advise nier'], 'one word is one hit');
});

t.test('offsets cover the whole word; the excerpt is the term as listed', async (t) => {
  const det = createWordListDetector(['nier*', 'Chronische Nier*']);
  const text = 'Uitslag: nierdialyse\u0301; chronische nierziekte. 😀Nierfalen😀 en nier';
  const hits = det.find(text);
  t.same(
    hits.map((h) => ({ key: h.key, excerpt: h.excerpt, text: text.slice(h.start, h.end) })),
    [
      { key: 'nier*', excerpt: 'nier*', text: 'nierdialyse\u0301' },
      { key: 'Chronische Nier*', excerpt: 'Chronische Nier*', text: 'chronische nierziekte' },
      { key: 'nier*', excerpt: 'nier*', text: 'Nierfalen' },
      { key: 'nier*', excerpt: 'nier*', text: 'nier' },
    ],
    'never the word of the text in the excerpt (it is message content)',
  );
  t.equal(hits[0]!.start, text.indexOf('nierdialyse'));
  t.equal(hits[3]!.end, text.length, 'a word at the very end of the text');
  // the automaton over the folded text gives the same words
  const norm = normaliseText(text);
  const i = norm.text.indexOf('nierfalen');
  const span = originalSpan(norm, i, i + 'nierfalen'.length);
  t.same([hits[2]!.start, hits[2]!.end], [span.start, span.end]);
});

/** Reference matcher with prefix terms: split the folded text into words, compare word sequences. */
function reference(terms: string[], text: string): string[] {
  const keys = [...new Set(terms.map(termKey).filter((k) => k !== ''))];
  const norm = normaliseText(text);
  const ws: { w: string; start: number; end: number }[] = [];
  const re = /[\p{L}\p{N}]+/gu;
  for (let m = re.exec(norm.text); m !== null; m = re.exec(norm.text)) {
    const span = originalSpan(norm, m.index, m.index + m[0].length);
    ws.push({ w: m[0], start: span.start, end: span.end });
  }
  const out: string[] = [];
  for (const key of keys) {
    const prefix = key.endsWith('*');
    const kw = (prefix ? key.slice(0, -1) : key).split(' ');
    for (let i = 0; i + kw.length <= ws.length; i++) {
      const ok = kw.every((w, j) => (prefix && j === kw.length - 1 ? ws[i + j]!.w.startsWith(w) : ws[i + j]!.w === w));
      if (ok) out.push(`${key}@${ws[i]!.start}`);
    }
  }
  return out.sort();
}

t.test('agrees with a reference matcher on random texts', async (t) => {
  const terms = ['abab*', 'abab', 'abba*', 'ab abab*', 'b abab*', 'ba abba*', 'baba', 'cabab*', 'ça abab*', 'aaaa*', 'aaaa'];
  const pieces = ['a', 'b', 'c', 'A', 'B', 'ç', ' ', '  ', '-', '.', '\n', '\u0301', '\u00AD', '\u200B', 'ab', 'ba', 'abab', '😀'];
  let seed = 16;
  const rnd = (n: number): number => {
    seed = (seed * 1103515245 + 12345) & 0x7fffffff;
    return seed % n;
  };
  const ac = new AhoCorasick(terms);
  let mismatches = 0;
  let matches = 0;
  let prefixMatches = 0;
  for (let round = 0; round < 3000; round++) {
    let text = '';
    const len = rnd(24);
    for (let i = 0; i < len; i++) text += pieces[rnd(pieces.length)];
    const all = ac.findAll(text);
    const got = all.map((m) => `${ac.keys[m.term]}@${m.start}`).sort();
    matches += got.length;
    prefixMatches += all.filter((m) => ac.keys[m.term]!.endsWith('*')).length;
    const want = reference(terms, text);
    if (JSON.stringify(got) !== JSON.stringify(want)) {
      if (mismatches++ < 3) t.same(got, want, JSON.stringify(text));
    }
    // a prefix match ends where its word ends
    for (const m of all) {
      if (!ac.keys[m.term]!.endsWith('*')) continue;
      const rest = text.slice(m.end);
      if (/^[\p{L}\p{N}]/u.test(normaliseText(rest).text)) {
        if (mismatches++ < 3) t.fail(`${JSON.stringify(text)}: ${ac.keys[m.term]} ends at ${m.end}, inside a word`);
      }
    }
  }
  t.equal(mismatches, 0, 'no mismatches in 3000 random texts');
  t.ok(prefixMatches > 500, `the texts exercise prefix terms (${prefixMatches} of ${matches} matches)`);
});

t.test('merged lists and chunk borders change nothing for prefix terms', async (t) => {
  const lists: Array<[string, string[]]> = [
    ['a', ['nier*', 'nierfalen', 'dialyse']],
    ['b', ['nier', 'nierfal*', 'chronische nier*']],
    ['c', ['chronische nierziekte', 'dialys*']],
  ];
  const merged = new MergedWordLists(lists.map(([, terms]) => createWordListDetector(terms)));
  const sample = 'nier nierfalen nierfalend chronische nierziekte dialyse dialysecentrum';
  t.same(
    merged.find(sample).map((hits) => hits.map((h) => `${h.key}:${sample.slice(h.start, h.end)}`)),
    lists.map(([, terms]) => createWordListDetector(terms).find(sample).map((h) => `${h.key}:${sample.slice(h.start, h.end)}`)),
    'each list gets exactly its own hits',
  );
  const ALL: Scope[] = ['subject', 'body', 'filename', 'attachment'];
  const ruleSet = (merge: boolean) => ({
    dir: '',
    rules: lists.map(([id, terms]) => {
      const d = createWordListDetector(terms);
      const detector = merge ? d : { maxMatchLength: d.maxMatchLength, find: (text: string) => d.find(text) };
      return { id, description: { nl: id, en: id }, scopes: new Set(ALL), thresholds: [{ min: 1, action: 'encrypt' as const }], source: { file: 'test', line: 1 }, kind: 'text' as const, detector };
    }),
  });
  let seed = 5;
  const random = (n: number) => {
    seed = (seed * 1103515245 + 12345) % 2147483648;
    return seed % n;
  };
  const pieces = ['nier', 'falen', 'fal', 'd', 'chronische', 'ziekte', 'dialyse', 'centrum', 'bin', ' ', ' ', '-', '. ', '\u00AD', 'x'];
  for (let round = 0; round < 150; round++) {
    let whole = '';
    while (whole.length < 300) whole += pieces[random(pieces.length)]!;
    const chunks: ExtractEvent[] = [];
    for (let at = 0; at < whole.length; ) {
      const size = 1 + random(round % 2 ? 10 : 120);
      chunks.push(body(whole.slice(at, at + size)));
      at += size;
    }
    const once = await classify(stream([body(whole)]), ruleSet(false), { optInTags: [] });
    const split = await classify(stream(chunks), ruleSet(true), { optInTags: [] });
    if (JSON.stringify(split) !== JSON.stringify(once)) {
      t.same(split, once, `round ${round}: ${JSON.stringify(whole)}`);
      return;
    }
  }
  t.pass('150 texts agree');
});

t.test('a prefix term as a regex rule keyword', async (t) => {
  const det = createDetector({ kind: 'regex', pattern: 'P\\d{7}', keywords: ['patiënt*'], proximity: 20 });
  const keys = (text: string) => det.find(text).map((h) => h.key);
  t.same(keys('Patiëntnummer: P1234567'), ['P1234567'], 'a word that starts with the keyword');
  t.same(keys('P7654321 hoort bij de PATIENTENKAART'), ['P7654321'], 'after the match, folded');
  t.same(keys('Zorgpatiëntnummer: P1234567'), [], 'not inside a word');
  t.same(keys(`P1234567 patiënt${'x'.repeat(300)}`), ['P1234567'], 'a keyword word longer than the window around the match');
  t.same(keys(`patiënt${'x'.repeat(300)} P1234567`), [], 'its end is too far before the match');
});

t.test('the prefix syntax: what is refused and why', async (t) => {
  t.equal(termKey('Nier*'), 'nier*');
  t.equal(termKey('  Chronische   Nier* '), 'chronische nier*');
  t.equal(termKey('nier'), 'nier', 'a whole-word term has no *');
  t.equal(termKey('*'), '', 'no letters: no term');
  for (const good of ['nier*', 'NIËR*', 'chronische nier*', 'ggz-instell*', 'covid19*', 'ĳzer*', 'straß*', 'nier', 'a']) t.equal(prefixTermProblem(good), undefined, good);
  const bad: Array<[string, RegExp]> = [
    ['ni*er', /^bad prefix term "ni\*er": a \* may only end a term/],
    ['*nier', /may only end a term/],
    ['chronische* nier', /may only end a term/],
    ['nier**', /^bad prefix term "nier\*\*": a prefix term ends in one \*/],
    ['nier *', /must follow a letter or digit directly/],
    ['nier-*', /must follow a letter or digit directly/],
    ['*', /must follow a letter or digit directly/],
    ['nie*', /^bad prefix term "nie\*": too short, a prefix needs at least 4 letters or digits before the \* \(this one has 3\)/],
    ['a*', /too short/],
    ['chronische ni*', /too short/],
    ['ĳs*', /too short.*has 3/],
  ];
  for (const [term, problem] of bad) {
    t.match(prefixTermProblem(term), problem, term);
    t.throws(() => new AhoCorasick(['nier', term]), { message: problem }, `the automaton refuses ${term}`);
  }
});

t.test('zegel rules lint names a bad prefix term with its file and line', async (t) => {
  const dir = rulesDir(
    t,
    [
      'rules:', //                                                                      1
      rule('lijst', '{ kind: wordlist, list: medisch }').trimEnd(), //                    2-8
      rule('ook-lijst', '{ kind: wordlist, list: medisch }').trimEnd(), //                9-15
      '  - id: eigen', //                                                               16
      '    description: { nl: x, en: x }', //                                           17
      '    detector:', //                                                               18
      '      kind: wordlist', //                                                        19
      '      terms:', //                                                                20
      '        - nierfalen', //                                                         21
      "        - 'ni*er'", //                                                           22
      '    scopes: [body]', //                                                          23
      '    action: encrypt', //                                                         24
      '  - id: dossier', //                                                             25
      '    description: { nl: x, en: x }', //                                           26
      "    detector: { kind: regex, pattern: 'D\\d{6}', keywords: [dossier, 'pa*'] }", // 27
      '    scopes: [body]', //                                                          28
      '    action: encrypt', //                                                         29
      '',
    ].join('\n'),
    { medisch: '# medische termen\nnier*\nni*er\n\nnier** # twee sterren\nnie*\nnier *\ndiabet*\n' },
  );
  const list = path.join(dir, 'lists', 'medisch.txt');
  const found = lintRules(dir).map((p: RuleProblem) => ({ at: `${path.relative(dir, p.file)}:${p.line}`, problem: p.problem }));
  t.same(found, [
    { at: 'lists/medisch.txt:3', problem: 'bad prefix term "ni*er": a * may only end a term (nier*), not stand inside or before it' },
    { at: 'lists/medisch.txt:5', problem: 'bad prefix term "nier**": a prefix term ends in one * (nier*), not **' },
    { at: 'lists/medisch.txt:6', problem: 'bad prefix term "nie*": too short, a prefix needs at least 4 letters or digits before the * (this one has 3)' },
    { at: 'lists/medisch.txt:7', problem: 'bad prefix term "nier *": the * must follow a letter or digit directly (nier*, not nier * or nier-*)' },
    { at: 'rules.yaml:22', problem: 'rule eigen: detector.terms[1]: bad prefix term "ni*er": a * may only end a term (nier*), not stand inside or before it' },
    { at: 'rules.yaml:27', problem: 'rule dossier: detector.keywords[1]: bad prefix term "pa*": too short, a prefix needs at least 4 letters or digits before the * (this one has 2)' },
  ], 'each list problem once, though two rules use the list');

  const cli = await runZegel(['rules', 'lint', dir]);
  t.equal(cli.code, 1, 'exit 1');
  t.match(cli.stdout, `${list}:3: bad prefix term "ni*er"`);
  t.match(cli.stderr, /6 problems/);

  fs.writeFileSync(list, '# medische termen\nnier*\nchronische nier*\ndiabet*\n');
  fs.writeFileSync(path.join(dir, 'rules.yaml'), fs.readFileSync(path.join(dir, 'rules.yaml'), 'utf8').replace("'ni*er'", 'nierdialyse*').replace("'pa*'", 'patiënt*'));
  t.same(lintRules(dir), [], 'fixed: clean');
  const ok = await runZegel(['rules', 'lint', dir]);
  t.equal(ok.code, 0, ok.stderr);
  t.match(ok.stdout, /^OK: 4 rules in /);
});

t.test('zegel scan --json keeps its contract with prefix terms', async (t) => {
  const dir = rulesDir(t, `rules:\n${rule('medisch-prefix', '{ kind: wordlist, list: medisch }')}${rule('bsn', '{ kind: bsn }', '    action: encrypt\n')}`, { medisch: 'nier*\nziekenhuis*\ndialyse\n' });
  const eml = (subject: string, text: string) =>
    ['From: zorg@org.test', 'To: client@example.com', `Subject: ${subject}`, 'Message-ID: <prefix@org.test>', 'MIME-Version: 1.0', 'Content-Type: text/plain; charset=utf-8', 'Content-Transfer-Encoding: 8bit', '', text, ''].join('\r\n');
  fs.writeFileSync(path.join(dir, 'twee.eml'), eml('Ziekenhuisopname', 'Na de nierdialyse en de niertransplantatie volgt controle.'));
  fs.writeFileSync(path.join(dir, 'een.eml'), eml('Overleg', 'Nierfalen en nieren; het dialysecentrum belt.'));
  const r = await runZegel(['scan', '--json', '--rules', dir, 'twee.eml', 'een.eml'], { cwd: dir });
  t.equal(r.code, 0, r.stderr);
  const lines = r.stdout.trimEnd().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
  t.same(lines, [
    {
      file: 'twee.eml',
      decision: 'encrypt',
      subjectSensitive: true,
      matches: [
        { rule: 'medisch-prefix', action: 'encrypt', location: 'subject', excerpt: 'ziekenhuis*' },
        { rule: 'medisch-prefix', action: 'encrypt', location: 'body', excerpt: 'nier*' },
      ],
    },
    {
      file: 'een.eml',
      decision: 'deliver',
      subjectSensitive: false,
      matches: [{ rule: 'medisch-prefix', action: 'advise', location: 'body', excerpt: 'nier*' }],
    },
  ], 'rule ids in matches, the term as listed, one finding per term and location; dialysecentrum is not dialyse');
});
