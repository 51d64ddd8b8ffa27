import t from 'tap';
import { AhoCorasick, createWordListDetector, dropContained } from '../src/classify/detectors/wordlist.js';
import { createDetector, parseWordList } from '../src/classify/detectors/index.js';
import { foldCodePoint, isWordChar, normaliseText, originalSpan, termKey } from '../src/classify/normalise.js';

/** [term, text as found] for every hit. */
function found(terms: string[], text: string): [string, string][] {
  return createDetector({ kind: 'wordlist', terms })
    .find(text)
    .map((h) => [h.key, text.slice(h.start, h.end)]);
}

t.test('normalisation: case, diacritics, marks, compatibility forms', async (t) => {
  t.equal(normaliseText('Patiënt PATIENT patient').text, 'patient patient patient');
  t.equal(normaliseText('ÉÈËÊ çñ ĳ ﬁ ß Ø æ').text, 'eeee cn ij fi ss o ae');
  t.equal(normaliseText('pa\u00ADtie\u0308nt\u200D').text, 'patient', 'soft hyphen, combining mark, zero-width joiner vanish');
  t.equal(normaliseText('huisarts\u200Bdialyse').text, 'huisarts dialyse', 'a zero-width space is a word break');
  t.equal(foldCodePoint(0x1d400), 'a', 'mathematical bold A');
  t.equal(foldCodePoint(0x0301), '', 'a combining mark folds to nothing');
  t.ok(isWordChar('é') && isWordChar('7') && !isWordChar('-'));
  t.equal(termKey('  GGZ-Instelling '), 'ggz instelling');
  t.equal(termKey("Alzheimer's disease"), 'alzheimer s disease');
  t.equal(termKey('--'), '');
  t.equal(termKey('Nier*'), 'nier*', 'a prefix term keeps its * (wordlist-prefix-terms.test.ts)');
  t.equal(termKey(' GGZ-Instell* '), 'ggz instell*');
});

t.test('normalisation keeps offsets into the original text', async (t) => {
  const original = 'De cliënt, Straße 5, pa\u00ADtie\u0308nt';
  const norm = normaliseText(original);
  t.equal(norm.text, 'de client, strasse 5, patient');
  t.equal(norm.starts.length, norm.text.length);
  const at = (word: string): string => {
    const i = norm.text.indexOf(word);
    const span = originalSpan(norm, i, i + word.length);
    return original.slice(span.start, span.end);
  };
  t.equal(at('client'), 'cliënt');
  t.equal(at('strasse'), 'Straße');
  t.equal(at('patient'), 'pa\u00ADtie\u0308nt');
  const astral = normaliseText('x😀y');
  t.equal(astral.text, 'x😀y');
  t.same([...astral.starts], [0, 1, 1, 3]);
});

t.test('diacritics and case folding', async (t) => {
  const terms = ['patiënt', 'suicide', 'Straße'];
  t.same(found(terms, 'PATIENT'), [['patiënt', 'PATIENT']]);
  t.same(found(terms, 'De Patiënt.'), [['patiënt', 'Patiënt']]);
  t.same(found(terms, 'patie\u0308nt'), [['patiënt', 'patie\u0308nt']], 'decomposed diacritic');
  t.same(found(terms, 'pa\u00ADtiënt'), [['patiënt', 'pa\u00ADtiënt']], 'soft hyphen inside the word');
  t.same(found(terms, 'SUÏCIDE'), [['suicide', 'SUÏCIDE']], 'the listed term has no diacritic, the text has');
  t.same(found(terms, 'strasse STRASSE'), [
    ['Straße', 'strasse'],
    ['Straße', 'STRASSE'],
  ]);
});

t.test('whole words only', async (t) => {
  const terms = ['ADHD', 'dialyse', 'covid'];
  t.same(found(terms, 'diagnose: ADHD.'), [['ADHD', 'ADHD']]);
  t.same(found(terms, '(adhd)'), [['ADHD', 'adhd']]);
  t.same(found(terms, 'ADHD-medicatie'), [['ADHD', 'ADHD']], 'a hyphen is a word boundary');
  t.same(found(terms, 'ADHDer'), [], 'letters after');
  t.same(found(terms, 'xADHD'), [], 'letters before');
  t.same(found(terms, 'ADHD2'), [], 'a digit after');
  t.same(found(terms, 'dialysecentrum'), [], 'a compound is another word');
  t.same(found(terms, 'hemodialyse'), [], 'a compound is another word');
  t.same(found(terms, 'dialyse'), [['dialyse', 'dialyse']], 'the whole text');
  t.same(found(terms, 'covid19 covid-19'), [['covid', 'covid']]);
  t.same(found(terms, 'émADHD'), []);
  t.same(found(terms, 'ADHD\u0301'), [['ADHD', 'ADHD\u0301']], 'a trailing mark belongs to the word');
  t.same(found(terms, '😀ADHD😀'), [['ADHD', 'ADHD']], 'symbols are separators');
  t.same(found(terms, 'ADHD\u200Bdialyse'), [['ADHD', 'ADHD'], ['dialyse', 'dialyse']], 'a zero-width space separates words');
});

