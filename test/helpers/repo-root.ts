import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * The repository's root: the nearest directory above this file that holds
 * package.json. The same from test/helpers/repo-root.ts (run under tsx) and
 * from dist/test/helpers/repo-root.js (the compiled suite), so that tests
 * read docs/, rules/, templates/, bin/ and test/fixtures/ where they are.
 */
function findRoot(from: string): string {
  for (let dir = from; ; dir = path.dirname(dir)) {
    if (fs.existsSync(path.join(dir, 'package.json'))) return dir;
    if (path.dirname(dir) === dir) throw new Error(`no package.json above ${from}`);
  }
}

export const repoRoot = findRoot(path.dirname(fileURLToPath(import.meta.url)));

/** A path inside the repository, from its root: `repoPath('test', 'fixtures', 'corpus')`. */
export function repoPath(...parts: string[]): string {
  return path.join(repoRoot, ...parts);
}
