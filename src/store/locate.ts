import fs from 'node:fs';
import path from 'node:path';
import { DB_FILE } from './db.js';

/**
 * Where the embedded store keeps its database in a data directory, without
 * opening (and so without creating) it: the admin commands (src/cli/context.ts)
 * refuse to invent a database where the relay has never run.
 */
export function databaseFile(dataDir: string): string {
  return path.join(dataDir, DB_FILE);
}

export function hasDatabase(dataDir: string): boolean {
  return fs.existsSync(databaseFile(dataDir));
}
