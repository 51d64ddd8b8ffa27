import t from 'tap';
import { createWordListDetector } from '../src/classify/detectors/wordlist.js';
import { BsnDetector } from '../src/classify/detectors/bsn.js';
import { classify } from '../src/classify/engine.js';
import type { CompiledRule, RuleSet } from '../src/classify/rules/load.js';
import type { Detector, ExtractEvent, Scope } from '../src/classify/types.js';

/*
 * Word-list rules with the same scopes are scanned in one pass of one
 * automaton. Each rule must still get exactly its own findings: a term in two
 * lists counts for both (spelled as each lists it), a term contained in a
 * longer term of the same list is dropped but one contained in a term of
 * another list is not, scopes still apply, and chunk borders change nothing.
 */

const ALL: Scope[] = ['subject', 'body', 'filename', 'attachment'];

function rule(id: string, detector: Detector, scopes: Scope[] = ALL): CompiledRule {
  return { id, description: { nl: id, en: id }, scopes: new Set(scopes), thresholds: [{ min: 1, action: 'encrypt' }], source: { file: 'test', line: 1 }, kind: 'text', detector };
}

/** The same detector, hidden from the engine's merging (its own pass). */
function alone(d: Detector): Detector {
  return { maxMatchLength: d.maxMatchLength, find: (text) => d.find(text) };
}

const LISTS: Array<[string, string[], Scope[]]> = [
  ['medisch', ['diabetes', 'Ziekte van Alzheimer', 'alzheimer', 'GGZ-instelling', 'dialyse', 'bsn'], ALL],
  ['persoonlijk', ['BSN', 'burgerservicenummer', 'alzheimer', 'paspoort', 'ziekte'], ALL],
  ['jeugd', ['jeugdzorg', 'diabetes', 'uithuisplaatsing'], ['body', 'attachment']],
  ['kort', ['ziekte van', 'van alzheimer'], ALL],
];

function ruleSet(merge: boolean): RuleSet {
  const rules = LISTS.map(([id, terms, scopes]) => {
    const d = createWordListDetector(terms);
    return rule(id, merge ? d : alone(d), scopes);
  });
  return { dir: '', rules: [rule('bsn', new BsnDetector()), ...rules] };
}

const text = (location: string, scope: Scope, body: string): ExtractEvent => ({ type: 'text', chunk: { location, scope, text: body } });

async function* stream(events: ExtractEvent[]): AsyncGenerator<ExtractEvent> {
  for (const e of events) yield e;
}

const run = (events: ExtractEvent[], merge: boolean) => classify(stream(events), ruleSet(merge), { optInTags: ['veilig'] });

t.test('merged lists give each rule exactly its own findings', async (t) => {
  const events = [
    text('subject', 'subject', 'Diabetes en jeugdzorg, BSN 123456782'),
    text('body', 'body', 'De ziekte van Alzheimer; GGZ instelling; paspoort. Jeugdzorg en uithuisplaatsing. Dialyse.'),
    text('filename:ziekte.txt', 'filename', 'ziekte.txt'),
  ];
  const merged = await run(events, true);
  const separate = await run(events, false);
  t.same(merged, separate);
  const found = (rule: string) => merged.matches.filter((m) => m.rule === rule).map((m) => `${m.location}:${m.excerpt}`);
  t.same(found('medisch'), ['subject:diabetes', 'subject:bsn', 'body:Ziekte van Alzheimer', 'body:GGZ-instelling', 'body:dialyse']);
  t.same(found('persoonlijk'), ['subject:BSN', 'body:ziekte', 'body:alzheimer', 'body:paspoort', 'filename:ziekte.txt:ziekte']);
  t.same(found('jeugd'), ['body:jeugdzorg', 'body:uithuisplaatsing'], 'not in the subject: not its scope');
  t.same(found('kort'), ['body:ziekte van', 'body:van alzheimer'], 'overlapping terms of one list are both kept');
});

t.test('merged and separate passes agree on random texts and chunkings', async (t) => {
  let seed = 11;
  const random = (n: number) => {
    seed = (seed * 1103515245 + 12345) % 2147483648;
    return seed % n;
  };
  const pieces = ['diabetes', 'ziekte', 'van', 'alzheimer', 'ggz', 'instelling', '-', ' ', ' ', '. ', 'bsn', 'jeugdzorg', 'paspoort', '123456782', 'x', 'dialyse'];
  for (let round = 0; round < 150; round++) {
    let whole = '';
    while (whole.length < 300) whole += pieces[random(pieces.length)]!;
    const chunks: ExtractEvent[] = [];
    for (let at = 0; at < whole.length; ) {
      const size = 1 + random(round % 2 ? 10 : 120);
      chunks.push(text('body', 'body', whole.slice(at, at + size)));
      at += size;
    }
    const once = await run([text('body', 'body', whole)], false);
    const merged = await run(chunks, true);
    if (JSON.stringify(merged) !== JSON.stringify(once)) {
      t.same(merged, once, `round ${round}: ${JSON.stringify(whole)}`);
      return;
    }
  }
  t.pass('150 texts agree');
});
