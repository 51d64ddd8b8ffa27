import fs from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { cleanEnv } from './helpers/child-relay.js';
import { corpusDir } from './helpers/relay.js';
import { run } from './helpers/smtp-client.js';
import { repoRoot } from './helpers/repo-root.js';

/*
 * Every case of test/fixtures/corpus/classifier/labels.json gives its expected
 * decision through the built `zegel scan --json` with the shipped rules and
 * defaults. The labels are read, never edited; new cases go beside them.
 */

const root = repoRoot;

interface Label {
  file: string;
  expect: 'deliver' | 'encrypt' | 'block';
  why: string;
}

const labels = JSON.parse(fs.readFileSync(path.join(corpusDir, 'labels.json'), 'utf8')) as Label[];

t.test('every labelled corpus message gives its expected decision', async (t) => {
  t.ok(labels.length > 0, `${labels.length} labelled cases`);
  const files = labels.map((l) => path.join(corpusDir, l.file));
  const r = await run('/usr/bin/env', ['-u', 'NODE_OPTIONS', process.execPath, path.join(root, 'bin/zegel'), 'scan', '--json', ...files], { timeoutMs: 120_000, env: cleanEnv() });
  t.equal(r.code, 0, `exit code 0 (stderr: ${r.stderr.slice(0, 2000)})`);
  const lines = r.stdout.trimEnd().split('\n').filter(Boolean).map((line) => JSON.parse(line) as { file: string; decision?: string; error?: string; matches?: unknown[] });
  t.equal(lines.length, labels.length, 'one result line per file');
  labels.forEach((label, i) => {
    const line = lines[i];
    t.equal(line?.file, files[i], `${label.file}: in input order`);
    t.equal(line?.error, undefined, `${label.file}: readable`);
    t.equal(line?.decision, label.expect, `${label.file}: ${label.expect} (${label.why}); findings ${JSON.stringify(line?.matches)}`);
  });
});
