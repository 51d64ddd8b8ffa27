import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/** The built page bundle (`npm run build` writes it): `<package>/dist/reader`. */
export function readerAssetsDir(): string {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  for (;;) {
    if (fs.existsSync(path.join(dir, 'package.json'))) return path.join(dir, 'dist', 'reader');
    const parent = path.dirname(dir);
    if (parent === dir) return path.resolve('dist', 'reader');
    dir = parent;
  }
}
