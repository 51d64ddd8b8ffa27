import { createHash } from 'node:crypto';
import type pg from 'pg';
import { ZegelError } from '../../errors.js';
import type { Logger } from '../../log.js';
import type { PgPool } from './connect.js';
import { pgStoreError } from './errors.js';
import { PG_MIGRATIONS, type PgMigration } from './migrations/index.js';

/**
 * Applies the PostgreSQL schema migrations (src/store/pg/migrations/).
 *
 * One node at a time: the migrator takes a session-level advisory lock
 * (`pg_advisory_lock(MIGRATION_LOCK)`) before it even looks, so nodes that
 * start together queue behind the first one, and each finds the versions the
 * one before it applied. Under the lock it makes `zegel_schema_migrations`
 * if missing, reads what is applied, and applies every newer migration in
 * order, each in its own transaction together with its row (version, name,
 * SHA-256 of its SQL, applied_at): a migration that fails leaves neither.
 *
 * It refuses, before changing anything:
 * - a database at a version this code does not know (`ZEGEL_SCHEMA_NEWER`):
 *   a newer Zegel migrated it, and older code must not write to it;
 * - an applied migration whose checksum differs from this code's migration
 *   of that version (`ZEGEL_SCHEMA_CHECKSUM`): the schema is not the one
 *   this code was written for.
 *
 * Statements run without a statement timeout (a migration may rewrite a
 * large table); waiting for the lock, or for a table lock a migration needs,
 * is bounded by `lockTimeoutMs`. The connection is destroyed afterwards, so
 * the lock and the session settings never go back to the pool.
 */

/** The advisory lock key pair of the migrator (1514489676 is "ZEGL"); the chain trigger uses (…, 2). */
export const MIGRATION_LOCK: readonly [number, number] = [1514489676, 1];

export const DEFAULT_MIGRATION_LOCK_TIMEOUT_MS = 120_000;

export function migrationChecksum(migration: PgMigration): string {
  return createHash('sha256').update(migration.sql, 'utf8').digest('hex');
}

export interface MigrateOptions {
  /** The migrations to apply (default: every one this code knows). */
  migrations?: readonly PgMigration[] | undefined;
  /** How long to wait for the migration lock or a table lock, ms (default 2 minutes). */
  lockTimeoutMs?: number | undefined;
  log?: Logger | undefined;
}

export interface MigrateResult {
  /** The migrations this run applied, in order (empty: the schema was current). */
  applied: Array<{ version: number; name: string }>;
  /** The schema's version afterwards. */
  version: number;
}

interface AppliedRow {
  version: number;
  name: string;
  checksum: string;
}

function checkList(migrations: readonly PgMigration[]): void {
  migrations.forEach((m, i) => {
    if (m.version !== i + 1) throw new Error(`PostgreSQL migration ${m.version}-${m.name} is out of order: expected version ${i + 1}`);
  });
}

/** Whether any Zegel has migrated this database (its migrations table exists). */
export async function hasSchema(pool: PgPool): Promise<boolean> {
  const { rows } = await pool.query<{ t: string | null }>("SELECT to_regclass('zegel_schema_migrations')::text AS t");
  return Boolean(rows[0]?.t);
}

