#!/usr/bin/env node
// Runs the tap suite and closes with one line: `tests: N passed, N failed`
// (N counts test files, as tap reports them at the top level).
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';

const args = process.argv.slice(2);
const child = spawn(process.execPath, ['node_modules/tap/dist/esm/run.mjs', '--reporter=tap', ...args], {
  stdio: ['inherit', 'pipe', 'inherit'],
  // Postfix's smtp-sink and smtp-source live in /usr/sbin
  env: { ...process.env, PATH: `${process.env.PATH ?? ''}:/usr/sbin:/sbin` },
});
let passed = 0;
let failed = 0;
const rl = createInterface({ input: child.stdout });
rl.on('line', (line) => {
  // passing assertions inside a file are not echoed; everything else is
  if (!/^\s+ok \d+ /.test(line)) process.stdout.write(`${line}\n`);
  if (/^ok \d+ /.test(line)) passed++;
  else if (/^not ok \d+ /.test(line)) failed++;
});
child.on('close', (code) => {
  if (code !== 0 && failed === 0) failed = 1;
  process.stdout.write(`tests: ${passed} passed, ${failed} failed\n`);
  process.exit(code ?? 1);
});
