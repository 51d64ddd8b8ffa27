import type crypto from 'node:crypto';
import Database from 'better-sqlite3';
import pg from 'pg';
import { pino } from 'pino';
import type { Test } from 'tap';
import type { AuditFilter, AuditRecord } from '../../src/audit/export.js';
import type { AuditPurgeResult } from '../../src/audit/retention.js';
import { AuditTrail } from '../../src/audit/trail.js';
import type { VerifyResult } from '../../src/audit/verify.js';
import type { CheckpointRow } from '../../src/audit/checkpoint.js';
import { ManualClock } from '../../src/clock.js';
import type { Directory } from '../../src/store/directory.js';
import type { EventLog } from '../../src/store/events.js';
import type { MessageRepository } from '../../src/store/messages.js';
import { PgAuditTrail } from '../../src/store/pg/audit.js';
import { openPgPool, type PgPool } from '../../src/store/pg/connect.js';
import { PgDirectory } from '../../src/store/pg/directory.js';
import { PgEventLog } from '../../src/store/pg/events.js';
import { PgMessageRepository } from '../../src/store/pg/messages.js';
import { migrate } from '../../src/store/pg/migrate.js';
import { PgTransactor } from '../../src/store/pg/tx.js';
import { SqliteBackend } from '../../src/store/sqlite-backend.js';
import type { Public } from '../../src/store/store.js';
import type { Transactor } from '../../src/store/tx.js';
import { startPostgres, type PgServer } from './pg-server.js';
import { tempDir } from './relay.js';

/**
 * The store's repositories on either driver, for contract tests written once
 * (test/helpers/*-contract.ts) and run against SQLite and PostgreSQL.
 *
 * A `StoreFactory` makes a fresh, empty store per call: SQLite in a new temp
 * directory, PostgreSQL in a new database (CREATE DATABASE + migrate) of the
 * one server the test file started. `node()` opens a second handle on the
 * same database (PostgreSQL: its own pool, as another cluster node;
 * SQLite: another connection, as an admin command beside the relay).
 */
export interface StoreNode extends Transactor {
  readonly events: Public<EventLog>;
  readonly messages: Public<MessageRepository>;
  readonly directory: Public<Directory>;
  readonly audit: {
    records(filter: AuditFilter): AsyncIterable<AuditRecord> | Iterable<AuditRecord>;
    verify(publicKey: crypto.KeyObject): Promise<VerifyResult>;
    hasCheckpoints(): Promise<boolean>;
    checkpoint(key: crypto.KeyObject, now: number, options?: { force?: boolean }): Promise<CheckpointRow | undefined>;
    purge(key: crypto.KeyObject, now: number, retentionMs: number): Promise<AuditPurgeResult>;
  };
}

/** What an attacker with the database owner's rights can do, the append-only guards lifted. */
export interface Attacker {
  /** Sets one column of one event row (detail, at, type, …) to `value`. */
  editEvent(seq: number, column: 'detail' | 'at' | 'type' | 'recipient', value: string | number): Promise<void>;
  deleteEvent(seq: number): Promise<void>;
}

export interface StoreFixture extends StoreNode {
  readonly driver: 'sqlite' | 'postgres';
  readonly clock: ManualClock;
  /** Another handle on the same database. */
  node(): Promise<StoreNode>;
  /** Rows of a plain SELECT on the database, `?` placeholders for both drivers. */
  rows<R>(sql: string, params?: unknown[]): Promise<R[]>;
  /** A plain statement on this store's connection, as the application role: the guards stay on. */
  exec(sql: string, params?: unknown[]): Promise<void>;
  attacker(): Promise<Attacker>;
}

export type StoreFactory = (t: Test) => Promise<StoreFixture>;

export interface Driver {
  readonly name: 'sqlite' | 'postgres';
  readonly make: StoreFactory;
}

const silent = pino({ level: 'silent' });
const START = Date.UTC(2026, 0, 5, 9, 0, 0);

