#!/usr/bin/env node
// Builds the recipient's reader page into dist/reader/: index.html, reader.js,
// reader.css, and reader-frame.css (the base style of the sandboxed frame that
// shows HTML bodies) (fixed names; the server serves /m/:id → index.html and
// /assets/<file> → dist/reader/<file>). Type-checks web/ (the browser code:
// a top-level folder with its own tsconfig, DOM, strict) first. No network:
// everything comes from node_modules.
//
//   node scripts/build-reader.mjs [--outdir DIR] [--no-typecheck]
import { spawnSync } from 'node:child_process';
import { copyFile, mkdir, rm } from 'node:fs/promises';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as esbuild from 'esbuild';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const web = path.join(root, 'web');
const args = process.argv.slice(2);
const outIndex = args.indexOf('--outdir');
const outdir = outIndex >= 0 && args[outIndex + 1] ? path.resolve(args[outIndex + 1]) : path.join(root, 'dist/reader');

if (!args.includes('--no-typecheck')) {
  const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc');
  const r = spawnSync(process.execPath, [tsc, '-p', path.join(web, 'tsconfig.json'), '--noEmit'], { cwd: root, stdio: 'inherit' });
  if (r.status !== 0) {
    console.error('build-reader: type errors in web/');
    process.exit(r.status ?? 1);
  }
}

await rm(outdir, { recursive: true, force: true });
await mkdir(outdir, { recursive: true });

const result = await esbuild.build({
  absWorkingDir: root,
  entryPoints: [
    { in: path.join(web, 'main.ts'), out: 'reader' },
    // the sender's status page (/s/:id → status.html)
    { in: path.join(web, 'status/main.ts'), out: 'status' },
    { in: path.join(web, 'reader.css'), out: 'reader' },
    { in: path.join(web, 'frame.css'), out: 'reader-frame' },
  ],
  outdir,
  bundle: true,
  format: 'esm',
  platform: 'browser',
  target: 'es2020',
  minify: true,
  splitting: false,
  sourcemap: false,
  // the licences of OpenPGP.js and DOMPurify stay in the served file
  legalComments: 'eof',
  charset: 'utf8',
  loader: { '.json': 'json' },
  tsconfig: path.join(web, 'tsconfig.json'),
  define: { 'process.env.NODE_ENV': '"production"' },
  logLevel: 'warning',
  metafile: true,
});
if (result.errors.length > 0) process.exit(1);

await copyFile(path.join(web, 'index.html'), path.join(outdir, 'index.html'));
await copyFile(path.join(web, 'status/status.html'), path.join(outdir, 'status.html'));

const outputs = Object.entries(result.metafile.outputs).map(([file, o]) => `${path.relative(root, path.resolve(root, file))} ${(o.bytes / 1024).toFixed(0)} KiB`);
console.log(`build-reader: ${outputs.join(', ')}, ${path.relative(root, path.join(outdir, 'index.html'))}`);
