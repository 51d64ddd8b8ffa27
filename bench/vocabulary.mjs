#!/usr/bin/env node
// Vocabulary benchmark (issue 16): how well the shipped word lists and rules
// catch the special categories of personal data, on the labelled sets in
// test/fixtures/vocabulary/ (positive.jsonl: mails that must be encrypted;
// neutral.jsonl: ordinary business mail that must not). Run with
// `npm run bench:vocabulary` (it builds first).
//
// Each labelled mail ({id, category, lang, subject, body}) is written as a
// text/plain .eml into a temporary directory under os.tmpdir() (removed at
// the end) and classified by scanFile, the function behind `zegel scan`,
// with the shipped rules and the configuration defaults: the relay's path
// from MIME parsing to decision. Nothing is downloaded.
//
// It reports, to stdout and into bench/README.md (between the
// vocabulary-results markers; newest run first, the last five kept):
//   - per list: its terms (and how many are prefix terms);
//   - overall and per category: recall on the positive set (the share that
//     gets `encrypt`) and false encrypts on the neutral set;
//   - per rule: the positive and neutral mails it encrypted;
//   - every miss and every false encrypt by id, with the terms that fired;
//   - the held-out sets (BENCH_HELDOUT_DIR, when present), in a block of their
//     own: recall, false encrypts, per rule and per category; no ids.
//
// Knobs (environment):
//   BENCH_RULES_DIR   another rules directory (e.g. an older commit's rules/,
//                     for before/after figures)             (default: rules/)
//   BENCH_RULES_NAME  how the report names BENCH_RULES_DIR (e.g. "rules/ of
//                     commit d74059c")                (default: its path)
//   BENCH_LABEL       a few words for the run's heading     (default: none)
//   BENCH_SETS_DIR    where positive.jsonl and neutral.jsonl are
//                                              (default: test/fixtures/vocabulary)
//   BENCH_HELDOUT_DIR a held-out pair of sets, measured in the same run and
//                     reported in a block of its own, figures only (no target,
//                     no ids or texts: nobody tunes on it); skipped when the
//                     directory does not exist
//                                      (default: test/fixtures/vocabulary-heldout)
//   BENCH_NO_README   1: print only, leave bench/README.md alone
//   BENCH_KEEP        1: keep the temporary directory (its path is printed)
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { commandOutput, machine, runMain } from './common.mjs';
import { writeResults } from './results.mjs';

const SELF = fileURLToPath(import.meta.url);
const root = path.resolve(path.dirname(SELF), '..');
const README = path.join(root, 'bench', 'README.md');
const DIST = path.join(root, 'dist', 'src');
const SETS = path.resolve(root, process.env.BENCH_SETS_DIR || 'test/fixtures/vocabulary');
const HELDOUT = path.resolve(root, process.env.BENCH_HELDOUT_DIR || 'test/fixtures/vocabulary-heldout');
const LABEL = (process.env.BENCH_LABEL || '').trim();
const KEEP = process.env.BENCH_KEEP === '1';

const START = '<!-- vocabulary-results:start (bench/vocabulary.mjs writes below; newest run first) -->';
const END = '<!-- vocabulary-results:end -->';
const MARKERS = { start: START, end: END, heading: '# Vocabulary benchmark\n\n## Vocabulary results' };

function log(message) {
  process.stderr.write(`[bench] ${message}\n`);
}

/** The labelled mails of one set; throws on a line that is not a labelled mail. */
export function readSet(file) {
  const mails = [];
  const ids = new Set();
  fs.readFileSync(file, 'utf8')
    .split('\n')
    .forEach((line, i) => {
      if (!line.trim()) return;
      const m = JSON.parse(line);
      for (const key of ['id', 'category', 'lang', 'subject', 'body']) {
        if (typeof m[key] !== 'string') throw new Error(`${file}:${i + 1}: ${key} is not a string`);
      }
      if (ids.has(m.id)) throw new Error(`${file}:${i + 1}: id ${m.id} repeats`);
      ids.add(m.id);
      mails.push(m);
    });
  return mails;
}

