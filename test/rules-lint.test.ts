import fs from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { ZegelError } from '../src/errors.js';
import { lintRules } from '../src/classify/rules/lint.js';
import { loadRules, shippedRulesDir, type RuleProblem } from '../src/classify/rules/load.js';
import { cleanEnv } from './helpers/child-relay.js';
import { tempDir } from './helpers/relay.js';
import { run } from './helpers/smtp-client.js';
import { repoRoot } from './helpers/repo-root.js';

const root = repoRoot;

/** The built CLI without tap's loader (see test/config-validation.test.ts). */
function zegel(args: string[]) {
  return run('/usr/bin/env', ['-u', 'NODE_OPTIONS', process.execPath, path.join(root, 'bin/zegel'), ...args], { timeoutMs: 30_000, env: cleanEnv() });
}

const GOOD_RULE = `
  - id: patient-number
    description: { nl: Patiëntnummer, en: Patient number }
    detector: { kind: regex, pattern: 'P\\d{7}', keywords: [patiënt], proximity: 40 }
    scopes: [body]
    action: encrypt
`;

/** A rules directory with the given files (name → content) and a `lists/` folder. */
function rulesDir(t: Parameters<typeof tempDir>[0], files: Record<string, string>, lists: Record<string, string> = { medical: 'diabetes\noncologie\n' }): string {
  const dir = tempDir(t, 'zegel-rules-');
  fs.mkdirSync(path.join(dir, 'lists'));
  for (const [name, text] of Object.entries(files)) fs.writeFileSync(path.join(dir, name), text);
  for (const [name, text] of Object.entries(lists)) fs.writeFileSync(path.join(dir, 'lists', `${name}.txt`), text);
  return dir;
}

/** Problems without the temporary directory, as `name:line: problem`. */
function problems(dir: string): Array<{ at: string; problem: string }> {
  return lintRules(dir).map((p: RuleProblem) => ({ at: `${path.relative(dir, p.file)}:${p.line}`, problem: p.problem }));
}

t.test('the shipped rules lint clean and hold the rule ids of DESIGN.md', async (t) => {
  const dir = shippedRulesDir();
  t.equal(dir, path.join(root, 'rules'), 'found from the module itself');
  t.same(lintRules(dir), []);
  const set = loadRules(dir);
  t.same(
    set.rules.map((r) => r.id),
    ['bsn', 'personal-words', 'medical-words', 'health-statement', 'measured-values', 'health-diagnosis', 'mental-health', 'youth-protection', 'youth-care-words', 'criminal-record', 'criminal-words', 'origin', 'origin-statement', 'religion-words', 'religion', 'religion-statement', 'political', 'political-affiliation', 'union-membership', 'union-affiliation', 'sexual-life', 'genetic-biometric', 'biometric-enrolment', 'identity-document', 'care-setting', 'iban', 'unscannable-attachment', 'opt-in-tag'],
  );
  const byId = new Map(set.rules.map((r) => [r.id, r]));
  t.same(byId.get('medical-words')!.thresholds, [
    { min: 2, action: 'encrypt' },
    { min: 1, action: 'advise' },
  ]);
  t.same(byId.get('iban')!.thresholds, [{ min: 1, action: 'advise' }]);
  t.same([...byId.get('bsn')!.scopes], ['subject', 'body', 'filename', 'attachment'], 'BSN anywhere, subject and file names included');
  for (const r of set.rules) t.ok(r.description.nl && r.description.en, `${r.id}: described in Dutch and English`);
});

t.test('a good organisation rule beside the defaults', async (t) => {
  const dir = rulesDir(t, { 'org.yaml': `rules:${GOOD_RULE}` });
  t.same(lintRules(dir), []);
  t.equal(loadRules(dir).rules[0]!.kind, 'text');
});

