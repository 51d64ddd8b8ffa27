import path from 'node:path';
import t from 'tap';
import { repoRoot } from './helpers/repo-root.js';
import { run } from './helpers/smtp-client.js';

// docs/cli.md's "Help text of every command" is what the built CLI prints:
// a changed description, option or help text without a regenerated doc fails
// here (it drifted once unnoticed: 62cb4d3 changed messages show's help).
t.test('docs/cli.md carries the help text the CLI prints', async (t) => {
  // without tap's NODE_OPTIONS loader, which cannot run the extensionless bin/zegel
  const result = await run('/usr/bin/env', ['-u', 'NODE_OPTIONS', process.execPath, path.join(repoRoot, 'scripts', 'docs-cli-help.mjs'), '--check'], { timeoutMs: 120_000 });
  t.equal(result.code, 0, `${result.stdout}${result.stderr}`.trim() || 'up to date');
});
