import path from 'node:path';
import { packageDir } from '../package-dir.js';

/** The built page bundle (`npm run build` writes it): `<package>/dist/reader`. */
export function readerAssetsDir(): string {
  return packageDir(path.join('dist', 'reader')) ?? path.resolve('dist', 'reader');
}
