import type { Test } from 'tap';
import { openPgPool, type PgPool } from '../../src/store/pg/connect.js';
import { migrate } from '../../src/store/pg/migrate.js';
import { startPostgres, type PgServer } from './pg-server.js';

export interface MigratedDatabase {
  server: PgServer;
  url: string;
  /** A pool on the database as its owner (the superuser), after every migration. */
  pool: PgPool;
}

/**
 * A private PostgreSQL server for this test file with one fresh database
 * `name` at the current schema: server, database, pool and migrations, each
 * undone by the file's teardown. Call it before registering tests that use it
 * (a top-level await), so tap does not end the file first.
 */
export async function migratedDatabase(t: Test, name: string, applicationName = 'zegel-test'): Promise<MigratedDatabase> {
  const server = await startPostgres();
  t.teardown(() => server.cleanup());
  const url = await server.createDatabase(name);
  const pool = await openPgPool({ url, passwordFile: server.passwordFile, applicationName });
  t.teardown(() => pool.close());
  await migrate(pool);
  return { server, url, pool };
}
