import fs from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { repoRoot } from './helpers/repo-root.js';

/**
 * The design lives in docs/ and is kept true to the code: every repository
 * path a page names (`src/store/events.ts`, `web/`, `bench/relay.mjs`, …)
 * exists. A file that moves without its docs fails here.
 */
const root = repoRoot;
const PAGES = ['README.md', ...fs.readdirSync(path.join(root, 'docs')).filter((f) => f.endsWith('.md')).map((f) => `docs/${f}`)];
const TOP = ['src', 'web', 'test', 'bench', 'scripts', 'rules', 'templates', 'docs', 'bin', 'deploy', '.ci'];

/** Repository paths named in a page: `src/…`-style tokens in code spans, code blocks and links. */
export function namedPaths(text: string): string[] {
  const found = new Set<string>();
  const pattern = new RegExp(`(?<![\\w./-])((?:${TOP.map((d) => d.replace('.', '\\.')).join('|')})/[\\w./*<>…-]*[\\w/*>])`, 'g');
  for (const match of text.matchAll(pattern)) {
    const p = match[1]!.replace(/[.]+$/, '');
    // placeholders and globs are not paths
    if (/[<>*]|\.\.\.|…/.test(p)) continue;
    found.add(p);
  }
  return [...found];
}

t.test('the extractor finds paths and skips placeholders', async (t) => {
  t.same(namedPaths('see `src/store/events.ts` and [x](../web/main.ts), and src/queue/.'), ['src/store/events.ts', 'src/queue/']);
  t.same(namedPaths('`spool/<queue id>.eml` and src/*.ts'), []);
});

for (const page of PAGES) {
  t.test(`${page} names only paths that exist`, async (t) => {
    const text = fs.readFileSync(path.join(root, page), 'utf8');
    const missing = namedPaths(text).filter((p) => !fs.existsSync(path.join(root, p)));
    t.same(missing, [], `${page}: every named path exists`);
  });
}
