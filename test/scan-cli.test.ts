import fs from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { runZegel } from './helpers/child-relay.js';
import { tempDir } from './helpers/relay.js';
import { repoRoot } from './helpers/repo-root.js';

/*
 * `zegel scan` through the built CLI (npm run build first), as DESIGN.md
 * "Contracts → zegel scan" says: with --json stdout carries only result lines,
 * one per file in input order, `file` exactly as given; unreadable files give
 * an error line and exit code 1 after all files.
 */

const root = repoRoot;

/** The built CLI in `cwd`, without tap's loader in NODE_OPTIONS. */
const zegel = (args: string[], cwd: string) => runZegel(args, { cwd });

function eml(subject: string, body: string): string {
  return [
    'From: zorgverlener@org.test',
    'To: client@example.com',
    `Subject: ${subject}`,
    'Date: Mon, 02 Nov 2026 10:00:00 +0000',
    'Message-ID: <scan-cli@org.test>',
    'MIME-Version: 1.0',
    'Content-Type: text/plain; charset=utf-8',
    'Content-Transfer-Encoding: 8bit',
    '',
    body,
    '',
  ].join('\r\n');
}

/** Every stdout line must be one JSON object. */
function jsonLines(stdout: string): Array<Record<string, unknown>> {
  t.match(stdout, /\n$/, 'stdout ends with a newline');
  return stdout
    .replace(/\n$/, '')
    .split('\n')
    .map((line) => JSON.parse(line) as Record<string, unknown>);
}

function fixtures(t: Parameters<typeof tempDir>[0]): string {
  const dir = tempDir(t, 'zegel-scan-');
  fs.mkdirSync(path.join(dir, 'mail'));
  fs.writeFileSync(path.join(dir, 'mail', 'bsn.eml'), eml('Planning', 'Hallo Piet,\r\n\r\nHet nummer is 111 222 333.\r\n\r\nGroet, Jan'));
  fs.writeFileSync(path.join(dir, 'mail', 'plain.eml'), eml('Planning', 'Hallo Piet,\r\n\r\nTot dinsdag.\r\n\r\nGroet, Jan'));
  fs.writeFileSync(path.join(dir, 'mail', 'subject.eml'), eml('[Veilig] Dossier 123456782', 'Hallo Piet,\r\n\r\nZie het onderwerp.'));
  fs.writeFileSync(path.join(dir, 'mail', 'iban.eml'), eml('Factuur', 'Hallo Piet,\r\n\r\nGroet, Jan\r\nNL91 ABNA 0417 1643 00'));
  fs.writeFileSync(path.join(dir, 'mail', 'tag.eml'), eml('Uitslag [geheim]', 'Hallo Piet,\r\n\r\nTot dinsdag.'));
  return dir;
}

t.test('--json: one result object per file, in input order, file exactly as given', async (t) => {
  const dir = fixtures(t);
  const files = ['mail/bsn.eml', './mail/plain.eml', 'mail/../mail/subject.eml', path.join(dir, 'mail', 'iban.eml')];
  const r = await zegel(['scan', '--json', ...files], dir);
  t.equal(r.code, 0, r.stderr);
  const lines = jsonLines(r.stdout);
  t.same(
    lines.map((l) => l.file),
    files,
    'the paths as given, not resolved',
  );
  t.same(lines[0], {
    file: 'mail/bsn.eml',
    decision: 'encrypt',
    subjectSensitive: false,
    matches: [{ rule: 'bsn', action: 'encrypt', location: 'body', excerpt: '******333' }],
  });
  t.same(Object.keys(lines[0]!), ['file', 'decision', 'subjectSensitive', 'matches'], 'keys in the order of the contract');
  t.same(Object.keys((lines[0]!.matches as object[])[0]!), ['rule', 'action', 'location', 'excerpt']);
  t.same(lines[1], { file: './mail/plain.eml', decision: 'deliver', subjectSensitive: false, matches: [] });
  t.same(lines[2], {
    file: 'mail/../mail/subject.eml',
    decision: 'encrypt',
    subjectSensitive: true,
    matches: [
      { rule: 'opt-in-tag', action: 'encrypt', location: 'subject', excerpt: '[veilig]' },
      { rule: 'bsn', action: 'encrypt', location: 'subject', excerpt: '******782' },
    ],
  });
  t.same(lines[3], {
    file: path.join(dir, 'mail', 'iban.eml'),
    decision: 'deliver',
    subjectSensitive: false,
    matches: [{ rule: 'iban', action: 'advise', location: 'body', excerpt: 'NL…4300' }],
  }, 'advise findings are listed while the decision stays deliver');
  t.notMatch(r.stdout, /111222333|111 222 333|123456782|0417164300/, 'never a full identifier');
});