export async function migrate(pool: PgPool, options: MigrateOptions = {}): Promise<MigrateResult> {
  const migrations = options.migrations ?? PG_MIGRATIONS;
  checkList(migrations);
  const lockTimeoutMs = Math.max(1, Math.floor(options.lockTimeoutMs ?? DEFAULT_MIGRATION_LOCK_TIMEOUT_MS));
  const checkout = await pool.checkout();
  const { client } = checkout;
  const q = async <R extends pg.QueryResultRow>(text: string, params?: unknown[]): Promise<pg.QueryResult<R>> => {
    try {
      return await client.query<R>(text, params);
    } catch (err) {
      throw pool.failure(err);
    }
  };
  try {
    await q('SET statement_timeout = 0');
    await q(`SET lock_timeout = ${lockTimeoutMs}`);
    try {
      await q('SELECT pg_advisory_lock($1, $2)', [...MIGRATION_LOCK]);
    } catch (err) {
      if ((err as { code?: unknown }).code === '55P03') {
        throw pgStoreError('ZEGEL_STORE_UNAVAILABLE', `PostgreSQL ${pool.where}: another node held the migration lock for more than ${lockTimeoutMs} ms`);
      }
      throw err;
    }
    try {
      // a node logged in as a member of zegel_smtp|worker|reader may not CREATE, even IF NOT EXISTS: look first
      const { rows: state } = await q<{ exists: boolean; mayCreate: boolean }>(
        `SELECT to_regclass('zegel_schema_migrations') IS NOT NULL AS "exists", has_schema_privilege(current_schema(), 'CREATE') AS "mayCreate"`,
      );
      const mayCreate = state[0]?.mayCreate === true;
      if (!state[0]?.exists && mayCreate) await q(`CREATE TABLE IF NOT EXISTS zegel_schema_migrations (
        version     integer PRIMARY KEY,
        name        text NOT NULL,
        checksum    text NOT NULL,
        applied_at  timestamptz NOT NULL DEFAULT now()
      )`);
      const applied = state[0]?.exists || mayCreate ? (await q<AppliedRow>('SELECT version, name, checksum FROM zegel_schema_migrations ORDER BY version')).rows : [];
      const known = migrations.length;
      const newest = applied.at(-1)?.version ?? 0;
      if (newest > known) {
        throw pgStoreError(
          'ZEGEL_SCHEMA_NEWER',
          `PostgreSQL ${pool.where}: the schema is at version ${newest}, newer than this Zegel knows (${known}); run a Zegel at least as new as the one that migrated it`,
        );
      }
      for (const row of applied) {
        const mine = migrations[row.version - 1];
        if (!mine || migrationChecksum(mine) !== row.checksum) {
          throw pgStoreError(
            'ZEGEL_SCHEMA_CHECKSUM',
            `PostgreSQL ${pool.where}: applied migration ${row.version}-${row.name} differs from this Zegel's migration ${row.version}${mine ? `-${mine.name}` : ''} (checksum); the schema is not the one this code was written for`,
          );
        }
      }
      const done = new Set(applied.map((row) => row.version));
      const result: MigrateResult = { applied: [], version: newest };
      if (!mayCreate && migrations.some((m) => !done.has(m.version))) {
        throw pgStoreError(
          'ZEGEL_SCHEMA_BEHIND',
          `PostgreSQL ${pool.where}: the schema is at version ${newest}, this Zegel needs ${known}, and this login may not change it; run zegel db migrate --config FILE as the database owner first`,
        );
      }
      for (const migration of migrations) {
        if (done.has(migration.version)) continue;
        await q('BEGIN');
        try {
          await q(migration.sql);
          await q('INSERT INTO zegel_schema_migrations (version, name, checksum) VALUES ($1, $2, $3)', [migration.version, migration.name, migrationChecksum(migration)]);
          await q('COMMIT');
        } catch (err) {
          await client.query('ROLLBACK').catch(() => undefined);
          if (err instanceof Error && !(err instanceof ZegelError)) {
            err.message = `PostgreSQL migration ${migration.version}-${migration.name} failed: ${err.message}`;
          }
          throw err;
        }
        result.applied.push({ version: migration.version, name: migration.name });
        result.version = migration.version;
        options.log?.info({ store: pool.where, version: migration.version, name: migration.name }, 'PostgreSQL migration applied');
      }
      return result;
    } finally {
      await client.query('SELECT pg_advisory_unlock($1, $2)', [...MIGRATION_LOCK]).catch(() => undefined);
    }
  } finally {
    checkout.release(true);
  }
}
