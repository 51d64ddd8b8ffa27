import fs from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { createDetector, parseWordList } from '../src/classify/detectors/index.js';
import { prefixTermProblem, termKey } from '../src/classify/normalise.js';
import { repoPath } from './helpers/repo-root.js';

const listsDir = repoPath('rules', 'lists');
const read = (name: string): string => fs.readFileSync(path.join(listsDir, `${name}.txt`), 'utf8');

/** Every term line of a list file (comments and blank lines skipped), with its line number. */
function termLines(text: string): { line: number; term: string }[] {
  return text
    .split('\n')
    .map((raw, i) => ({ line: i + 1, term: raw.replace(/#.*/, '').trim() }))
    .filter((l) => l.term !== '');
}

t.test('parseWordList', async (t) => {
  const text = '# heading\n\n  huisarts  \nPatiënt # inline comment\npatient\nGGZ-instelling\nggz instelling\r\n---\n#\nlaatste';
  t.same(parseWordList(text), ['huisarts', 'Patiënt', 'GGZ-instelling', 'laatste']);
  t.same(parseWordList(''), []);
});

for (const name of ['medical', 'personal']) {
  t.test(`${name}: no duplicates after normalisation, every line a usable term`, async (t) => {
    const seen = new Map<string, number>();
    for (const { line, term } of termLines(read(name))) {
      const key = termKey(term);
      t.not(key, '', `line ${line}: '${term}' has letters or digits`);
      const problem = prefixTermProblem(term);
      if (problem !== undefined) t.fail(`line ${line}: ${problem}`);
      if (seen.has(key)) t.fail(`line ${line}: '${term}' repeats line ${seen.get(key)}`);
      seen.set(key, line);
    }
    t.equal(parseWordList(read(name)).length, seen.size);
  });
}

/** The terms of a list that match `text` as the detector sees it: listed words, or prefix terms (`nier*`) that reach it. */
function matching(name: string): (text: string) => string[] {
  const detector = createDetector({ kind: 'wordlist', terms: parseWordList(read(name)) });
  return (text) => detector.find(text).map((h) => h.key);
}

t.test('medical: at least 400 distinct normalised terms, Dutch and English', async (t) => {
  const terms = parseWordList(read('medical'));
  const keys = new Set(terms.map(termKey));
  t.ok(keys.size >= 400, `${keys.size} terms`);
  const medical = matching('medical');
  for (const must of ['huisarts', 'ziekenhuis', 'ggz instelling', 'verpleeghuis', 'oncoloog', 'antidepressiva', 'antipsychotica', 'opioiden', 'chemotherapie', 'dialyse', 'adhd', 'dementie', 'psychiater', 'allergie', 'fysiotherapie', 'chemotherapy', 'nursing home', 'psychiatrist']) {
    t.not(medical(must).length, 0, `${must}: listed, or reached by a prefix term`);
  }
});

t.test('personal: citizen numbers, document numbers and copies; identity-documents: the bare document names', async (t) => {
  const personal = matching('personal');
  for (const must of ['bsn', 'burgerservicenummer', 'sofinummer', 'sofi nummer', 'citizen service number', 'paspoortnummer', 'kopie van het paspoort', 'rijbewijsnummer', 'documentnummer', 'vreemdelingendocument', 'verblijfsvergunningnummer', 'v nummer', 'social security number', 'passport number']) {
    t.not(personal(must).length, 0, `${must}: listed, or reached by a prefix term`);
  }
  // the bare names are in every "bring a valid ID" notice: advice only, in their own list
  const documents = matching('identity-documents');
  for (const name of ['paspoort', 'identiteitskaart', 'id kaart']) {
    t.same(personal(name), [], `personal does not match the bare '${name}'`);
    t.not(documents(name).length, 0, `identity-documents matches '${name}'`);
  }
});

t.test('no everyday words, and no account, company or contact identifiers', async (t) => {
  const everyday = ['overleg', 'behandeling', 'afspraak', 'zorg', 'patient', 'client', 'ziek', 'ziekte', 'dokter', 'arts', 'pijn', 'griep', 'opname', 'intake', 'consult', 'diagnose', 'prognose', 'operatie', 'therapie', 'recept', 'virus', 'infectie', 'stroke', 'echo', 'borderline', 'corona', 'als', 'ms', 'add', 'aids', 'ic', 'tbc', 'soa', 'ggd', 'jeugdzorg', 'wmo'];
  const identifiers = ['iban', 'kvk', 'telefoon', 'telefoonnummer', 'rekeningnummer', 'btw nummer', 'rsin', 'e mail', 'adres', 'geboortedatum', 'rijbewijs'];
  for (const name of ['medical', 'personal']) {
    const find = matching(name);
    // a prefix term that reaches one of these words (`ziek*`, `arts*`) counts as listing it
    for (const word of [...everyday, ...identifiers]) t.same(find(word), [], `${name} does not match '${word}'`);
  }
});

t.test('ordinary office mail stays clear of both lists', async (t) => {
  const medical = createDetector({ kind: 'wordlist', terms: parseWordList(read('medical')) });
  const personal = createDetector({ kind: 'wordlist', terms: parseWordList(read('personal')) });
  const mail = [
    'Beste collega, hierbij de informatie voor het overleg van dinsdag. Zoals besproken stuur ik u de stukken.',
    'Uw afspraak is verzet naar woensdag. De behandeling van uw aanvraag duurt zes weken.',
    'Graag uw IBAN, KvK-nummer en telefoonnummer voor de factuur. Met vriendelijke groet, Team Intake.',
    'Ik ben vandaag ziek en werk morgen thuis. Als het lukt bel ik even, ik heb ook nog een rijbewijs B cursus.',
    'The meeting is tbc; please add the notes and send the aids for the workshop. The virus scanner found nothing.',
  ].join('\n');
  t.same(medical.find(mail).map((h) => h.key), []);
  t.same(personal.find(mail).map((h) => h.key), []);
  const care = 'De huisarts verwijst naar de GGZ-instelling; medicatie: antidepressiva. Graag ook een kopie van het paspoort.';
  // the words found, whether a whole-word term or a prefix term (`medicati*`) lists them
  const words = (hits: { start: number; end: number }[]) => hits.map((h) => care.slice(h.start, h.end));
  t.same(words(medical.find(care)), ['huisarts', 'GGZ-instelling', 'medicatie', 'antidepressiva']);
  t.same(words(personal.find(care)), ['kopie van het paspoort']);
});
