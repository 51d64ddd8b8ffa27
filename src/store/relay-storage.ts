import type { Clock } from '../clock.js';
import type { RelayRole } from '../config/roles.js';
import type { Config } from '../config/schema.js';
import type { SharedKeys } from '../crypto/shared-keys.js';
import type { Logger } from '../log.js';
import { Spool } from '../spool/spool.js';
import type { MessageSpool } from '../spool/types.js';
import type { PgRateLimits } from './pg/rate-limits.js';
import { BlobStore, type BlobRepository } from './blobs.js';
import { SqliteBackend } from './sqlite-backend.js';
import type { Store } from './store.js';

/**
 * Everything the relay keeps, for one driver: the store (rows, events, jobs,
 * the audit trail), the plaintext spool and the ciphertext blobs. The relay is composed on this and never
 * asks which driver it has, except through `sqlite` (the embedded file's own
 * members, which tests and the WAL shredder use).
 */
export interface RelayStorage {
  readonly driver: Config['store']['driver'];
  readonly store: Store;
  readonly spool: MessageSpool;
  readonly blobs: BlobRepository;
  /**
   * Counters every node shares (the reader's limits, the SMTP AUTH throttle),
   * on PostgreSQL; undefined on SQLite, where they stay in the process (one node).
   */
  readonly sharedLimits: Pick<PgRateLimits, 'readerStore' | 'authLimiterFactory'> | undefined;
  /** The SQLite backend, when the store is the embedded one. */
  readonly sqlite: SqliteBackend | undefined;
  /** Figures for the stop line of the log (commits and writes of the group committer on SQLite). */
  stats(): Record<string, number>;
  close(): Promise<void>;
}

export interface OpenStorageOptions {
  config: Config;
  clock: Clock;
  log: Logger;
  role: RelayRole;
  /** How often idle SQLite workers look for due jobs (ms). */
  pollMs?: number | undefined;
  /** The cluster's shared keys (src/crypto/shared-keys.ts), read by the caller; needed for PostgreSQL. */
  keys?: SharedKeys | undefined;
  /** Jobs this process runs at once, over every kind: the PostgreSQL pool is sized above it. */
  concurrency: number;
}

/** The embedded default: one SQLite file, spool and blob files under data.dir. */
export function openSqliteStorage(options: OpenStorageOptions): RelayStorage {
  const { config, clock, log } = options;
  const spool = new Spool(config.data.dir);
  const backend = new SqliteBackend(config.data.dir, clock, log, { pollMs: options.pollMs });
  return {
    driver: 'sqlite',
    store: backend,
    spool,
    blobs: new BlobStore(config.data.dir),
    sharedLimits: undefined,
    sqlite: backend,
    stats: () => {
      const { commits, writes } = backend.committer.stats;
      return { storeCommits: commits, storeWrites: writes };
    },
    close: () => backend.close(),
  };
}

/**
 * Opens the storage the configuration names. PostgreSQL is loaded only when
 * configured, so the embedded default never loads `pg` or BullMQ.
 */
export async function openRelayStorage(options: OpenStorageOptions): Promise<RelayStorage> {
  if (options.config.store.driver === 'postgres') {
    const { openPgStorage } = await import('./pg/relay-storage.js');
    return openPgStorage(options);
  }
  return openSqliteStorage(options);
}