t.test('an unreadable file gives an error line in its place and exit code 1 after all files', async (t) => {
  const dir = fixtures(t);
  const r = await zegel(['scan', '--json', 'mail/missing.eml', 'mail/bsn.eml', 'mail', 'mail/plain.eml'], dir);
  t.equal(r.code, 1);
  const lines = jsonLines(r.stdout);
  t.equal(lines.length, 4, 'every file has its line');
  t.same(Object.keys(lines[0]!), ['file', 'error']);
  t.equal(lines[0]!.file, 'mail/missing.eml');
  t.type(lines[0]!.error, 'string');
  t.equal(lines[1]!.decision, 'encrypt', 'files after an error are still scanned');
  t.same(Object.keys(lines[2]!), ['file', 'error'], 'a directory is not a message');
  t.equal(lines[3]!.decision, 'deliver');
});

t.test('works from any working directory with the shipped rules', async (t) => {
  const dir = fixtures(t);
  const elsewhere = tempDir(t, 'zegel-cwd-');
  const file = path.relative(elsewhere, path.join(dir, 'mail', 'bsn.eml'));
  const r = await zegel(['scan', '--json', file], elsewhere);
  t.equal(r.code, 0, r.stderr);
  t.same(jsonLines(r.stdout), [{ file, decision: 'encrypt', subjectSensitive: false, matches: [{ rule: 'bsn', action: 'encrypt', location: 'body', excerpt: '******333' }] }]);
});

t.test('--config sets the opt-in tags and rules.dir; --rules overrides', async (t) => {
  const dir = fixtures(t);
  const rules = path.join(dir, 'org-rules');
  fs.mkdirSync(rules);
  fs.writeFileSync(
    path.join(rules, 'org.yaml'),
    [
      'rules:',
      '  - id: tags',
      '    description: { nl: Label, en: Tag }',
      '    detector: { kind: opt-in-tag }',
      '    scopes: [subject]',
      '    action: encrypt',
      '  - id: no-bsn-at-all',
      '    description: { nl: Geen BSN per mail, en: No BSN by mail }',
      '    detector: { kind: bsn }',
      '    scopes: [body]',
      '    action: block',
      '',
    ].join('\n'),
  );
  fs.writeFileSync(path.join(dir, 'zegel.yaml'), 'classify:\n  optInTags: [geheim]\nrules:\n  dir: org-rules\n');

  const withConfig = await zegel(['scan', '--json', '--config', 'zegel.yaml', 'mail/tag.eml', 'mail/bsn.eml', 'mail/subject.eml'], dir);
  t.equal(withConfig.code, 0, withConfig.stderr);
  t.same(
    jsonLines(withConfig.stdout).map((l) => [l.decision, (l.matches as Array<{ rule: string; excerpt: string }>).map((m) => `${m.rule}:${m.excerpt}`)]),
    [
      ['encrypt', ['tags:[geheim]']],
      ['block', ['no-bsn-at-all:******333']],
      ['deliver', []],
    ],
    'the configured tag list and the configured rules directory (relative to the config file)',
  );

  const override = await zegel(['scan', '--json', '--config', 'zegel.yaml', '--rules', path.join(root, 'rules'), 'mail/bsn.eml'], dir);
  t.equal(override.code, 0, override.stderr);
  t.equal(jsonLines(override.stdout)[0]!.decision, 'encrypt', '--rules wins over rules.dir');

  const broken = path.join(dir, 'broken-rules');
  fs.mkdirSync(broken);
  fs.writeFileSync(path.join(broken, 'a.yaml'), 'rules:\n  - id: x\n');
  const refused = await zegel(['scan', '--json', '--rules', broken, 'mail/bsn.eml'], dir);
  t.not(refused.code, 0, 'a broken rule set is refused');
  t.equal(refused.stdout, '', 'and nothing is printed as a result');
  t.match(refused.stderr, /ZEGEL_RULES_INVALID[\s\S]*a\.yaml:2:/);
});

t.test('without --json: readable lines with the decision and each finding', async (t) => {
  const dir = fixtures(t);
  const r = await zegel(['scan', 'mail/subject.eml', 'mail/plain.eml', 'mail/missing.eml'], dir);
  t.equal(r.code, 1);
  t.match(r.stdout, /^mail\/subject\.eml: encrypt \(sensitive subject/m);
  t.match(r.stdout, /^\s+encrypt\s+bsn\s+subject\s+\*{6}782/m);
  t.match(r.stdout, /^mail\/plain\.eml: deliver\n\s+no findings$/m);
  t.match(r.stdout, /^mail\/missing\.eml: cannot scan: /m);
  t.ok(r.stdout.indexOf('subject.eml') < r.stdout.indexOf('plain.eml'), 'input order');
});
