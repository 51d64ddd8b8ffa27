#!/usr/bin/env node
// Runs the tap suite and closes with the ten slowest test files and one line:
// `tests: N passed, N failed` (N counts test files, as tap reports them at the top level).
//
// The suite runs from tsc's output (npm run build compiles test/ into
// dist/test/): one dist/test/….test.js per test/….test.ts, no TypeScript
// loader in the test processes. Without file arguments it runs exactly the
// compiled twins of the test files that exist in test/ (a test removed from
// test/ does not live on in dist/), and refuses when one is missing or older
// than its source (run `npm run build` first). With file arguments
// (`node scripts/run-tests.mjs test/x.test.ts`) tap runs those as given;
// .ts files get tsx (test/helpers/tsx-for-ts.mjs).
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { createInterface } from 'node:readline';

const args = process.argv.slice(2);
if (!args.some((a) => /\.[cm]?[jt]s$/.test(a))) {
  /** @param {string} dir @returns {string[]} */
  const tests = (dir) =>
    fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
      const p = path.join(dir, e.name);
      if (e.isDirectory()) return e.name === 'fixtures' ? [] : tests(p);
      return e.name.endsWith('.test.ts') ? [p] : [];
    });
  const stale = [];
  for (const source of tests('test').sort()) {
    const compiled = path.join('dist', source.replace(/\.ts$/, '.js'));
    if (!fs.existsSync(compiled) || fs.statSync(compiled).mtimeMs < fs.statSync(source).mtimeMs) stale.push(compiled);
    args.push(compiled);
  }
  // The cluster tests run three relay processes each, plus their own PostgreSQL and Redis: in name
  // order they would start side by side (tap runs 4 files at once) and starve each other and
  // everything else on 2 cores. Spread them evenly through the run instead.
  const heavy = args.filter((f) => /\/cluster-[^/]*\.test\.js$/.test(f));
  if (heavy.length > 1) {
    const light = args.filter((f) => !heavy.includes(f));
    const every = Math.max(1, Math.floor(light.length / heavy.length));
    args.length = 0;
    light.forEach((f, i) => {
      if (i % every === 0 && heavy.length) args.push(heavy.shift());
      args.push(f);
    });
    args.push(...heavy);
  }
  if (stale.length) {
    process.stderr.write(`missing or older than its source (run npm run build first): ${stale.join(', ')}\n`);
    process.stdout.write('tests: 0 passed, 1 failed\n');
    process.exit(1);
  }
}
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
