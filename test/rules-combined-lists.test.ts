import fs from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { classify } from '../src/classify/engine.js';
import { lintRules } from '../src/classify/rules/lint.js';
import { loadRules, type RuleSet } from '../src/classify/rules/load.js';
import type { ExtractEvent } from '../src/classify/types.js';
import { runZegel } from './helpers/child-relay.js';
import { tempDir } from './helpers/relay.js';

/*
 * A wordlist rule that reads several lists as one (`lists: [a, b]`): their
 * terms together, distinct terms counted over all of them, so one term of
 * each list is two distinct terms, and a term in both lists is one. Lint
 * refuses an unknown name, a name given twice, a single name (use `list`),
 * and `list` together with `lists`, each at its line; a list's own bad term
 * is reported once, at the list's line.
 */

const LISTS = {
  zorg: '# zorg\nhuisarts\nfysiotherapeut\njeugdarts\n',
  jeugd: '# jeugd\npleeggezin\nomgangsregeling\njeugdarts\n',
  strafzaak: '# strafzaak\nreclassering\n',
};

function rulesDir(t: Parameters<typeof tempDir>[0], yaml: string, lists: Record<string, string> = LISTS): string {
  const dir = tempDir(t, 'zegel-lists-');
  fs.mkdirSync(path.join(dir, 'lists'));
  fs.writeFileSync(path.join(dir, 'rules.yaml'), yaml);
  for (const [name, text] of Object.entries(lists)) fs.writeFileSync(path.join(dir, 'lists', `${name}.txt`), text);
  return dir;
}

const RULE = (detector: string) => `rules:
  - id: zorg-en-jeugd
    description: { nl: Zorg- en jeugdwoorden, en: Care and youth words }
    detector:
${detector}
    scopes: [subject, body]
    thresholds:
      - { min: 2, action: encrypt }
      - { min: 1, action: advise }
`;

const COMBINED = RULE('      kind: wordlist\n      lists: [zorg, jeugd]');

async function decide(rules: RuleSet, body: string) {
  async function* events(): AsyncGenerator<ExtractEvent> {
    yield { type: 'text', chunk: { location: 'body', scope: 'body', text: body } };
  }
  const r = await classify(events(), rules, { optInTags: [] });
  return { decision: r.decision, found: r.matches.map((m) => `${m.action}:${m.excerpt}`) };
}

t.test('one term of each list is two distinct terms; a term in both lists counts once', async (t) => {
  const rules = loadRules(rulesDir(t, COMBINED));
  t.same(await decide(rules, 'De huisarts belt over het pleeggezin.'), { decision: 'encrypt', found: ['encrypt:huisarts', 'encrypt:pleeggezin'] });
  t.same(await decide(rules, 'De huisarts en de fysiotherapeut.'), { decision: 'encrypt', found: ['encrypt:huisarts', 'encrypt:fysiotherapeut'] }, 'two of one list, as before');
  t.same(await decide(rules, 'De jeugdarts komt dinsdag.'), { decision: 'deliver', found: ['advise:jeugdarts'] }, 'jeugdarts is in both lists: one term');
  t.same(await decide(rules, 'De jeugdarts en nog eens de Jeugdarts.'), { decision: 'deliver', found: ['advise:jeugdarts'] });
  t.same(await decide(rules, 'De reclassering belt.'), { decision: 'deliver', found: [] }, 'a list the rule does not name does not count');
});

t.test('the same lists as separate rules need two terms of one list', async (t) => {
  const separate = `rules:
  - id: zorg
    description: { nl: Zorg, en: Care }
    detector: { kind: wordlist, list: zorg }
    scopes: [body]
    thresholds: [{ min: 2, action: encrypt }, { min: 1, action: advise }]
  - id: jeugd
    description: { nl: Jeugd, en: Youth }
    detector: { kind: wordlist, list: jeugd }
    scopes: [body]
    thresholds: [{ min: 2, action: encrypt }, { min: 1, action: advise }]
`;
  const rules = loadRules(rulesDir(t, separate));
  t.equal((await decide(rules, 'De huisarts belt over het pleeggezin.')).decision, 'deliver', 'one term of each list: advice from each');
});

t.test('lists and terms together: terms written in the rule count with the lists', async (t) => {
  const rules = loadRules(rulesDir(t, RULE('      kind: wordlist\n      lists: [zorg, jeugd]\n      terms: [wijkteam]')));
  t.equal((await decide(rules, 'Het wijkteam en het pleeggezin.')).decision, 'encrypt');
});

t.test('zegel rules lint: what lists accepts and refuses, at its line', async (t) => {
  t.same(lintRules(rulesDir(t, COMBINED)), [], 'two known lists');
  const at = (yaml: string, lists?: Record<string, string>) => lintRules(rulesDir(t, yaml, lists)).map((p) => `${p.line}: ${p.problem}`);
  t.same(at(RULE('      kind: wordlist\n      lists: [zorg, onbekend]')), ['6: rule zorg-en-jeugd: unknown word list "onbekend" (no lists/onbekend.txt)']);
  t.same(at(RULE('      kind: wordlist\n      lists: [zorg, jeugd, zorg]')), ['6: rule zorg-en-jeugd: detector.lists[2]: "zorg" is named twice']);
  t.same(at(RULE('      kind: wordlist\n      lists: [zorg]')), ['6: rules[0].detector.lists: lists needs at least two names (one list: use list)']);
  t.same(at(RULE('      kind: wordlist\n      list: zorg\n      lists: [zorg, jeugd]')), ['7: rule zorg-en-jeugd: give either list or lists, not both']);
  t.same(at(RULE('      kind: wordlist\n      lists: [zorg, Jeugd]')), ['6: rules[0].detector.lists[1]: expected a list name such as medical (the file lists/<name>.txt)']);
  const badTerm = at(RULE('      kind: wordlist\n      lists: [zorg, jeugd]'), { ...LISTS, jeugd: '# jeugd\npleeg*\nnie*\n' });
  t.equal(badTerm.length, 1, 'a bad term of a list is reported once');
  t.match(badTerm[0], /^3: bad prefix term "nie\*"/);

  const cli = await runZegel(['rules', 'lint', rulesDir(t, RULE('      kind: wordlist\n      lists: [zorg, onbekend]'))]);
  t.equal(cli.code, 1, 'the CLI exits 1');
  t.match(cli.stdout + cli.stderr, /rules\.yaml:6: rule zorg-en-jeugd: unknown word list "onbekend"/);
  const ok = await runZegel(['rules', 'lint', rulesDir(t, COMBINED)]);
  t.equal(ok.code, 0, `the CLI exits 0 for a good set: ${ok.stderr}`);
});
