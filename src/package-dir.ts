import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * A directory shipped with the package (`rules`, `templates`, `dist/reader`),
 * found by walking up from this module's own place (src/ under tap, dist/src/
 * when built) to the folder that holds package.json and that directory.
 * Undefined when there is none.
 */
export function packageDir(name: string): string | undefined {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const candidate = path.join(dir, name);
    if (fs.existsSync(path.join(dir, 'package.json')) && fs.existsSync(candidate)) return candidate;
    const parent = path.dirname(dir);
    if (parent === dir) return undefined;
    dir = parent;
  }
}
