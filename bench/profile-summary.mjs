#!/usr/bin/env node
// Summarises a V8 .cpuprofile (node --cpu-prof, BENCH_CPU_PROF) for the
// before/after tables in bench/README.md. No dependencies.
//
//   node bench/profile-summary.mjs FILE.cpuprofile|DIR [--top N] [--markdown]
//   node bench/profile-summary.mjs --compare BEFORE AFTER [--per N] [--top N] [--markdown]
//
// A directory means every .cpuprofile in it (largest first; --cpu-prof writes
// one per thread). For each profile it prints:
//
//   (a) where the samples go by category: each sample's stack is walked from the
//       leaf (the running function) towards the root up to the first frame that
//       is the project's own code (src/<area>/ of this repository, also as built
//       under dist/src/; bench/, web/, bin/ likewise) or a package in
//       node_modules (named by its package, e.g. openpgp, nodemailer, mustache,
//       better-sqlite3); '(garbage collector)', '(idle)' and '(program)' are
//       their own categories, and a stack with neither (Node's own socket, fs and
//       timer callbacks) is 'node internals (no project frame)';
//   (b) where the samples go by project area: the same walk, but only the
//       project's own frames count (so mustache called by src/notify counts for
//       src/notify): which of our parts caused the time;
//   (c) the top N (default 15) functions by self time, with file:line
//       (1-based; the built .js file's line under dist/);
//   (d) the top N of the project's own functions by inclusive time (samples
//       with the function anywhere on the stack, counted once per sample):
//       which of our calls the time under them adds up to.
//
// --compare takes two profiles (files, or directories holding one main-thread
// profile each: the largest) and prints (a) and (c) side by side, as shares and,
// with --per N (messages in each run), as milliseconds of the main thread per
// message, which stay comparable when the two runs took different times.
//
// Samples are weighted by the time V8 recorded for them (the delta to the next
// sample), so a profile with an uneven sampling interval is still read right.

import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const SPECIAL = new Set(['(garbage collector)', '(idle)', '(program)']);

function usage(message) {
  if (message) process.stderr.write(`profile-summary: ${message}\n`);
  process.stderr.write('usage: node bench/profile-summary.mjs FILE.cpuprofile|DIR [--top N] [--markdown]\n       node bench/profile-summary.mjs --compare BEFORE AFTER [--per N] [--top N] [--markdown]\n');
  process.exit(2);
}

function parseArgs(argv) {
  const options = { top: 15, markdown: false, compare: false, per: undefined, inputs: [] };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === '--top') {
      const n = Number(argv[++i]);
      if (!Number.isInteger(n) || n < 1) usage('--top needs a whole number ≥ 1');
      options.top = n;
    } else if (arg === '--per') {
      const n = Number(argv[++i]);
      if (!Number.isInteger(n) || n < 1) usage('--per needs a whole number ≥ 1 (messages in each run)');
      options.per = n;
    } else if (arg === '--markdown') options.markdown = true;
    else if (arg === '--compare') options.compare = true;
    else if (arg === '-h' || arg === '--help') usage();
    else if (arg.startsWith('-')) usage(`unknown option ${arg}`);
    else options.inputs.push(arg);
  }
  if (!options.inputs.length) usage('no profile given');
  if (options.compare && options.inputs.length !== 2) usage('--compare takes exactly two profiles: before and after');
  return options;
}

function profilesOf(input) {
  const stat = fs.statSync(input);
  if (!stat.isDirectory()) return [input];
  const files = fs
    .readdirSync(input)
    .filter((f) => f.endsWith('.cpuprofile'))
    .map((f) => path.join(input, f));
  if (!files.length) usage(`no .cpuprofile in ${input}`);
  return files.sort((a, b) => fs.statSync(b).size - fs.statSync(a).size);
}

/** The path of a frame's script relative to the repository (dist/ dropped), or the URL as it is. */
function relative(url) {
  let file = url;
  if (file.startsWith('file://')) {
    try {
      file = fileURLToPath(file);
    } catch {
      return url;
    }
  }
  if (!path.isAbsolute(file)) return file;
  let rel = path.relative(root, file);
  if (rel.startsWith('..')) {
    // a profile made in another checkout: cut at the last dist/ or src/ folder it names
    const at = Math.max(file.lastIndexOf('/dist/'), file.lastIndexOf('/node_modules/'));
    rel = at === -1 ? file : file.slice(at + 1);
  }
  return rel.startsWith('dist/') ? rel.slice('dist/'.length) : rel;
}

/** 'openpgp', '@fastify/cookie', … for a file under node_modules; undefined otherwise. */
function packageOf(rel) {
  const at = rel.lastIndexOf('node_modules/');
  if (at === -1) return undefined;
  const parts = rel.slice(at + 'node_modules/'.length).split('/');
  return parts[0]?.startsWith('@') ? `${parts[0]}/${parts[1]}` : parts[0];
}

