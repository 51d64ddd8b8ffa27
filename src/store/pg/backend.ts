import type { Clock } from '../../clock.js';
import type { StorageKey } from '../../crypto/storage-key.js';
import type { Logger } from '../../log.js';
import { BullmqQueue, type BullmqQueueOptions } from '../../queue/bullmq.js';
import type { NewJob } from '../../queue/types.js';
import type { IncomingMessage } from '../messages.js';
import type { SecureRepositories } from '../secure-repositories.js';
import type { Store } from '../store.js';
import type { Tx } from '../tx.js';
import type { PeriodicLeader } from '../../audit/leader.js';
import type { Shredder } from '../../secure/revocation.js';
import { PgAuditTrail } from './audit.js';
import { PgBlobStore } from './blob-chunks.js';
import { openPgPool, type PgPool } from './connect.js';
import { PgSessionLeader } from './leader.js';
import { pgShredder } from './shred.js';
import { PgDirectory } from './directory.js';
import { PgEventLog } from './events.js';
import { PgMessageRepository } from './messages.js';
import { migrate, type MigrateResult } from './migrate.js';
import { pgRateLimits, type PgRateLimits } from './rate-limits.js';
import { pgSecureRepositories } from './secure-repositories.js';
import { PgTransactor } from './tx.js';

/**
 * The cluster store: the PostgreSQL repositories and the BullMQ job queue
 * behind the store interface (src/store/store.ts), as SqliteBackend is the
 * embedded one. One pool per node; every repository and the queue share it.
 *
 * `PgBackend.open` opens the pool (a wrong password or an absent server is
 * reported there, ZEGEL_STORE_UNAVAILABLE), applies the schema migrations
 * under the migrator's advisory lock (nodes starting together take turns;
 * the first migrates, the others find the schema current), and only then
 * makes the repositories and the queue. A failed open closes what it opened.
 *
 * Intake is one transaction: the first job, the message with its recipients
 * (and its relay_mail row), and last the `received` event. The event goes
 * last because its insert takes the cluster-wide chain lock and holds it to
 * the commit (docs/cluster.md, "One chain per cluster"): every node's next
 * audit record waits only for this one statement and the COMMIT. The job
 * goes to BullMQ after the commit (`poke`); if that fails, the reconciler
 * carries it.
 */
export interface PgBackendOptions {
  /** store.url: `postgres://user@host:5432/db`, no password in it. */
  url: string;
  /** store.passwordFile: the password on its first line. */
  passwordFile?: string | undefined;
  /** store.keyFile, loaded by the caller (loadStorageKey): seals every K_srv. */
  storageKey: StorageKey;
  /** queue.url: `redis://host:6379[/db]`. */
  redisUrl: string;
  /** The Redis password, read by the caller from its file. */
  redisPassword?: string | undefined;
  clock: Clock;
  log: Logger;
  /** Shown in pg_stat_activity (default `zegel`). */
  applicationName?: string | undefined;
  /** Connections at most, shared by requests, job runs and the reconciler (default 10). */
  poolMax?: number | undefined;
  /** How long open waits for another node's migration, ms (default 2 minutes). */
  migrationLockTimeoutMs?: number | undefined;
  /** How long `ping` waits for the server's answer before it says false, ms (default 2 s). */
  pingTimeoutMs?: number | undefined;
  /** The BullMQ driver's other settings (src/queue/bullmq.ts). */
  queue?: Omit<BullmqQueueOptions, 'redisUrl' | 'redisPassword'> | undefined;
}

export const PG_BACKEND_DEFAULTS = {
  applicationName: 'zegel',
  pingTimeoutMs: 2_000,
} as const;

export class PgBackend implements Store {
  /** What open's migration run did: the versions it applied (none when another node had) and the schema's version. */
  readonly schema: MigrateResult;
  /** The audit trail's one writer (src/store/pg/events.ts). */
  readonly events: PgEventLog;
  readonly messages: PgMessageRepository;
  readonly secure: SecureRepositories;
  readonly directory: PgDirectory;
  readonly queue: BullmqQueue;
  /** Export, verify, checkpoint and purge of the cluster's one audit chain. */
  readonly audit: PgAuditTrail;
  /** The ciphertext blobs of secure messages (blobs, blob_chunks). */
  readonly blobs: PgBlobStore;
  /** Nothing to truncate on PostgreSQL (src/store/pg/shred.ts). */
  readonly shredder: Shredder = pgShredder;
  /** Rate limits every node shares: the reader's store and the SMTP AUTH limiters (src/store/pg/rate-limits.ts). */
  readonly rateLimits: PgRateLimits;
  readonly #pool: PgPool;
  readonly #log: Logger;
  readonly #transactor: PgTransactor;
  readonly #pingTimeoutMs: number;
  #closing: Promise<void> | undefined;