t.test('phrases match across any run of separators, never across a missing one', async (t) => {
  const terms = ['ggz-instelling', 'citizen service number', 'burger service nummer'];
  t.same(found(terms, 'GGZ instelling'), [['ggz-instelling', 'GGZ instelling']]);
  t.same(found(terms, 'ggz – instelling'), [['ggz-instelling', 'ggz – instelling']]);
  t.same(found(terms, 'ggz\r\n  instelling'), [['ggz-instelling', 'ggz\r\n  instelling']]);
  t.same(found(terms, 'ggzinstelling'), []);
  t.same(found(terms, 'Citizen-Service-Number'), [['citizen service number', 'Citizen-Service-Number']]);
  t.same(found(terms, 'citizen service'), []);
  t.same(found(terms, 'burgerservicenummer'), [], 'list compounds separately');
  t.same(found(terms, 'BURGER.SERVICE.NUMMER'), [['burger service nummer', 'BURGER.SERVICE.NUMMER']]);
});

t.test('distinct terms via Hit.key, spelled as listed', async (t) => {
  const det = createWordListDetector(['huisarts', 'Dialyse', 'dialyse', 'DIALYSE ']);
  const hits = det.find('De huisarts, de HUISARTS en de dialyse.');
  t.same(hits.map((h) => h.key), ['huisarts', 'huisarts', 'Dialyse'], 'duplicates after folding keep the first spelling');
  t.same(hits.map((h) => h.excerpt), ['huisarts', 'huisarts', 'Dialyse']);
  t.equal(new Set(hits.map((h) => h.key)).size, 2);
  t.ok(det.maxMatchLength >= 'huisarts'.length);
});

t.test('overlapping terms', async (t) => {
  const ac = new AhoCorasick(['ziekte van alzheimer', 'alzheimer', 'van', 'a b', 'b c']);
  const all = ac.findAll('ziekte van Alzheimer');
  t.same(
    all.map((m) => ac.terms[m.term]).sort(),
    ['alzheimer', 'van', 'ziekte van alzheimer'],
    'the automaton reports every match, nested ones included',
  );
  t.same(
    dropContained(all).map((m) => ac.terms[m.term]),
    ['ziekte van alzheimer'],
    'the detector keeps the longest',
  );
  t.same(found(['ziekte van alzheimer', 'alzheimer'], 'ziekte van Alzheimer; later alzheimer'), [
    ['ziekte van alzheimer', 'ziekte van Alzheimer'],
    ['alzheimer', 'alzheimer'],
  ]);
  t.same(found(['a b', 'b c'], 'a b c'), [
    ['a b', 'a b'],
    ['b c', 'b c'],
  ], 'partly overlapping matches are both kept');
  t.same(found(['kanker', 'borstkanker'], 'borstkanker'), [['borstkanker', 'borstkanker']]);
  t.same(found(['nier', 'nier nier'], 'nier nier nier'), [
    ['nier nier', 'nier nier'],
    ['nier nier', 'nier nier'],
  ]);
});

t.test('edge cases', async (t) => {
  t.same(found([], 'anything'), []);
  t.same(found(['x'], ''), []);
  t.same(found(['---', '', '  '], 'a --- b'), [], 'terms without letters or digits are dropped');
  t.same(found(['C++'], 'ik ken C en c++'), [
    ['C++', 'C'],
    ['C++', 'c'],
  ], 'punctuation inside terms is a separator');
  t.same(found(['a'], '\uD800a\uDC00'), [['a', 'a']], 'lone surrogates are separators');
  t.same(found(['ij'], 'ĳ'), [['ij', 'ĳ']], 'ligature expands');
  t.same(found(['𝐀𝐃𝐇𝐃'], 'adhd'), [['𝐀𝐃𝐇𝐃', 'adhd']]);
  t.same(found(['nier'], 'nier* nierfalen*'), [['nier', 'nier']], 'a * in the text is a separator; only a listed term can be a prefix');
  t.same(found(['nier', 'nier*'], 'nierfalen'), [['nier*', 'nierfalen']], 'nier and nier* are two terms');
});