/** 'src/notify', 'src/relay.ts', 'bench', … for the project's own files; undefined otherwise. */
function areaOf(rel) {
  if (rel.includes('node_modules/')) return undefined;
  const parts = rel.split('/');
  if (parts[0] === 'src') return parts.length > 2 ? `src/${parts[1]}` : `src/${parts[1]?.replace(/\.js$/, '.ts')}`;
  if (['bench', 'web', 'bin', 'scripts', 'test'].includes(parts[0] ?? '')) return parts[0];
  return undefined;
}

export function summarise(profile) {
  const nodes = new Map();
  for (const node of profile.nodes) nodes.set(node.id, node);
  const parent = new Map();
  for (const node of profile.nodes) for (const child of node.children ?? []) parent.set(child, node.id);
  const info = new Map(); // node id → { rel, category, area }
  const frameOf = (id) => {
    let hit = info.get(id);
    if (hit) return hit;
    const frame = nodes.get(id).callFrame;
    const rel = frame.url ? relative(frame.url) : '';
    const pkg = rel ? packageOf(rel) : undefined;
    const area = rel ? areaOf(rel) : undefined;
    hit = { frame, rel, category: SPECIAL.has(frame.functionName) ? frame.functionName : (area ?? pkg), area, special: SPECIAL.has(frame.functionName) };
    info.set(id, hit);
    return hit;
  };
  const walk = new Map(); // leaf id → { category, area }
  const classify = (leaf) => {
    let known = walk.get(leaf);
    if (known) return known;
    let category;
    let area;
    for (let id = leaf; id !== undefined && !(category && area); id = parent.get(id)) {
      const f = frameOf(id);
      if (f.special) {
        category ??= f.category;
        area ??= f.category;
      }
      category ??= f.category;
      area ??= f.area;
    }
    known = { category: category ?? 'node internals (no project frame)', area: area ?? 'no project frame' };
    walk.set(leaf, known);
    return known;
  };

  const samples = profile.samples ?? [];
  const deltas = profile.timeDeltas ?? [];
  const byCategory = new Map();
  const byArea = new Map();
  const bySelf = new Map();
  const byInclusive = new Map();
  const inclusiveOf = new Map(); // leaf id → keys of the project functions on its stack
  const projectFunctions = (leaf) => {
    let keys = inclusiveOf.get(leaf);
    if (keys) return keys;
    const seen = new Set();
    for (let id = leaf; id !== undefined; id = parent.get(id)) {
      const f = frameOf(id);
      if (f.area) seen.add(`${f.frame.functionName || '(anonymous)'}\u0000${f.rel}:${f.frame.lineNumber + 1}`);
    }
    keys = [...seen];
    inclusiveOf.set(leaf, keys);
    return keys;
  };
  let total = 0;
  for (let i = 0; i < samples.length; i++) {
    // the time a sample stands for: until the next one (the last one gets the mean)
    const next = deltas[i + 1];
    const weight = typeof next === 'number' && next >= 0 ? next : (profile.endTime - profile.startTime) / Math.max(1, samples.length);
    const leaf = samples[i];
    const { category, area } = classify(leaf);
    byCategory.set(category, (byCategory.get(category) ?? 0) + weight);
    byArea.set(area, (byArea.get(area) ?? 0) + weight);
    const f = frameOf(leaf);
    const name = f.frame.functionName || '(anonymous)';
    const where = f.rel ? `${f.rel}:${f.frame.lineNumber + 1}` : '';
    const key = `${name}\u0000${where}`;
    bySelf.set(key, (bySelf.get(key) ?? 0) + weight);
    for (const k of projectFunctions(leaf)) byInclusive.set(k, (byInclusive.get(k) ?? 0) + weight);
    total += weight;
  }
  const sorted = (map) => [...map.entries()].sort((a, b) => b[1] - a[1]);
  return {
    totalMs: total / 1000,
    samples: samples.length,
    categories: sorted(byCategory).map(([name, us]) => ({ name, ms: us / 1000, share: us / total })),
    areas: sorted(byArea).map(([name, us]) => ({ name, ms: us / 1000, share: us / total })),
    functions: sorted(bySelf).map(([key, us]) => {
      const [name, where] = key.split('\u0000');
      return { name, where, ms: us / 1000, share: us / total };
    }),
    inclusive: sorted(byInclusive).map(([key, us]) => {
      const [name, where] = key.split('\u0000');
      return { name, where, ms: us / 1000, share: us / total };
    }),
  };
}

const pct = (share) => `${(share * 100).toFixed(1)}%`;