/** A labelled mail as a message file: UTF-8 text/plain, the subject as an RFC 2047 encoded word. */
export function toEml(mail) {
  const subject = `=?UTF-8?B?${Buffer.from(mail.subject, 'utf8').toString('base64')}?=`;
  return [
    'From: Afzender <afzender@org.test>',
    'To: Ontvanger <ontvanger@example.com>',
    `Subject: ${subject}`,
    'Date: Fri, 04 Dec 2026 09:00:00 +0000',
    `Message-ID: <${mail.id.replace(/[^A-Za-z0-9._-]/g, '_')}@vocabulary.test>`,
    'MIME-Version: 1.0',
    'Content-Type: text/plain; charset=utf-8',
    'Content-Transfer-Encoding: 8bit',
    '',
    mail.body.replace(/\r?\n/g, '\r\n'),
    '',
  ].join('\r\n');
}

async function loadZegel(rulesDir) {
  const url = (p) => pathToFileURL(path.join(DIST, p)).href;
  const { loadRules, shippedRulesDir } = await import(url('classify/rules/load.js'));
  const { parseWordList } = await import(url('classify/detectors/index.js'));
  const { scanFile } = await import(url('classify/scan.js'));
  const { defaultConfig } = await import(url('config/load.js'));
  const dir = rulesDir ? path.resolve(rulesDir) : shippedRulesDir();
  const { config } = defaultConfig();
  const rules = loadRules(dir);
  return { dir, rules, parseWordList, scanFile, scanOptions: { rules, optInTags: config.classify.optInTags, limits: config.classify.limits } };
}

/** Per list file of the rules directory: terms and prefix terms, and the rule that reads it. */
function listStats(z) {
  const yaml = fs.readdirSync(z.dir).filter((f) => /\.ya?ml$/.test(f)).map((f) => fs.readFileSync(path.join(z.dir, f), 'utf8')).join('\n');
  const listsDir = path.join(z.dir, 'lists');
  return fs
    .readdirSync(listsDir)
    .filter((f) => f.endsWith('.txt'))
    .sort()
    .map((f) => {
      const name = f.slice(0, -4);
      const terms = z.parseWordList(fs.readFileSync(path.join(listsDir, f), 'utf8'));
      const rule = new RegExp(`- id: ([a-z0-9-]+)\\n(?:(?!\\n {2}- id:)[\\s\\S])*?list: ${name}\\b`).exec(yaml)?.[1] ?? '';
      return { name, rule, terms: terms.length, prefix: terms.filter((t) => t.endsWith('*')).length };
    });
}

/** Classifies every mail of a set; returns one result per mail. */
async function classifySet(z, mails, dir) {
  const out = [];
  for (const mail of mails) {
    const file = path.join(dir, `${mail.id.replace(/[^A-Za-z0-9._-]/g, '_')}.eml`);
    fs.writeFileSync(file, toEml(mail));
    const line = await z.scanFile(file, z.scanOptions);
    if ('error' in line) throw new Error(`${mail.id}: ${line.error}`);
    const encrypting = [...new Set(line.matches.filter((m) => m.action === 'encrypt').map((m) => m.rule))];
    out.push({ mail, decision: line.decision, matches: line.matches, encrypting });
  }
  return out;
}

const pct = (n, d) => (d ? `${((100 * n) / d).toFixed(1)} %` : '–');

/** `rule: term, term` per rule that fired (advice included), for the lists of misses and false encrypts. */
function fired(r) {
  const per = new Map();
  for (const m of r.matches) {
    const key = `${m.rule}${m.action === 'encrypt' ? '' : ` (${m.action})`}`;
    if (!per.has(key)) per.set(key, new Set());
    per.get(key).add(m.excerpt);
  }
  return [...per].map(([rule, terms]) => `${rule}: ${[...terms].join(', ')}`).join('; ') || 'nothing';
}

function byCategory(results) {
  const cats = new Map();
  for (const r of results) {
    const c = cats.get(r.mail.category) ?? { n: 0, encrypt: 0 };
    c.n++;
    if (r.decision === 'encrypt') c.encrypt++;
    cats.set(r.mail.category, c);
  }
  return [...cats].sort((a, b) => a[0].localeCompare(b[0]));
}

/** The machine, and the commit whose lists were measured (dirty: rules/ had uncommitted changes). */
function runMachine() {
  return {
    ...machine(),
    commit: commandOutput('git', ['rev-parse', '--short', 'HEAD'], 'unknown', { cwd: root }),
    // the last commit that changed the rules (the lists and rules a held-out figure belongs to)
    rulesCommit: commandOutput('git', ['log', '-1', '--format=%h', '--', 'rules'], 'unknown', { cwd: root }),
    dirty: commandOutput('git', ['status', '--porcelain', '--', 'rules'], '', { cwd: root }) !== '',
  };
}

