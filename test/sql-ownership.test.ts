import fs from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { repoRoot } from './helpers/repo-root.js';

/**
 * One owner per table (docs/architecture.md, "Store"): SQL lives only in
 * src/store/ (the repositories), src/queue/ (the jobs table) and src/audit/
 * (checkpoints; reading the chain to verify and export it). Everything else
 * reaches data through the repositories' async interface, so a second store
 * driver can replace SQLite without touching the callers.
 */
const root = repoRoot;
const OWNERS = ['src/store/', 'src/queue/', 'src/audit/'];

interface Finding {
  file: string;
  line: number;
  what: string;
  text: string;
}

const RULES: Array<{ what: string; pattern: RegExp }> = [
  { what: 'prepares SQL', pattern: /\.prepare\s*\(/ },
  { what: 'runs a better-sqlite3 transaction', pattern: /\bdb\.transaction\s*\(|\.inTransaction\b/ },
  { what: 'imports better-sqlite3', pattern: /from\s+['"]better-sqlite3['"]/ },
  { what: 'opens the database file itself', pattern: /\bopenDb\s*\(|from\s+['"][./]*store\/db\.js['"]/ },
  { what: 'holds SQL text', pattern: /['"`]\s*(SELECT\s+[\w*(]|INSERT\s+(OR\s+\w+\s+)?INTO\s|UPDATE\s+\w+\s+SET\s|DELETE\s+FROM\s|CREATE\s+(TABLE|INDEX|TRIGGER)\s|PRAGMA\s)/ },
];

/** The findings in one file's text; empty for files of the owning folders. */
export function scan(file: string, text: string): Finding[] {
  if (OWNERS.some((dir) => file.startsWith(dir))) return [];
  const findings: Finding[] = [];
  text.split('\n').forEach((line, i) => {
    const code = line.replace(/\/\/.*$/, '');
    if (/^\s*(\*|\/\*)/.test(code)) return;
    for (const rule of RULES) {
      if (rule.pattern.test(code)) findings.push({ file, line: i + 1, what: rule.what, text: line.trim().slice(0, 120) });
    }
  });
  return findings;
}

function sources(dir: string): string[] {
  return fs.readdirSync(path.join(root, dir), { withFileTypes: true }).flatMap((entry) => {
    const rel = `${dir}/${entry.name}`;
    if (entry.isDirectory()) return sources(rel);
    return entry.name.endsWith('.ts') ? [rel] : [];
  });
}

t.test('the scanner catches every way of reaching the database outside the owners', async (t) => {
  t.match(scan('src/reader/x.ts', "const row = db.prepare('SELECT 1').get();"), [{ what: 'prepares SQL' }]);
  t.match(scan('src/cli/x.ts', "  const q = `UPDATE jobs SET state = 'ready'`;"), [{ what: 'holds SQL text' }]);
  t.match(scan('src/cli/x.ts', "import Database from 'better-sqlite3';"), [{ what: 'imports better-sqlite3' }]);
  t.match(scan('src/cli/x.ts', "import { openDb } from '../store/db.js';"), [{ what: 'opens the database file itself' }]);
  t.match(scan('src/secure/x.ts', '  this.#db.transaction(() => work())();'), []);
  t.match(scan('src/secure/x.ts', '  return db.transaction(() => work())();'), [{ what: 'runs a better-sqlite3 transaction' }]);
  t.same(scan('src/store/x.ts', "db.prepare('SELECT 1')"), [], 'the owners may');
  t.same(scan('src/queue/x.ts', "db.prepare('DELETE FROM jobs WHERE id = ?')"), []);
  t.same(scan('src/reader/x.ts', '// a comment that says SELECT * FROM nothing'), [], 'comments are not code');
  t.same(scan('src/reader/x.ts', "const m = /^SELECT/.exec(text); const words = 'select a method';"), [], 'regexes and prose are not SQL');
});

t.test('no SQL outside src/store, src/queue and src/audit', async (t) => {
  const files = sources('src');
  t.ok(files.length > 100, `scanned ${files.length} source files`);
  const findings = files.flatMap((file) => scan(file, fs.readFileSync(path.join(root, file), 'utf8')));
  t.same(
    findings.map((f) => `${f.file}:${f.line}: ${f.what}: ${f.text}`),
    [],
    'every table is reached through its repository',
  );
});