  private constructor(pool: PgPool, schema: MigrateResult, options: PgBackendOptions) {
    this.#pool = pool;
    this.schema = schema;
    this.#pingTimeoutMs = options.pingTimeoutMs ?? PG_BACKEND_DEFAULTS.pingTimeoutMs;
    this.#transactor = new PgTransactor(pool);
    this.events = new PgEventLog(pool, options.clock);
    this.messages = new PgMessageRepository(pool, this.events, options.clock);
    this.secure = pgSecureRepositories(pool, options.storageKey);
    this.directory = new PgDirectory(pool, this.#transactor, options.clock);
    this.audit = new PgAuditTrail(pool, this.#transactor, this.events);
    this.blobs = new PgBlobStore(pool);
    this.#log = options.log;
    this.rateLimits = pgRateLimits(pool, options.log);
    this.queue = new BullmqQueue(pool, this.#transactor, options.clock, options.log, {
      ...options.queue,
      redisUrl: options.redisUrl,
      redisPassword: options.redisPassword,
    });
  }

  /** Opens the pool, migrates under the lock, and composes the repositories and the queue. */
  static async open(options: PgBackendOptions): Promise<PgBackend> {
    const pool = await openPgPool({
      url: options.url,
      passwordFile: options.passwordFile,
      applicationName: options.applicationName ?? PG_BACKEND_DEFAULTS.applicationName,
      max: options.poolMax,
      log: options.log,
    });
    try {
      const schema = await migrate(pool, { lockTimeoutMs: options.migrationLockTimeoutMs, log: options.log });
      return new PgBackend(pool, schema, options);
    } catch (err) {
      await pool.close().catch(() => undefined);
      throw err;
    }
  }

  /** The node's pool, for the parts PgBackend does not compose (the spool, rate limits). */
  get pool(): PgPool {
    return this.#pool;
  }

  transaction<T>(work: (tx: Tx) => Promise<T> | T): Promise<T> {
    return this.#transactor.transaction(work);
  }

  /** Durably records an accepted message and its first job in one transaction; resolves after the commit. */
  async intake(message: IncomingMessage, firstJob: NewJob): Promise<void> {
    await this.transaction(async (tx) => {
      // the job first: insertReceived ends with the `received` event, whose chain lock is held to the commit
      await this.queue.insert(tx, [firstJob]);
      await this.messages.insertReceived(tx, message);
    });
    this.queue.poke(firstJob.kind);
  }

  /**
   * A leader for the audit checkpoint timer: the node whose session holds
   * the advisory lock AUDIT_LEADER_LOCK (src/store/pg/leader.ts). It keeps
   * one of the pool's connections while it leads; release it (the worker's
   * stop) before `close`.
   */
  periodicLeader(): PeriodicLeader {
    return new PgSessionLeader(this.#pool, { log: this.#log });
  }

  /** PostgreSQL answers within pingTimeoutMs (readiness); false, never a throw, when it does not. */
  async ping(): Promise<boolean> {
    if (this.#closing) return false;
    let timer: NodeJS.Timeout | undefined;
    const answer = this.#pool.query<{ ok: number }>('SELECT 1 AS ok').then(
      ({ rows }) => rows[0]?.ok === 1,
      () => false,
    );
    const late = new Promise<false>((resolve) => {
      timer = setTimeout(() => resolve(false), this.#pingTimeoutMs);
    });
    try {
      return await Promise.race([answer, late]);
    } finally {
      clearTimeout(timer);
    }
  }

  /**
   * Stops the queue (a no-op when the relay drained it already with its own
   * timeout; otherwise running jobs give up their leases at once), then
   * closes the pool. Once; later calls wait for the first.
   */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      await this.queue.close(0);
      this.rateLimits.close();
      await this.#pool.close();
    })();
    return this.#closing;
  }
}