/** Reference matcher: split the folded text into words and compare word sequences. */
function reference(terms: string[], text: string): string[] {
  const keys = [...new Set(terms.map(termKey).filter((k) => k !== ''))];
  const norm = normaliseText(text);
  const words: { w: string; start: number }[] = [];
  const re = /[\p{L}\p{N}]+/gu;
  for (let m = re.exec(norm.text); m !== null; m = re.exec(norm.text)) words.push({ w: m[0], start: originalSpan(norm, m.index, m.index + 1).start });
  const out: string[] = [];
  for (const key of keys) {
    const kw = key.split(' ');
    for (let i = 0; i + kw.length <= words.length; i++) {
      if (kw.every((w, j) => words[i + j]?.w === w)) out.push(`${key}@${words[i]?.start}`);
    }
  }
  return out.sort();
}

t.test('agrees with a reference matcher on random texts', async (t) => {
  const terms = ['ab', 'abc', 'b c', 'ab ab', 'ça', 'c a b', 'bca', 'a', 'ĳs', 'x1'];
  const pieces = ['a', 'b', 'c', 'A', 'B', 'ç', 'Ç', ' ', '  ', '-', '.', '\n', 'ĳ', 's', 'x', '1', '\u0301', '\u00AD', 'é', '😀'];
  let seed = 7;
  const rnd = (n: number): number => {
    seed = (seed * 1103515245 + 12345) & 0x7fffffff;
    return seed % n;
  };
  const ac = new AhoCorasick(terms);
  let mismatches = 0;
  let matches = 0;
  for (let round = 0; round < 3000; round++) {
    let text = '';
    const len = rnd(30);
    for (let i = 0; i < len; i++) text += pieces[rnd(pieces.length)];
    const got = ac
      .findAll(text)
      .map((m) => `${ac.keys[m.term]}@${m.start}`)
      .sort();
    matches += got.length;
    if (JSON.stringify(got) !== JSON.stringify(reference(terms, text))) {
      if (mismatches++ < 3) t.same(got, reference(terms, text), JSON.stringify(text));
    }
  }
  t.equal(mismatches, 0, 'no mismatches in 3000 random texts');
  t.ok(matches > 500, `the texts exercise the matcher (${matches} matches)`);
});

t.test('correctness on a generated 5 MB text (not timed)', async (t) => {
  const terms = parseWordList('# test list\nhuisarts\nggz-instelling\nziekte van Alzheimer\nantidepressiva\ndialyse\nADHD\n');
  const filler = ['de', 'het', 'overleg', 'dinsdag', 'dialysecentrum', 'huisartsenpraktijk', 'cliënt', 'zorg', 'Alzheimerstichting', 'ggz', 'instellingen', 'van', 'ziekte'];
  const planted = ['huisarts', 'GGZ-instelling', 'ziekte  van alzheimer', 'ANTIDEPRESSIVA', 'dialyse', 'adhd', 'Huisarts'];
  const expectKey = ['huisarts', 'ggz-instelling', 'ziekte van Alzheimer', 'antidepressiva', 'dialyse', 'ADHD', 'huisarts'];
  let seed = 42;
  const rnd = (n: number): number => {
    seed = (seed * 1103515245 + 12345) & 0x7fffffff;
    return seed % n;
  };
  const parts: string[] = [];
  const expected: string[] = [];
  let length = 0;
  while (length < 5_000_000) {
    let part: string;
    if (rnd(50) === 0) {
      const k = rnd(planted.length);
      part = `${planted[k]}`;
      expected.push(expectKey[k] as string);
    } else {
      part = filler[rnd(filler.length)] as string;
    }
    part += rnd(10) === 0 ? '.\n' : ' ';
    parts.push(part);
    length += part.length;
  }
  const text = parts.join('');
  const hits = createDetector({ kind: 'wordlist', terms }).find(text);
  t.equal(hits.length, expected.length, `${expected.length} planted terms found, no more`);
  t.same(hits.map((h) => h.key), expected, 'in order, with the listed spelling');
  const wrongSpan = hits.filter((h) => termKey(text.slice(h.start, h.end)) !== termKey(h.key)).length;
  t.equal(wrongSpan, 0, 'every span folds to its term');
});
