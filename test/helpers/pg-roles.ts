import pg from 'pg';
import type { Test } from 'tap';
import { openPgPool, type PgPool } from '../../src/store/pg/connect.js';
import { migratedDatabase } from './pg-database.js';
import type { PgServer } from './pg-server.js';

/**
 * What the role-grant tests run on: one PostgreSQL server per test file, a
 * database `roles` migrated by its owner, and login roles made members of
 * the group roles of migration 001 (docs/cluster.md, "Roles and grants"),
 * each with a pool of its own. Everything goes at the file's teardown.
 */

export type GroupRole = 'zegel_smtp' | 'zegel_worker' | 'zegel_reader';

export interface RoleDatabase {
  server: PgServer;
  url: string;
  /** The owner's pool (the superuser), on the migrated database. */
  owner: PgPool;
  /** Creates the login role `name` in `role` and opens a pool as it. */
  login(role: GroupRole, name: string): Promise<PgPool>;
}

export async function startRoleDatabase(t: Test): Promise<RoleDatabase> {
  const { server, url, pool: owner } = await migratedDatabase(t, 'roles', 'zegel-test-owner');
  const login = async (role: GroupRole, name: string): Promise<PgPool> => {
    await owner.query(`CREATE ROLE ${name} LOGIN PASSWORD '${server.password}' IN ROLE ${role}`);
    t.teardown(() => server.query(`DROP OWNED BY ${name}; DROP ROLE ${name}`, [], 'roles').catch(() => undefined));
    const pool = await openPgPool({ url: url.replace('postgres@', `${name}@`), passwordFile: server.passwordFile, applicationName: name });
    t.teardown(() => pool.close());
    return pool;
  };
  return { server, url, owner, login };
}

/** Whether `promise` fails with PostgreSQL's insufficient_privilege (42501). */
export async function denied(promise: Promise<unknown>): Promise<boolean> {
  const err = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  return err instanceof pg.DatabaseError && err.code === '42501';
}
