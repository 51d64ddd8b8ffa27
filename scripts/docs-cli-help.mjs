#!/usr/bin/env node
// Regenerates the "Help text of every command" part of docs/cli.md from
// `node bin/zegel <command> --help` (build first: npx tsc -p tsconfig.json).
// Everything above that heading is written by hand and left alone.
// Usage: node scripts/docs-cli-help.mjs [--check]   (--check: exit 1 when docs/cli.md is out of date)
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const doc = path.join(root, 'docs', 'cli.md');
const HEADING = '## Help text of every command';
const COMMANDS = [
  'start', 'check-config', 'hash-password', 'scan', 'rules lint',
  'recipients set', 'recipients import', 'recipients list', 'recipients remove',
  'messages list', 'messages show', 'messages revoke',
  'audit', 'audit verify', 'audit checkpoint', 'audit purge', 'audit public-key',
  'queue list', 'queue retry', 'queue delete',
  'keys generate', 'db migrate',
];

function help(args) {
  const out = execFileSync(process.execPath, [path.join(root, 'bin', 'zegel'), ...args, '--help'], { encoding: 'utf8', env: { ...process.env, COLUMNS: '80' } });
  return out.split('\n').map((l) => l.trimEnd()).join('\n').trimEnd();
}

const block = (title, text) => `### \`${title}\`\n\n\`\`\`text\n${text}\n\`\`\`\n`;
const parts = [
  `${HEADING}\n\nGenerated with \`node scripts/docs-cli-help.mjs\` (\`node bin/zegel <command> --help\`) after \`npx tsc -p tsconfig.json\`.\n`,
  block('zegel', help([])),
  ...COMMANDS.map((c) => block(`zegel ${c}`, help(c.split(' ')))),
];
const current = fs.readFileSync(doc, 'utf8');
const at = current.indexOf(HEADING);
if (at < 0) throw new Error(`${doc}: no "${HEADING}" heading`);
const next = `${current.slice(0, at)}${parts.join('\n')}`;
if (process.argv.includes('--check')) {
  if (next !== current) {
    console.error('docs/cli.md is out of date: run node scripts/docs-cli-help.mjs');
    process.exit(1);
  }
} else if (next !== current) {
  fs.writeFileSync(doc, next);
  console.log('docs/cli.md updated');
} else console.log('docs/cli.md is up to date');