t.test('YAML errors: file and line', async (t) => {
  const dir = rulesDir(t, {
    'dup.yaml': 'rules:\n  - id: a\n    id: b\n',
    'broken.yaml': 'rules:\n  - id: x\n    scopes: [body\n',
  });
  const found = problems(dir);
  t.match(found, [
    { at: 'broken.yaml:3', problem: /YAML: Flow sequence/ },
    { at: 'dup.yaml:3', problem: /YAML: Map keys must be unique/ },
  ]);
  t.equal(found[0]!.at, 'broken.yaml:3', 'an error at the end of the file: its last line');
  t.equal(found.length, 2, 'one problem per broken file');
});

t.test('schema errors point at the key', async (t) => {
  const dir = rulesDir(t, {
    'a.yaml': [
      'rules:', //                                     1
      '  - id: Bad_Id', //                             2
      '    description: { nl: x, en: y }', //          3
      '    detector: { kind: bsn }', //                4
      '    scopes: [body]', //                         5
      '    action: encrypt', //                        6
      '  - id: two', //                                7
      '    description: { nl: x }', //                 8
      '    detector: { kind: ssn }', //                9
      '    scopes: [body, headers]', //               10
      '    action: quarantine', //                    11
      '    colour: red', //                           12
      '  - id: three', //                             13
      '    detector: { kind: regex, pattern: x, flag: i }', // 14
      '    scopes: []', //                            15
      '    action: advise', //                        16
      '',
    ].join('\n'),
  });
  const found = problems(dir);
  const at = (line: number) => found.filter((p) => p.at === `a.yaml:${line}`).map((p) => p.problem);
  t.match(at(2), [/rules\[0\]\.id: expected an id of lower-case letters/]);
  t.match(at(8), [/rules\[1\]\.description\.en/], 'a missing key: the line of its parent');
  t.match(at(9), [/rules\[1\]\.detector\.kind: expected detector.kind bsn, iban, wordlist, regex/]);
  t.match(at(10), [/rules\[1\]\.scopes\[1\]/]);
  t.match(at(11), [/rules\[1\]\.action/]);
  t.match(at(12), [/rules\[1\]\.colour: unknown key/]);
  t.match(at(13), [/rules\[2\]\.description/], 'a missing description: the line of the rule');
  t.match(at(14), [/rules\[2\]\.detector\.flag: unknown key/]);
  t.match(at(15), [/rules\[2\]\.scopes/]);
  t.equal(found.length, 9, JSON.stringify(found, null, 1));

  const top = rulesDir(t, { 'top.yaml': 'rule:\n  - id: x\n', 'empty.yaml': '# nothing\n' });
  t.match(problems(top), [{ at: 'empty.yaml:0', problem: /empty file/ }, { at: 'top.yaml:1' }, { at: 'top.yaml:1' }]);
});

t.test('regular expressions RE2 cannot compile are refused at the pattern line', async (t) => {
  const dir = rulesDir(t, {
    're.yaml': [
      'rules:',
      '  - id: backref',
      '    description: { nl: x, en: x }',
      '    detector:',
      '      kind: regex',
      "      pattern: '(a+)\\1'",
      '    scopes: [body]',
      '    action: encrypt',
      '  - id: lookahead',
      '    description: { nl: x, en: x }',
      "    detector: { kind: regex, pattern: 'P(?=\\d{7})' }",
      '    scopes: [body]',
      '    action: encrypt',
      '  - id: nested-quantifiers',
      '    description: { nl: x, en: x }',
      "    detector: { kind: regex, pattern: '(a+)+$' }",
      '    scopes: [body]',
      '    action: encrypt',
      '  - id: lonely-proximity',
      '    description: { nl: x, en: x }',
      "    detector: { kind: regex, pattern: 'P\\d{7}', proximity: 10 }",
      '    scopes: [body]',
      '    action: encrypt',
      '',
    ].join('\n'),
  });
  const found = problems(dir);
  t.match(found, [
    { at: 're.yaml:6', problem: /^rule backref: pattern refused/ },
    { at: 're.yaml:11', problem: /^rule lookahead: pattern refused/ },
    { at: 're.yaml:21', problem: /^rule lonely-proximity: proximity needs keywords/ },
  ]);
  t.equal(found.length, 3, '(a+)+$ is fine: RE2 runs in linear time, it cannot backtrack');
});

