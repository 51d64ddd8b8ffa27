import crypto from 'node:crypto';
import type { FastifyRateLimitOptions, FastifyRateLimitStore, FastifyRateLimitStoreCtor } from '@fastify/rate-limit';
import { RateLimiterPostgres, RateLimiterRes } from 'rate-limiter-flexible';
import type { Logger } from '../../log.js';
import type { AuthLimiterFactory } from '../../smtp/auth-throttle.js';
import type { PgPool } from './connect.js';
import { pgStoreError } from './errors.js';

/**
 * Rate limits every node shares, in the `rate_limits` table of schema 001
 * (`key` varchar(255) primary key, `points` integer, `expire` bigint ms): the
 * shape rate-limiter-flexible's RateLimiterPostgres reads and writes, so the
 * reader's limits (@fastify/rate-limit) and the SMTP AUTH throttle
 * (rate-limiter-flexible) keep their counters side by side, apart by key
 * prefix: `zegel_reader:<group>:<kind>:<id>` and
 * `zegel_smtp_auth_client:<address>` / `zegel_smtp_auth_user:<name>`.
 *
 * Time is the server's: every `expire` is written and compared with
 * `statement_timestamp()` in milliseconds, never with a node's Date.now(),
 * so nodes whose clocks differ count the same window (RateLimiterPostgres
 * itself uses the node's clock; the subclass below replaces that).
 *
 * A request is one round trip: an INSERT … ON CONFLICT DO UPDATE … RETURNING
 * that takes the row lock, starts a new window when the stored one has run
 * out, and returns the count and the time left. Concurrent requests on
 * different nodes queue on the row lock, so none is lost or counted twice.
 */

/** The server's clock in ms, the same value throughout one statement. */
const NOW_MS = `(extract(epoch FROM statement_timestamp()) * 1000)::bigint`;

/** Keys longer than the column (a long SMTP AUTH username) are stored as a prefix and a hash. */
const MAX_KEY = 255;
export function storedKey(key: string): string {
  if (key.length <= MAX_KEY) return key;
  return `${key.slice(0, 150)}#${crypto.createHash('sha256').update(key, 'utf8').digest('base64url')}`;
}

/** The reader's key prefix; the AUTH throttle's are `zegel_smtp_auth_client` and `zegel_smtp_auth_user`. */
export const READER_KEY_PREFIX = 'zegel_reader:';

/**
 * One request counted: a new row, or the row's window continued, or a new
 * window when the stored one ran out. `points` stops at integer's maximum
 * rather than fail (a window never gets there; a row without expiry could).
 */
const INCR_SQL = `
INSERT INTO rate_limits AS r (key, points, expire) VALUES ($1, 1, ${NOW_MS} + $2::bigint)
ON CONFLICT (key) DO UPDATE SET
  points = CASE WHEN r.expire IS NULL OR r.expire <= ${NOW_MS} THEN 1 ELSE LEAST(r.points, 2147483646) + 1 END,
  expire = CASE WHEN r.expire IS NULL OR r.expire <= ${NOW_MS} THEN excluded.expire ELSE r.expire END
RETURNING points, r.expire - ${NOW_MS} AS ttl`;

export interface PgReaderStoreOptions {
  /**
   * How long a request waits for PostgreSQL before the count counts as failed
   * (ms, default 2000): a stalled server must not hold page loads for the
   * pool's statement timeout (30 s). The statement itself runs on.
   */
  deadlineMs?: number;
}

/**
 * The store class for @fastify/rate-limit (`{ store }`), bound to this
 * node's pool. The plugin makes one with `new Store(globalOptions)` and one
 * child per limiter; all of them write the same table, since the reader's
 * keys already name their group and kind (src/reader/rate-limit.ts).
 * Only the plugin's fixed window is offered: `continueExceeding` and
 * `exponentialBackoff` are refused at registration, not silently ignored.
 */
