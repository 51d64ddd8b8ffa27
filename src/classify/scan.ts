import fs from 'node:fs';
import { classify } from './engine.js';
import { extractMessage } from './extract/index.js';
import type { RuleSet } from './rules/load.js';
import type { ClassifyResult, ExtractLimits } from './types.js';

/**
 * `zegel scan` for one file: the result object of DESIGN.md ("Contracts →
 * zegel scan"), with `file` exactly as given. A file that cannot be read (or
 * whose extraction fails outright) gives `{file, error}` instead.
 */

export type ScanLine = ({ file: string } & ClassifyResult) | { file: string; error: string };

export interface ScanOptions {
  rules: RuleSet;
  optInTags: readonly string[];
  limits: ExtractLimits;
}

export async function scanFile(file: string, options: ScanOptions): Promise<ScanLine> {
  let handle: fs.promises.FileHandle;
  try {
    handle = await fs.promises.open(file, 'r');
    const stat = await handle.stat().catch(async (err: unknown) => {
      await handle.close();
      throw err;
    });
    if (!stat.isFile()) {
      await handle.close();
      return { file, error: stat.isDirectory() ? 'is a directory, not a message file' : 'not a regular file' };
    }
  } catch (err) {
    return { file, error: describe(err) };
  }
  const stream = handle.createReadStream({ autoClose: false });
  try {
    const result = await classify(extractMessage(stream, options.limits), options.rules, { optInTags: options.optInTags });
    // key order as in DESIGN.md
    return { file, decision: result.decision, subjectSensitive: result.subjectSensitive, matches: result.matches.map(({ rule, action, location, excerpt }) => ({ rule, action, location, excerpt })) };
  } catch (err) {
    return { file, error: describe(err) };
  } finally {
    stream.destroy();
    await handle.close().catch(() => undefined);
  }
}

function describe(err: unknown): string {
  const e = err as NodeJS.ErrnoException;
  switch (e.code) {
    case 'ENOENT':
      return 'no such file';
    case 'EACCES':
    case 'EPERM':
      return 'permission denied';
    case 'EISDIR':
      return 'is a directory, not a message file';
    default:
      return e.message || String(err);
  }
}