t.test('unknown and empty word lists', async (t) => {
  const dir = rulesDir(
    t,
    {
      'lists.yaml': [
        'rules:',
        '  - id: known',
        '    description: { nl: x, en: x }',
        '    detector: { kind: wordlist, list: medical }',
        '    scopes: [body]',
        '    action: advise',
        '  - id: unknown',
        '    description: { nl: x, en: x }',
        '    detector:',
        '      kind: wordlist',
        '      list: medisch',
        '    scopes: [body]',
        '    action: advise',
        '  - id: empty',
        '    description: { nl: x, en: x }',
        '    detector: { kind: wordlist, list: leeg }',
        '    scopes: [body]',
        '    action: advise',
        '  - id: traversal',
        '    description: { nl: x, en: x }',
        '    detector: { kind: wordlist, list: ../geheim }',
        '    scopes: [body]',
        '    action: advise',
        '  - id: nothing',
        '    description: { nl: x, en: x }',
        '    detector: { kind: wordlist }',
        '    scopes: [body]',
        '    action: advise',
        '',
      ].join('\n'),
    },
    { medical: '# comment\ndiabetes\n', leeg: '# only a comment\n\n' },
  );
  t.match(problems(dir), [
    { at: 'lists.yaml:21', problem: /rules\[3\]\.detector\.list: expected a list name/ },
  ]);
  t.equal(problems(dir).length, 1, 'schema problems first: the file is not compiled further');

  const fixed = path.join(dir, 'lists.yaml');
  fs.writeFileSync(fixed, fs.readFileSync(fixed, 'utf8').replace('../geheim', 'medical'));
  t.same(problems(dir), [
    { at: 'lists.yaml:11', problem: 'rule unknown: unknown word list "medisch" (no lists/medisch.txt)' },
    { at: 'lists.yaml:16', problem: 'rule empty: word list "leeg" has no terms' },
    { at: 'lists.yaml:26', problem: 'rule nothing: a wordlist detector needs list (a name from lists/), lists (several names) or terms' },
  ]);
});

t.test('duplicate ids, also across files', async (t) => {
  const rule = (id: string) => `  - id: ${id}\n    description: { nl: x, en: x }\n    detector: { kind: iban }\n    scopes: [body]\n    action: advise\n`;
  const dir = rulesDir(t, { 'a.yaml': `rules:\n${rule('iban')}${rule('iban')}`, 'b.yaml': `# org\nrules:\n${rule('iban')}` });
  const found = lintRules(dir);
  t.same(
    found.map((p) => [path.basename(p.file), p.line, p.problem.replace(dir + path.sep, '')]),
    [
      ['a.yaml', 7, 'rule iban: duplicate rule id (first defined at a.yaml:2)'],
      ['b.yaml', 3, 'rule iban: duplicate rule id (first defined at a.yaml:2)'],
    ],
  );
});

