import fs from 'node:fs';
import path from 'node:path';
import { repoRoot } from './repo-root.js';

/**
 * The configuration blocks of docs/integration.md, read at test time so that
 * tests run what an operator copies. A block is the first fenced code block
 * after an HTML comment `<!-- test:NAME -->` (main.cf, master.cf,
 * zegel.yaml, check). Tests change only what they must to run next to other
 * tests, with `substitute`: the documented port numbers and paths.
 */

const root = repoRoot;
export const INTEGRATION_DOC = path.join(root, 'docs/integration.md');

/** The text of the fenced block marked `<!-- test:NAME -->` (without the fences), or an error naming what is missing. */
export function docBlock(name: string, doc = fs.readFileSync(INTEGRATION_DOC, 'utf8')): string {
  const marker = `<!-- test:${name} -->`;
  // on a line of its own (the doc may mention a marker in running text)
  const lines = [...doc.matchAll(new RegExp(`^${marker.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}[ \t]*$`, 'gm'))];
  if (lines.length !== 1) throw new Error(`docs/integration.md has ${lines.length} lines ${marker}; want exactly one`);
  const match = /^[ \t]*```[^\n]*\n([\s\S]*?)^[ \t]*```[ \t]*$/m.exec(doc.slice(lines[0]!.index! + marker.length));
  if (!match) throw new Error(`no fenced code block after ${marker} in docs/integration.md`);
  return match[1]!;
}

/**
 * Replaces the documented port numbers (`:2525`, `[127.0.0.1]:2525`, `smtp://127.0.0.1:10026`: a
 * number right after a colon, not part of a longer number) and exact paths
 * (`/var/lib/zegel`, not `/var/lib/zegel-outbox`) with the test's own. Every
 * one must occur, so that a doc that changes a documented value makes the
 * test say so instead of running something else.
 */
export function substitute(text: string, ports: Record<string, number>, paths: Record<string, string> = {}, what = 'block'): string {
  let out = text;
  const replace = (pattern: RegExp, to: string, from: string) => {
    if (!pattern.test(out)) throw new Error(`the doc's ${what} no longer contains ${from}`);
    out = out.replace(pattern, to);
  };
  for (const [from, to] of Object.entries(ports)) replace(new RegExp(`(?<=:)${from}(?!\\d)`, 'g'), String(to), `port ${from}`);
  for (const [from, to] of Object.entries(paths)) replace(new RegExp(`${from.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}(?![\\w-])`, 'g'), to, from);
  return out;
}

/** A block as lines for Postfix's main.cf or master.cf (blank lines dropped; comments kept). */
export function cfLines(block: string): string[] {
  return block.split('\n').filter((line) => line.trim() !== '');
}
