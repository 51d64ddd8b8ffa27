import fs from 'node:fs';
import path from 'node:path';
import t, { type Test } from 'tap';
import { cleanEnv } from './helpers/child-relay.js';
import { tempDir } from './helpers/relay.js';
import { run } from './helpers/smtp-client.js';
import { repoRoot } from './helpers/repo-root.js';

/*
 * The labelled vocabulary sets of issue 16 (test/fixtures/vocabulary/), each
 * mail written as a text/plain .eml and classified by the built
 * `zegel scan --json` with the shipped rules and defaults, the relay's path:
 * the neutral set (ordinary business mail) gets `encrypt` for at most 2 % of
 * its mails, the positive set (mail that reveals special-category or
 * criminal-law data) for at least 98 %. The sets are read, never edited.
 * bench/README.md ("Vocabulary benchmark") lists the remaining misses.
 */

const root = repoRoot;
const setsDir = path.join(root, 'test', 'fixtures', 'vocabulary');

const MIN_MAILS = 300;
const MAX_FALSE_ENCRYPT = 0.02;
const TARGET_RECALL = 0.98;
/** The category rules of rules/default.yaml (word lists and measured values): each encrypts some mail of the positive set. */
const CATEGORY_RULES = ['medical-words', 'measured-values', 'health-diagnosis', 'mental-health', 'youth-protection', 'youth-care-words', 'criminal-record', 'criminal-words', 'origin', 'religion-words', 'religion', 'political', 'union-membership', 'sexual-life', 'genetic-biometric'];

interface Labelled {
  id: string;
  category: string;
  lang: string;
  subject: string;
  body: string;
}

function readSet(name: string): Labelled[] {
  return fs
    .readFileSync(path.join(setsDir, `${name}.jsonl`), 'utf8')
    .split('\n')
    .filter((line) => line.trim())
    .map((line) => JSON.parse(line) as Labelled);
}

/** A labelled mail as a message file: UTF-8 text/plain, the subject as an RFC 2047 encoded word. */
function eml(m: Labelled): string {
  return [
    'From: Afzender <afzender@org.test>',
    'To: Ontvanger <ontvanger@example.com>',
    `Subject: =?UTF-8?B?${Buffer.from(m.subject, 'utf8').toString('base64')}?=`,
    'Date: Fri, 04 Dec 2026 09:00:00 +0000',
    `Message-ID: <${m.id}@vocabulary.test>`,
    'MIME-Version: 1.0',
    'Content-Type: text/plain; charset=utf-8',
    'Content-Transfer-Encoding: 8bit',
    '',
    m.body.replace(/\r?\n/g, '\r\n'),
    '',
  ].join('\r\n');
}

interface ScanLine {
  file: string;
  decision?: string;
  error?: string;
  matches?: Array<{ rule: string; action: string; excerpt: string }>;
}

/** Decisions of `zegel scan --json` for every mail of a set, by id. */
async function scanSet(t: Test, mails: Labelled[]): Promise<Map<string, ScanLine>> {
  const dir = tempDir(t, 'zegel-vocabulary-');
  const files = mails.map((m) => {
    const file = path.join(dir, `${m.id.replace(/[^A-Za-z0-9._-]/g, '_')}.eml`);
    fs.writeFileSync(file, eml(m));
    return file;
  });
  const r = await run('/usr/bin/env', ['-u', 'NODE_OPTIONS', process.execPath, path.join(root, 'bin/zegel'), 'scan', '--json', ...files], { timeoutMs: 240_000, env: cleanEnv() });
  t.equal(r.code, 0, `zegel scan exits 0 (stderr: ${r.stderr.slice(0, 2000)})`);
  const lines = r.stdout.trimEnd().split('\n').filter(Boolean).map((line) => JSON.parse(line) as ScanLine);
  t.equal(lines.length, mails.length, 'one result line per mail');
  const byId = new Map<string, ScanLine>();
  lines.forEach((line, i) => {
    t.equal(line.file, files[i], 'results in input order');
    t.equal(line.error, undefined, `${mails[i]!.id}: readable`);
    byId.set(mails[i]!.id, line);
  });
  return byId;
}

const fired = (line: ScanLine | undefined) => (line?.matches ?? []).map((m) => `${m.rule}:${m.excerpt}${m.action === 'encrypt' ? '' : ` (${m.action})`}`).join(', ') || 'nothing';

t.test('the neutral set: at most 2 % of ordinary business mail is encrypted', async (t) => {
  const mails = readSet('neutral');
  t.ok(mails.length >= MIN_MAILS, `${mails.length} neutral mails (at least ${MIN_MAILS})`);
  t.equal(new Set(mails.map((m) => m.id)).size, mails.length, 'ids are unique');
  const results = await scanSet(t, mails);
  const encrypted = mails.filter((m) => results.get(m.id)?.decision === 'encrypt');
  const share = encrypted.length / mails.length;
  t.ok(share <= MAX_FALSE_ENCRYPT, `false encrypts ${(100 * share).toFixed(1)} % (${encrypted.length} of ${mails.length}): ${encrypted.map((m) => `${m.id} [${fired(results.get(m.id))}]`).join('; ') || 'none'}`);
});

t.test('the positive set: at least 98 % of mail with special-category data is encrypted', async (t) => {
  const mails = readSet('positive');
  t.ok(mails.length >= MIN_MAILS, `${mails.length} positive mails (at least ${MIN_MAILS})`);
  t.equal(new Set(mails.map((m) => m.id)).size, mails.length, 'ids are unique');
  const results = await scanSet(t, mails);
  const encryptingRules = new Set([...results.values()].flatMap((line) => (line.matches ?? []).filter((m) => m.action === 'encrypt').map((m) => m.rule)));
  for (const rule of CATEGORY_RULES) t.ok(encryptingRules.has(rule), `rule ${rule} appears in zegel scan's matches, encrypting`);
  const missed = mails.filter((m) => results.get(m.id)?.decision !== 'encrypt');
  const recall = 1 - missed.length / mails.length;
  const misses = missed.map((m) => `${m.id} [${fired(results.get(m.id))}]`).join('; ') || 'none';
  t.ok(recall >= TARGET_RECALL, `recall ${(100 * recall).toFixed(1)} % (${mails.length - missed.length} of ${mails.length}) reaches ${100 * TARGET_RECALL} %; misses: ${misses}`);
});