/** `?` → `$1, $2, …` (no `?` inside the test's string literals). */
const dollars = (sql: string): string => {
  let n = 0;
  return sql.replace(/\?/g, () => `$${++n}`);
};

export const sqliteDriver: Driver = {
  name: 'sqlite',
  async make(t) {
    const dir = tempDir(t, 'zegel-contract-');
    const clock = new ManualClock(START);
    const open = (): SqliteBackend & StoreNode => {
      const backend = new SqliteBackend(dir, clock, silent);
      void backend.queue.close(0);
      t.teardown(() => backend.close());
      const audit = new AuditTrail(backend.db, backend.committer, backend.events);
      return Object.assign(backend, { audit });
    };
    const backend = open();
    return {
      driver: 'sqlite',
      clock,
      transaction: (work) => backend.transaction(work),
      events: backend.events,
      messages: backend.messages,
      directory: backend.directory,
      audit: backend.audit,
      node: async () => open(),
      rows: async <R>(sql: string, params: unknown[] = []) => backend.db.prepare(sql).all(...params) as R[],
      exec: async (sql, params = []) => {
        backend.db.prepare(sql).run(...params);
      },
      attacker: async () => {
        const db = new Database(backend.db.name);
        t.teardown(() => db.close());
        for (const trigger of ['events_no_update', 'events_no_delete', 'events_no_replace', 'events_chain']) db.exec(`DROP TRIGGER IF EXISTS ${trigger}`);
        return {
          editEvent: async (seq, column, value) => {
            db.prepare(`UPDATE events SET ${column} = ? WHERE seq = ?`).run(value, seq);
          },
          deleteEvent: async (seq) => {
            db.prepare('DELETE FROM events WHERE seq = ?').run(seq);
          },
        };
      },
    };
  },
};

/** Starts this file's PostgreSQL server (stopped at the end of the file) and makes a driver on it. */
export async function postgresDriver(t: Test): Promise<Driver & { server: PgServer }> {
  const server = await startPostgres();
  t.teardown(() => server.cleanup());
  let databases = 0;
  return {
    name: 'postgres',
    server,
    async make(t) {
      const url = await server.createDatabase(`contract_${++databases}`);
      const clock = new ManualClock(START);
      const pools: PgPool[] = [];
      t.teardown(async () => {
        for (const p of pools) await p.close();
      });
      const open = async (): Promise<StoreNode & { pool: PgPool }> => {
        const pool = await openPgPool({ url, passwordFile: server.passwordFile, applicationName: 'zegel-contract', max: 4 });
        pools.push(pool);
        const store = new PgTransactor(pool);
        const events = new PgEventLog(pool, clock);
        return {
          pool,
          transaction: (work) => store.transaction(work),
          events,
          messages: new PgMessageRepository(pool, events, clock),
          directory: new PgDirectory(pool, store, clock),
          audit: new PgAuditTrail(pool, store, events),
        };
      };
      const first = await open();
      await migrate(first.pool);
      return {
        ...first,
        driver: 'postgres',
        clock,
        node: open,
        rows: async <R>(sql: string, params: unknown[] = []) => (await first.pool.query(dollars(sql), params)).rows as R[],
        exec: async (sql, params = []) => {
          await first.pool.query(dollars(sql), params);
        },
        attacker: async () => {
          // the superuser's own session, with every user trigger off (a replica's rights): the guards lifted
          const target = new URL(url);
          const client = new pg.Client({ host: target.hostname, port: Number(target.port), user: 'postgres', password: server.password, database: target.pathname.slice(1) });
          await client.connect();
          t.teardown(() => client.end());
          await client.query('SET session_replication_role = replica');
          return {
            editEvent: async (seq, column, value) => {
              await client.query(`UPDATE events SET ${column} = $1 WHERE seq = $2`, [value, seq]);
            },
            deleteEvent: async (seq) => {
              await client.query('DELETE FROM events WHERE seq = $1', [seq]);
            },
          };
        },
      };
    },
  };
}