export function pgReaderStore(pool: PgPool, options: PgReaderStoreOptions = {}): FastifyRateLimitStoreCtor {
  const deadlineMs = options.deadlineMs ?? 2_000;
  class PgReaderRateLimitStore implements FastifyRateLimitStore {
    constructor(settings: FastifyRateLimitOptions & { continueExceeding?: boolean; exponentialBackoff?: boolean }) {
      if (settings.continueExceeding || settings.exponentialBackoff) throw new Error('the PostgreSQL rate-limit store counts fixed windows only (no continueExceeding, no exponentialBackoff)');
    }

    incr(key: string, callback: (error: Error | null, result?: { current: number; ttl: number }) => void, timeWindow: number): void {
      let timer: NodeJS.Timeout | undefined;
      const late = new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(pgStoreError('ZEGEL_STORE_UNAVAILABLE', `rate-limit store: no answer from PostgreSQL ${pool.where} within ${deadlineMs} ms`)), deadlineMs);
      });
      const answer = pool.query<{ points: number; ttl: number }>(INCR_SQL, [storedKey(READER_KEY_PREFIX + key), Math.max(1, Math.trunc(timeWindow))]);
      answer.catch(() => undefined); // after the deadline nobody waits for it
      Promise.race([answer, late]).then(
        ({ rows }) => {
          clearTimeout(timer);
          const row = rows[0]!;
          callback(null, { current: row.points, ttl: Math.max(0, row.ttl) });
        },
        (err: Error) => {
          clearTimeout(timer);
          callback(err);
        },
      );
    }

    child(routeOptions: Parameters<FastifyRateLimitStore['child']>[0]): FastifyRateLimitStore {
      return new PgReaderRateLimitStore(routeOptions as never);
    }
  }
  return PgReaderRateLimitStore;
}

/** What a rate-limiter-flexible upsert or get returns here: the row, and the ms left by the server's clock. */
interface LimiterRow {
  rows: Array<{ points: number; expire: number | null; ms_left: number | null }>;
}

const UPSERT_SQL = (force: boolean) => `
INSERT INTO rate_limits AS r (key, points, expire) VALUES ($1, $2, CASE WHEN $3::bigint > 0 THEN ${NOW_MS} + $3::bigint END)
ON CONFLICT (key) DO UPDATE SET
  points = CASE WHEN ${force ? 'true' : `r.expire <= ${NOW_MS}`} THEN excluded.points ELSE r.points + excluded.points END,
  expire = CASE WHEN ${force ? 'true' : `r.expire <= ${NOW_MS}`} THEN excluded.expire ELSE r.expire END
RETURNING points, expire, expire - ${NOW_MS} AS ms_left`;

const GET_SQL = `SELECT points, expire, expire - ${NOW_MS} AS ms_left FROM rate_limits WHERE key = $1 AND (expire > ${NOW_MS} OR expire IS NULL)`;

/**
 * rate-limiter-flexible's PostgreSQL limiter on this node's pool, with the
 * server's clock. It keeps the library's logic (consume, reward, delete,
 * block on the crossing consume, the result objects) and its table shape,
 * and replaces the three statements that read the node's clock: the upsert
 * (same CASEs as the library's, `statement_timestamp()` for `Date.now()`),
 * the read, and the result's time left, which comes from the server too.
 * `tableCreated: true`: the table is schema 001's, no DDL at run time;
 * `clearExpiredByTimeout: false`: the sweep below cleans up, one per node.
 */
export class PgRateLimiter extends RateLimiterPostgres {
  readonly #pool: PgPool;

  constructor(pool: PgPool, opts: { keyPrefix: string; points: number; duration: number; blockDuration?: number }) {
    super({
      ...opts,
      storeClient: { query: (q: { text: string; values?: unknown[] }) => pool.query(q.text, q.values) },
      storeType: 'pool',
      tableName: 'rate_limits',
      tableCreated: true,
      clearExpiredByTimeout: false,
    });
    this.#pool = pool;
  }

  _upsert(rlKey: string, points: number, msDuration: number, forceExpire = false): Promise<LimiterRow> {
    return this.#pool.query(UPSERT_SQL(forceExpire), [storedKey(rlKey), points, msDuration > 0 ? Math.trunc(msDuration) : 0]) as Promise<LimiterRow>;
  }

