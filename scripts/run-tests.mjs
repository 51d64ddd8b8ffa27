#!/usr/bin/env node
// Runs the tap suite and closes with the ten slowest test files and one line:
// `tests: N passed, N failed` (N counts test files, as tap reports them at the top level).
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
/** @type {Array<{ file: string, ms: number }>} */
const times = [];
const rl = createInterface({ input: child.stdout });
rl.on('line', (line) => {
  // passing assertions inside a file are not echoed; everything else is
  if (!/^\s+ok \d+ /.test(line)) process.stdout.write(`${line}\n`);
  const top = /^(not )?ok \d+ - (\S+)(?:.*# time=([\d.]+)ms)?/.exec(line);
  if (!top) return;
  if (top[1]) failed++;
  else passed++;
  if (top[3]) times.push({ file: top[2], ms: Number(top[3]) });
});
child.on('close', (code) => {
  if (code !== 0 && failed === 0) failed = 1;
  if (times.length) {
    times.sort((a, b) => b.ms - a.ms);
    process.stdout.write('# slowest test files:\n');
    for (const { file, ms } of times.slice(0, 10)) process.stdout.write(`#   ${(ms / 1000).toFixed(1).padStart(6)} s  ${file}\n`);
  }
  process.stdout.write(`tests: ${passed} passed, ${failed} failed\n`);
  process.exit(code ?? 1);
});