function print(file, summary, { top, markdown }) {
  const out = [];
  out.push(`${markdown ? '### ' : ''}${relative(path.resolve(file))}: ${summary.samples} samples, ${(summary.totalMs / 1000).toFixed(2)} s`);
  out.push('');
  const table = (title, rows, columns) => {
    if (markdown) {
      out.push(`| ${title} | ${columns.join(' | ')} |`, `|---|${columns.map(() => '---:').join('|')}|`);
      for (const row of rows) out.push(`| ${row[0]} | ${row.slice(1).join(' | ')} |`);
    } else {
      const width = Math.max(title.length, ...rows.map((r) => r[0].length));
      out.push(`${title.padEnd(width)}  ${columns.map((c) => c.padStart(9)).join(' ')}`);
      for (const row of rows) out.push(`${row[0].padEnd(width)}  ${row.slice(1).map((c) => String(c).padStart(9)).join(' ')}`);
    }
    out.push('');
  };
  table('category (first project or package frame)', summary.categories.map((c) => [c.name, pct(c.share), c.ms.toFixed(0)]), ['share', 'ms']);
  table('project area (first project frame)', summary.areas.map((c) => [c.name, pct(c.share), c.ms.toFixed(0)]), ['share', 'ms']);
  table(
    `top ${top} functions by self time`,
    summary.functions.slice(0, top).map((f) => [(markdown ? `\`${f.name}\` ${f.where}` : `${f.name}  ${f.where}`).trim(), pct(f.share), f.ms.toFixed(0)]),
    ['share', 'ms'],
  );
  table(
    `top ${top} project functions by inclusive time`,
    summary.inclusive.slice(0, top).map((f) => [markdown ? `\`${f.name}\` ${f.where}` : `${f.name}  ${f.where}`, pct(f.share), f.ms.toFixed(0)]),
    ['share', 'ms'],
  );
  process.stdout.write(`${out.join('\n')}\n`);
}

function load(file) {
  let profile;
  try {
    profile = JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch (err) {
    usage(`${file}: not a readable .cpuprofile (${err.message})`);
  }
  if (!Array.isArray(profile.nodes) || !Array.isArray(profile.samples)) usage(`${file}: not a .cpuprofile (no nodes and samples)`);
  return profile;
}

/** Two profiles side by side: categories and top self-time functions, as shares and (with `per`) ms per message. */
function compare([beforeFile, afterFile], { top, markdown, per }) {
  const [before, after] = [summarise(load(beforeFile)), summarise(load(afterFile))];
  const out = [];
  const cell = (row) => (row ? (per ? `${pct(row.share)} (${(row.ms / per).toFixed(2)} ms)` : pct(row.share)) : '—');
  const table = (title, names, pick) => {
    const rows = names.map((name) => [name, cell(pick(before, name)), cell(pick(after, name))]);
    if (markdown) {
      out.push(`| ${title} | before | after |`, '|---|---:|---:|');
      for (const row of rows) out.push(`| ${row.join(' | ')} |`);
    } else {
      const width = Math.max(title.length, ...rows.map((r) => r[0].length));
      out.push(`${title.padEnd(width)}  ${'before'.padStart(20)} ${'after'.padStart(20)}`);
      for (const row of rows) out.push(`${row[0].padEnd(width)}  ${row[1].padStart(20)} ${row[2].padStart(20)}`);
    }
    out.push('');
  };
  const seconds = (s) => `${(s.totalMs / 1000).toFixed(2)} s${per ? `, ${(s.totalMs / per).toFixed(2)} ms per message` : ''}`;
  out.push(`before: ${relative(path.resolve(beforeFile))} (${seconds(before)})`, `after: ${relative(path.resolve(afterFile))} (${seconds(after)})`, '');
  const categories = [...new Set([...before.categories, ...after.categories].filter((c) => c.share >= 0.005).map((c) => c.name))];
  categories.sort((a, b) => (before.categories.find((c) => c.name === b)?.ms ?? 0) - (before.categories.find((c) => c.name === a)?.ms ?? 0));
  table('category (first project or package frame)', categories, (s, name) => s.categories.find((c) => c.name === name));
  const label = (f) => (markdown ? `\`${f.name}\` ${f.where}` : `${f.name}  ${f.where}`).trim();
  const functions = [...new Set([...before.functions.slice(0, top), ...after.functions.slice(0, top)].map(label))];
  const find = (s, name) => s.functions.find((f) => label(f) === name);
  functions.sort((a, b) => (find(before, b)?.ms ?? 0) - (find(before, a)?.ms ?? 0));
  table(`functions by self time (top ${top} of either)`, functions, find);
  process.stdout.write(`${out.join('\n')}\n`);
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const options = parseArgs(process.argv.slice(2));
  if (options.compare) {
    compare(options.inputs.map((input) => profilesOf(input)[0]), options);
  } else {
    for (const input of options.inputs) for (const file of profilesOf(input)) print(file, summarise(load(file)), options);
  }
}
