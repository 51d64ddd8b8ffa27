import fs from 'node:fs';
import path from 'node:path';
import { defaultConfig, loadConfigFile } from '../config/load.js';
import type { Config } from '../config/schema.js';
import { ZegelError } from '../errors.js';
import { DB_FILE, openDb, type Db } from '../store/db.js';

/**
 * How admin commands (`recipients`, `messages`, `audit`, `queue`) find the
 * relay's state. Each says on stderr which data directory it reads, so an
 * operator who ran it in the wrong folder or with the wrong file sees it at
 * once; and none of them makes a database where there is none, apart from
 * `recipients set|import` with `--config` (filling the directory before the
 * relay's first start is a legitimate use).
 */

export interface AdminData {
  config: Config;
  /** The configuration file (absolute), or undefined for the embedded default. */
  source: string | undefined;
  dataDir: string;
}

/** Loads the configuration and prints `zegel: data directory DIR (…)` on stderr. */
export function loadAdminConfig(configFile: string | undefined): AdminData {
  const { config, source } = configFile ? loadConfigFile(configFile) : defaultConfig();
  const dataDir = config.data.dir;
  process.stderr.write(`zegel: data directory ${dataDir} (${source ? `data.dir of ${source}` : 'no --config: the embedded default ./data'})\n`);
  return { config, source, dataDir };
}

/**
 * Opens the database of `data`. When there is none yet: without --config it is
 * refused (ZEGEL_NO_DATABASE: the command most likely runs in the wrong folder);
 * with --config only when `create` is set (the command writes state the relay
 * reads, such as the recipient directory).
 */
export function openAdminDb(data: AdminData, options: { create?: boolean } = {}): Db {
  const file = path.join(data.dataDir, DB_FILE);
  if (!fs.existsSync(file)) {
    if (!data.source) {
      throw new ZegelError(
        'ZEGEL_NO_DATABASE',
        `no database at ${file}; pass --config FILE (the relay's configuration, whose data.dir holds it) or run the command in the folder the relay runs in`,
      );
    }
    if (!options.create) {
      throw new ZegelError('ZEGEL_NO_DATABASE', `no database at ${file} (data.dir of ${data.source}): the relay has not run with this configuration yet, so there is nothing to read or change`);
    }
  }
  return openDb(data.dataDir);
}

/** loadAdminConfig, then openAdminDb. */
export function openAdminData(configFile: string | undefined, options: { create?: boolean } = {}): AdminData & { db: Db } {
  const data = loadAdminConfig(configFile);
  return { ...data, db: openAdminDb(data, options) };
}
