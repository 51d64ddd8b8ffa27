import t from 'tap';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { repoRoot } from './helpers/repo-root.js';

const root = repoRoot;
const outdir = mkdtempSync(path.join(tmpdir(), 'zegel-reader-build-'));
t.teardown(() => rmSync(outdir, { recursive: true, force: true }));

// the real build (type check included), into a temporary directory
const build = spawnSync(process.execPath, ['scripts/build-reader.mjs', '--outdir', outdir], { cwd: root, encoding: 'utf8' });

t.test('the build succeeds and writes the fixed files', async (t) => {
  t.equal(build.status, 0, `build output: ${build.stdout}${build.stderr}`);
  t.same(readdirSync(outdir).sort(), ['index.html', 'reader-frame.css', 'reader.css', 'reader.js', 'status.html', 'status.js']);
});

t.test('status.html: external assets only, no inline code, no absolute URLs', async (t) => {
  const html = readFileSync(path.join(outdir, 'status.html'), 'utf8');
  t.match(html, /<script type="module" src="\/assets\/status\.js"><\/script>/);
  for (const [, , body] of html.matchAll(/<script\b([^>]*)>([\s\S]*?)<\/script>/gi)) t.equal(body?.trim(), '', 'no inline script');
  t.notMatch(html, /<style\b|\sstyle\s*=|\son[a-z]+\s*=|javascript:/i, 'no inline style or handler');
  t.match(html, /<noscript>[\s\S]*JavaScript/);
  t.notMatch(html, /https?:\/\//, 'no absolute URLs at all');
});

t.test('index.html: Dutch, viewport, external assets only, noscript in both languages', async (t) => {
  const html = readFileSync(path.join(outdir, 'index.html'), 'utf8');
  t.match(html, /<html lang="nl">/);
  t.match(html, /<meta name="viewport" content="width=device-width, initial-scale=1">/);
  t.match(html, /<link rel="stylesheet" href="\/assets\/reader\.css">/);
  t.match(html, /<script type="module" src="\/assets\/reader\.js"><\/script>/);
  const scripts = [...html.matchAll(/<script\b([^>]*)>([\s\S]*?)<\/script>/gi)];
  t.equal(scripts.length, 1, 'one script element');
  for (const [, attrs, body] of scripts) {
    t.match(attrs, /\bsrc="\/assets\//, 'scripts come from /assets');
    t.equal(body?.trim(), '', 'no inline script');
  }
  t.notMatch(html, /<style\b/i, 'no style element');
  t.notMatch(html, /\sstyle\s*=/i, 'no style attribute');
  t.notMatch(html, /\son[a-z]+\s*=/i, 'no inline event handler');
  t.notMatch(html, /javascript:/i);
  const noscript = /<noscript>([\s\S]*)<\/noscript>/.exec(html)?.[1] ?? '';
  t.match(noscript, /JavaScript/);
  t.match(noscript, /lang="nl"[\s\S]*JavaScript is nodig/);
  t.match(noscript, /lang="en"[\s\S]*JavaScript is needed/);
  t.match(noscript, /sleutel/);
  t.match(noscript, /key/);
  t.notMatch(html, /https?:\/\//, 'no absolute URLs at all');
});

// URLs that appear in library code as identifiers and are never fetched
const NOT_FETCHED = new Set([
  'http://www.w3.org/1999/xhtml', // DOMPurify: namespace URIs
  'http://www.w3.org/2000/svg',
  'http://www.w3.org/1998/Math/MathML',
  'https://openpgpjs.org', // OpenPGP.js: default armor comment string (the page never armors)
]);

function stripComments(code: string): string {
  // legal comments (licences) that esbuild keeps at the end of the file
  return code.replace(/\/\*[\s\S]*?\*\//g, '').replace(/^\s*\/\/.*$/gm, '');
}

t.test('the bundles name no third-party host', async (t) => {
  for (const bundle of ['reader.js', 'status.js']) {
    const js = stripComments(readFileSync(path.join(outdir, bundle), 'utf8'));
    const urls = [...js.matchAll(/https?:\/\/[^\s"'`)\\]*/g)].map((m) => m[0]);
    const unexpected = urls.filter((u) => !NOT_FETCHED.has(u));
    t.same(unexpected, [], `${bundle}: only namespace identifiers and comment strings`);
    t.notMatch(js, /\bimport\s*\(/, `${bundle}: no dynamic imports, one file, nothing loaded later`);
    t.notMatch(js, /sourceMappingURL/);
  }
  for (const sheet of ['reader.css', 'reader-frame.css']) {
    const css = readFileSync(path.join(outdir, sheet), 'utf8');
    t.notMatch(css, /url\(/, `${sheet} loads nothing (no fonts, no images)`);
    t.notMatch(css, /@import/);
  }
});