function report(r, m) {
  const L = [];
  const { pos, neu } = r;
  const posEnc = pos.filter((x) => x.decision === 'encrypt').length;
  const neuEnc = neu.filter((x) => x.decision === 'encrypt').length;
  const rulesText = r.shipped ? 'the shipped rules/' : process.env.BENCH_RULES_NAME || `rules from ${r.dir}`;
  L.push(`### Run of ${m.date}${LABEL ? ` (${LABEL})` : ''}`, '');
  L.push(
    `Machine: ${m.nproc} cores (${m.model}), ${m.memGiB} GiB RAM, Linux ${m.kernel}; Node ${m.node}; shared with other work. ` +
      `Commit ${m.commit}${m.dirty ? ' with uncommitted changes in rules/' : ''}; ${rulesText} (${r.ruleCount} rules), the configuration defaults; ` +
      `classified by scanFile (\`zegel scan\`'s path) as text/plain .eml, ${r.seconds.toFixed(1)} s for ${pos.length + neu.length} mails.`,
    '',
  );
  L.push(
    `**Positive set** (${pos.length} mails): encrypt **${posEnc}** = recall **${pct(posEnc, pos.length)}** (target ≥ 98 %: ${posEnc >= 0.98 * pos.length ? 'met' : '**not met**'}). ` +
      `**Neutral set** (${neu.length} mails): encrypt **${neuEnc}** = false encrypts **${pct(neuEnc, neu.length)}** (target ≤ 2 %: ${neuEnc <= 0.02 * neu.length ? 'met' : '**not met**'}).`,
    '',
  );
  L.push('| list | rule | terms | of which prefix |', '|---|---|---:|---:|');
  for (const l of r.lists) L.push(`| \`${l.name}.txt\` | \`${l.rule}\` | ${l.terms} | ${l.prefix} |`);
  L.push(`| all | | ${r.lists.reduce((a, l) => a + l.terms, 0)} | ${r.lists.reduce((a, l) => a + l.prefix, 0)} |`, '');
  L.push(...setTables(r.ruleIds, pos, neu), '');
  const misses = pos.filter((x) => x.decision !== 'encrypt');
  L.push(`**Misses** (positive, not encrypted): ${misses.length}${misses.length ? '' : '.'}`);
  if (misses.length) L.push('', ...misses.map((x) => `- \`${x.mail.id}\` (${x.mail.category}, ${x.decision}): ${fired(x)}`));
  L.push('');
  const fps = neu.filter((x) => x.decision === 'encrypt');
  L.push(`**False encrypts** (neutral, encrypted): ${fps.length}${fps.length ? '' : '.'}`);
  if (fps.length) L.push('', ...fps.map((x) => `- \`${x.mail.id}\` (${x.mail.category}): ${fired(x)}`));
  if (r.heldout) L.push('', ...heldoutReport(r, m));
  return L.join('\n');
}

/**
 * The held-out sets: figures only, headed apart. No target is applied and no
 * mail is named (no ids, no terms that fired): the lists were not tuned on
 * these sets and the report must not invite it.
 */
function heldoutReport(r, m) {
  const { pos, neu, dir } = r.heldout;
  const posEnc = pos.filter((x) => x.decision === 'encrypt').length;
  const neuEnc = neu.filter((x) => x.decision === 'encrypt').length;
  const L = [];
  L.push(`#### Held-out sets (not tuned on)`, '');
  L.push(
    `\`${path.relative(root, dir) || dir}\`: written apart from the lists and not opened while they were made; ` +
      `measured with ${r.shipped ? `the rules/ of commit ${m.rulesCommit}${m.dirty ? ' plus uncommitted changes' : ''}` : process.env.BENCH_RULES_NAME || `the rules from ${r.dir}`}, in the same run as above. Figures only: no target, no mail named.`,
    '',
  );
  L.push(`**Positive** (${pos.length} mails): encrypt **${posEnc}** = recall **${pct(posEnc, pos.length)}**. **Neutral** (${neu.length} mails): encrypt **${neuEnc}** = false encrypts **${pct(neuEnc, neu.length)}**.`, '');
  L.push(...setTables(r.ruleIds, pos, neu));
  return L;
}