t.test('bad thresholds', async (t) => {
  const rule = (id: string, tail: string) => `  - id: ${id}\n    description: { nl: x, en: x }\n    detector: { kind: iban }\n    scopes: [body]\n${tail}`;
  const dir = rulesDir(t, {
    't.yaml': [
      'rules:',
      rule('zero', '    thresholds:\n      - { min: 0, action: encrypt }'), //                   2-7
      rule('fraction', '    thresholds:\n      - { min: 1.5, action: encrypt }'), //            8-13
      rule('same-min', '    thresholds:\n      - { min: 2, action: encrypt }\n      - { min: 2, action: block }'), // 14-20
      rule('milder', '    thresholds:\n      - { min: 1, action: encrypt }\n      - { min: 3, action: advise }'), // 21-27
      rule('both', '    action: encrypt\n    thresholds:\n      - { min: 2, action: block }'), // 28-34
      rule('neither', '    # no action'), //                                                       35-39
      rule('empty', '    thresholds: []'), //                                                     40-44
      '',
    ].join('\n'),
  });
  const found = problems(dir);
  t.match(found, [
    { at: 't.yaml:7', problem: /rules\[0\]\.thresholds\[0\]\.min: Too small/ },
    { at: 't.yaml:13', problem: /rules\[1\]\.thresholds\[0\]\.min: .*int/ },
    { at: 't.yaml:44', problem: /rules\[6\]\.thresholds: Too small/ },
  ]);
  t.equal(found.length, 3, 'schema problems first');

  const semantic = rulesDir(t, {
    't.yaml': [
      'rules:',
      rule('same-min', '    thresholds:\n      - { min: 2, action: encrypt }\n      - { min: 2, action: block }'), // 2-8
      rule('milder', '    thresholds:\n      - { min: 1, action: encrypt }\n      - { min: 3, action: advise }'), // 9-15
      rule('both', '    action: encrypt\n    thresholds:\n      - { min: 2, action: block }'), // 16-22
      rule('neither', '    # no action'), //                                                        23-27
      rule('tag-in-body', '    action: encrypt').replace('kind: iban', 'kind: opt-in-tag'), //      28-32
      '',
    ].join('\n'),
  });
  t.same(problems(semantic), [
    { at: 't.yaml:8', problem: 'rule same-min: two thresholds with min 2' },
    { at: 't.yaml:15', problem: 'rule milder: threshold min 3 (advise) must be stricter than min 1 (encrypt); more hits cannot mean a milder action' },
    { at: 't.yaml:21', problem: 'rule both: give either action or thresholds, not both' },
    { at: 't.yaml:23', problem: 'rule neither: needs an action (encrypt, advise, block) or thresholds' },
    { at: 't.yaml:31', problem: 'rule tag-in-body: opt-in tags are read from the subject only: scopes must be [subject]' },
  ]);
});

t.test('a directory without rule files, or no directory', async (t) => {
  const empty = rulesDir(t, {});
  t.match(lintRules(empty), [{ file: empty, line: 0, problem: /no rule files/ }]);
  t.match(lintRules(path.join(empty, 'missing')), [{ line: 0, problem: /cannot read the rules directory/ }]);
});

t.test('loadRules refuses a broken set with every problem', async (t) => {
  const dir = rulesDir(t, { 'a.yaml': `rules:${GOOD_RULE}  - id: x\n` });
  let caught: unknown;
  try {
    loadRules(dir);
  } catch (err) {
    caught = err;
  }
  t.ok(caught instanceof ZegelError, 'a ZegelError');
  t.equal((caught as ZegelError).code, 'ZEGEL_RULES_INVALID');
  t.match((caught as Error).message, /a\.yaml:7: rules\[1\]\.description/);
  t.match((caught as Error).message, /a\.yaml:7: rules\[1\]\.detector/, 'every problem, not just the first');
});

t.test('zegel rules lint [DIR] (built CLI)', async (t) => {
  const shipped = await zegel(['rules', 'lint']);
  t.equal(shipped.code, 0, shipped.stderr);
  t.match(shipped.stdout, /^OK: 28 rules in .*rules\n$/);

  const dir = rulesDir(t, { 'a.yaml': 'rules:\n  - id: x\n    description: { nl: x, en: x }\n    detector: { kind: wordlist, list: nope }\n    scopes: [body]\n    action: encrypt\n' });
  const broken = await zegel(['rules', 'lint', dir]);
  t.equal(broken.code, 1);
  t.equal(broken.stdout, `${path.join(dir, 'a.yaml')}:4: rule x: unknown word list "nope" (no lists/nope.txt)\n`);
  t.match(broken.stderr, /1 problem/);
});
