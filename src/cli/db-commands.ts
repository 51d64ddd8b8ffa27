import type { Command } from 'commander';
import { loadConfigFile } from '../config/load.js';
import { ZegelError } from '../errors.js';
import { withWork } from './context.js';

/**
 * `zegel db migrate --config FILE`: applies the PostgreSQL schema migrations
 * this Zegel knows to the database `store.url` names (with the password from
 * `store.passwordFile`), under the migration lock, so it may run while nodes
 * start (src/store/pg/migrate.ts). It connects as the configured user, which
 * must own the schema's objects (and create the group roles zegel_smtp,
 * zegel_worker and zegel_reader the first time, unless a DBA made them).
 *
 * Exit codes (src/cli/context.ts): 0 applied or already current; 1 the
 * database is unavailable, newer than this Zegel, or its applied schema
 * differs (ZEGEL_STORE_UNAVAILABLE, ZEGEL_SCHEMA_NEWER, ZEGEL_SCHEMA_CHECKSUM),
 * or a migration failed; 2 the configuration is invalid or not a PostgreSQL one.
 */
export function registerDbCommands(program: Command): void {
  const db = program.command('db').description('the PostgreSQL database of a cluster (store.driver: postgres)');
  db.command('migrate')
    .description('apply the PostgreSQL schema migrations (nodes starting at the same time wait for it)')
    .requiredOption('-c, --config <file>', 'YAML configuration file')
    .action(async (options: { config: string }) => {
      const { config, source } = loadConfigFile(options.config);
      const { store } = config;
      if (store.driver !== 'postgres' || !store.url) {
        throw new ZegelError('ZEGEL_CLI_INPUT', `${source ?? options.config}: store.driver is ${store.driver}; zegel db migrate is for store.driver postgres (SQLite migrates itself when opened)`);
      }
      const url = store.url;
      await withWork(async () => {
        // loaded here, not at start-up: node-postgres costs every other command ~100 ms
        const [{ openPgPool }, { migrate }] = await Promise.all([import('../store/pg/connect.js'), import('../store/pg/migrate.js')]);
        const pool = await openPgPool({ url, passwordFile: store.passwordFile, applicationName: 'zegel-migrate', max: 1 });
        try {
          const result = await migrate(pool);
          for (const m of result.applied) process.stdout.write(`PostgreSQL ${pool.where}: applied ${m.version}-${m.name}\n`);
          process.stdout.write(`PostgreSQL ${pool.where}: schema at version ${result.version}${result.applied.length ? '' : ', nothing to apply'}\n`);
        } finally {
          await pool.close();
        }
      });
    });
}