/** The per-rule and per-category tables of one positive and one neutral set (tuned or held out). */
function setTables(ruleIds, pos, neu) {
  const L = ['| rule | positive mails it encrypts | neutral mails it encrypts |', '|---|---:|---:|'];
  for (const rule of ruleIds) {
    const p = pos.filter((x) => x.encrypting.includes(rule)).length;
    const n = neu.filter((x) => x.encrypting.includes(rule)).length;
    if (p || n) L.push(`| \`${rule}\` | ${p} | ${n} |`);
  }
  L.push('', '| positive category | mails | encrypt | recall |', '|---|---:|---:|---:|');
  for (const [cat, c] of byCategory(pos)) L.push(`| ${cat} | ${c.n} | ${c.encrypt} | ${pct(c.encrypt, c.n)} |`);
  L.push('', '| neutral category | mails | encrypt | false encrypts |', '|---|---:|---:|---:|');
  for (const [cat, c] of byCategory(neu)) L.push(`| ${cat} | ${c.n} | ${c.encrypt} | ${pct(c.encrypt, c.n)} |`);
  return L;
}

let tmp;
function cleanup() {
  if (tmp && !KEEP) fs.rmSync(tmp, { recursive: true, force: true, maxRetries: 3 });
  else if (tmp) log(`kept ${tmp}`);
}

async function main() {
  if (!fs.existsSync(path.join(DIST, 'classify', 'scan.js'))) throw new Error('dist/ is missing: run npm run build first (npm run bench:vocabulary does)');
  const z = await loadZegel(process.env.BENCH_RULES_DIR);
  const positive = readSet(path.join(SETS, 'positive.jsonl'));
  const neutral = readSet(path.join(SETS, 'neutral.jsonl'));
  log(`${positive.length} positive and ${neutral.length} neutral mails; rules from ${z.dir} (${z.rules.rules.length} rules)`);
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'zegel-vocabulary-'));
  fs.mkdirSync(path.join(tmp, 'positive'));
  fs.mkdirSync(path.join(tmp, 'neutral'));
  const t0 = performance.now();
  const pos = await classifySet(z, positive, path.join(tmp, 'positive'));
  const neu = await classifySet(z, neutral, path.join(tmp, 'neutral'));
  const seconds = (performance.now() - t0) / 1000;
  let heldout;
  if (fs.existsSync(path.join(HELDOUT, 'positive.jsonl')) && fs.existsSync(path.join(HELDOUT, 'neutral.jsonl'))) {
    // a set that is still being written may end in half a line: read the whole files or nothing
    let hPos;
    let hNeu;
    try {
      hPos = readSet(path.join(HELDOUT, 'positive.jsonl'));
      hNeu = readSet(path.join(HELDOUT, 'neutral.jsonl'));
    } catch (err) {
      throw new Error(`held-out sets in ${HELDOUT} are not readable (${err.message}); BENCH_HELDOUT_DIR=/nonexistent runs without them`);
    }
    log(`held-out: ${hPos.length} positive and ${hNeu.length} neutral mails from ${HELDOUT} (figures only)`);
    fs.mkdirSync(path.join(tmp, 'heldout-positive'));
    fs.mkdirSync(path.join(tmp, 'heldout-neutral'));
    heldout = {
      dir: HELDOUT,
      pos: await classifySet(z, hPos, path.join(tmp, 'heldout-positive')),
      neu: await classifySet(z, hNeu, path.join(tmp, 'heldout-neutral')),
    };
  } else log(`no held-out sets in ${HELDOUT}: not measured`);
  const r = {
    heldout,
    pos,
    neu,
    seconds,
    dir: z.dir,
    shipped: path.resolve(z.dir) === path.join(root, 'rules'),
    ruleCount: z.rules.rules.length,
    ruleIds: z.rules.rules.map((x) => x.id),
    lists: listStats(z),
  };
  const section = report(r, runMachine());
  process.stdout.write(`${section}\n`);
  if (process.env.BENCH_NO_README === '1') log('BENCH_NO_README=1: bench/README.md left alone');
  else {
    writeResults(README, MARKERS, section);
    log('results written to bench/README.md');
  }
}

if (process.argv[1] && path.resolve(process.argv[1]) === SELF) await runMain(main, cleanup, log);