  async _get(rlKey: string): Promise<LimiterRow | null> {
    const res = (await this.#pool.query(GET_SQL, [storedKey(rlKey)])) as LimiterRow;
    return res.rows.length ? res : null;
  }

  _delete(rlKey: string): Promise<boolean> {
    return this.#pool.query('DELETE FROM rate_limits WHERE key = $1', [storedKey(rlKey)]).then((res) => (res.rowCount ?? 0) > 0);
  }

  _getRateLimiterRes(_rlKey: string, changedPoints: number, result: LimiterRow): RateLimiterRes {
    const row = result.rows[0]!;
    const res = new RateLimiterRes();
    // as the library's: a row whose points equal this change started its window now
    (res as { isFirstInDuration: boolean }).isFirstInDuration = changedPoints === row.points;
    (res as { consumedPoints: number }).consumedPoints = res.isFirstInDuration ? changedPoints : row.points;
    (res as { remainingPoints: number }).remainingPoints = Math.max(this.points - res.consumedPoints, 0);
    (res as { msBeforeNext: number }).msBeforeNext = row.expire === null ? -1 : Math.max(row.ms_left ?? 0, 0);
    return res;
  }
}

export interface SweepOptions {
  /** Rows whose window ended at least this long ago go (ms, default 60 s). */
  graceMs?: number;
  /** Rows per DELETE (default 1000). */
  batch?: number;
  /** DELETEs per pass at most (default 10): a pass is bounded however many rows wait. */
  maxBatches?: number;
}

/**
 * Removes rows whose window ended more than `graceMs` ago, in batches along
 * the `rate_limits_expire` index. The outer condition is checked again on
 * the row as it is when the DELETE gets it, so a window another node has
 * just restarted is never removed. No `FOR UPDATE SKIP LOCKED`: that needs
 * UPDATE, which the worker role lacks (001 gives it SELECT, DELETE here);
 * a row in use is locked only for one autocommit statement, so the wait is
 * short. Returns the rows removed.
 */
export async function sweepRateLimits(pool: PgPool, options: SweepOptions = {}): Promise<number> {
  const graceMs = options.graceMs ?? 60_000;
  const batch = options.batch ?? 1000;
  const maxBatches = options.maxBatches ?? 10;
  let removed = 0;
  for (let i = 0; i < maxBatches; i++) {
    const { rowCount } = await pool.query(
      `DELETE FROM rate_limits WHERE expire < ${NOW_MS} - $1::bigint AND key IN (
         SELECT key FROM rate_limits WHERE expire < ${NOW_MS} - $1::bigint ORDER BY expire LIMIT $2)`,
      [graceMs, batch],
    );
    removed += rowCount ?? 0;
    if ((rowCount ?? 0) < batch) break;
  }
  return removed;
}

/** What the relay hands the reader and the SMTP ingress: shared counters on PostgreSQL. */
export interface PgRateLimits {
  /** For `ReaderDeps.rateLimitStore`. */
  readerStore: FastifyRateLimitStoreCtor;
  /** For the SMTP AUTH throttle (`IngressDeps.authLimiterFactory`). */
  authLimiterFactory: AuthLimiterFactory;
  /** Stops the sweep timer (before the pool closes). */
  close(): void;
}

export interface PgRateLimitsOptions extends PgReaderStoreOptions {
  /** How often this node sweeps expired rows (ms, default 5 minutes, ±20 % so nodes spread out; 0: never). */
  sweepEveryMs?: number;
  sweep?: SweepOptions;
}

/**
 * The shared rate limits of one node on its pool: the reader's store, the
 * AUTH limiters, and a sweep of expired rows every few minutes (an unref'd
 * timer; a failed sweep is logged and tried at the next turn).
 */
export function pgRateLimits(pool: PgPool, log: Logger, options: PgRateLimitsOptions = {}): PgRateLimits {
  const every = options.sweepEveryMs ?? 5 * 60_000;
  let timer: NodeJS.Timeout | undefined;
  let closed = false;
  const schedule = (): void => {
    if (closed || every <= 0) return;
    timer = setTimeout(() => {
      sweepRateLimits(pool, options.sweep).then(
        (removed) => {
          if (removed) log.debug({ removed }, 'rate limits: expired rows removed');
        },
        (err: Error) => log.warn({ err: { name: err.name, code: (err as { code?: unknown }).code } }, 'rate limits: sweep failed'),
      ).finally(schedule);
    }, every * (0.8 + Math.random() * 0.4));
    timer.unref();
  };
  schedule();
  return {
    readerStore: pgReaderStore(pool, options),
    authLimiterFactory: (opts) => new PgRateLimiter(pool, opts),
    close: () => {
      closed = true;
      clearTimeout(timer);
    },
  };
}
