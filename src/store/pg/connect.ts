import fsp from 'node:fs/promises';
import pg from 'pg';
import { ZegelError } from '../../errors.js';
import type { Logger } from '../../log.js';
import { pgStoreError } from './errors.js';

/**
 * The PostgreSQL connection pool of one node (node-postgres' `pg.Pool`).
 *
 * - The URL names server, user and database, never the password: that is
 *   read from `passwordFile` (its first line), handed to pg as a separate
 *   field, and never logged nor put in an error message. pg's own errors can
 *   carry the connection string (an unparsable URL, brianc/node-postgres#3145),
 *   so every error that leaves this module is rewritten without it.
 * - A connection that fails, or is lost, becomes
 *   `ZegelError('ZEGEL_STORE_UNAVAILABLE')` (errors.ts): a temporary
 *   failure, for the caller to answer 451 and try again later.
 * - Timeouts: connecting (`connectTimeoutMs`), each statement on the server
 *   (`statement_timeout`), a transaction left idle by a stalled node
 *   (`idle_in_transaction_session_timeout`, so its locks go), and a
 *   client-side read timeout a little above the statement timeout for a
 *   server that stops answering at all.
 * - An idle connection the server drops (restart, failover) is logged and
 *   replaced; without a listener pg's pool would throw it as an uncaught
 *   error and end the process.
 * - bigint columns (millisecond times, counters, sequence numbers) come back
 *   as numbers, not strings; every value Zegel stores there is far below 2^53.
 */
export interface PgPoolOptions {
  /** `postgres://user@host:port/db` (or `postgres://user@/db?host=/run/postgresql`); no password. */
  url: string;
  /** A file whose first line is the password; absent: no password (e.g. peer or cert auth). */
  passwordFile?: string | undefined;
  /** Shown in pg_stat_activity (`zegel-smtp`, `zegel-migrate`, …). */
  applicationName: string;
  /** Connections at most (default 10). */
  max?: number | undefined;
  /** Server-side limit per statement, ms (default 30 s; 0: none). */
  statementTimeoutMs?: number | undefined;
  /** Limit for opening a connection, ms (default 5 s). */
  connectTimeoutMs?: number | undefined;
  /** The server ends a session idle inside a transaction this long, ms (default 60 s). */
  idleInTransactionTimeoutMs?: number | undefined;
  /** Opens one connection before resolving, so a wrong password or an absent server is reported now (default true). */
  probe?: boolean | undefined;
  log?: Logger | undefined;
}

export const PG_POOL_DEFAULTS = {
  max: 10,
  statementTimeoutMs: 30_000,
  connectTimeoutMs: 5_000,
  idleInTransactionTimeoutMs: 60_000,
} as const;

/** How far the client waits beyond the server's statement timeout before it gives up on the connection. */
const READ_TIMEOUT_MARGIN_MS = 5_000;

/** Connection-level errno codes of Node's sockets and resolver. */
const NETWORK_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ECONNABORTED', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN', 'EPIPE', 'ENOENT']);

/**
 * SQLSTATEs that mean "not now" rather than "wrong": connection exceptions
 * (class 08), shutdown and recovery (57P01-57P04), statement timeout (57014:
 * an overloaded or blocked server), too many connections (53300), login
 * refused (28000, 28P01) and a database that is not there (3D000).
 */
const UNAVAILABLE_SQLSTATE = /^(08...|57P0[1-4]|57014|53300|28000|28P01|3D000)$/;

/** pg's own messages for a connection that failed or was lost (they carry no code). */
const UNAVAILABLE_MESSAGE = /Connection terminated|timeout expired|connection timeout|Query read timeout|not queryable|Cannot use a pool after calling end/i;

/** Whether an error from pg means the server is unreachable or gone for now. */
export function isUnavailable(err: unknown): boolean {
  if (!(err instanceof Error)) return false;
  const code = (err as { code?: unknown }).code;
  if (typeof code === 'string' && (NETWORK_CODES.has(code) || UNAVAILABLE_SQLSTATE.test(code))) return true;
  return UNAVAILABLE_MESSAGE.test(err.message);
}

/** The parts of a postgres:// URL pg needs, parsed here so that pg never sees a connection string. */
interface Target {
  host: string;
  port: number;
  user: string;
  database: string;
  ssl: boolean;
  sslRootCert: string | undefined;
}

const URL_PARAMETERS = new Set(['host', 'port', 'sslmode', 'sslrootcert']);

function parseUrl(url: string): Target {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    // the TypeError carries the whole input: never repeat it
    throw new ZegelError('ZEGEL_CONFIG_INVALID', 'store.url: not a URL such as postgres://zegel@db.example.nl:5432/zegel');
  }
  if (u.protocol !== 'postgres:' && u.protocol !== 'postgresql:') throw new ZegelError('ZEGEL_CONFIG_INVALID', 'store.url: expected postgres://');
  if (u.password !== '') throw new ZegelError('ZEGEL_CONFIG_INVALID', 'store.url: holds a password; the password goes in store.passwordFile');
  for (const key of u.searchParams.keys()) {
    if (!URL_PARAMETERS.has(key)) throw new ZegelError('ZEGEL_CONFIG_INVALID', `store.url: parameter ${JSON.stringify(key.slice(0, 40))} is not supported (supported: ${[...URL_PARAMETERS].join(', ')})`);
  }
  const sslmode = u.searchParams.get('sslmode') ?? 'disable';
  if (!['disable', 'require', 'verify-ca', 'verify-full'].includes(sslmode)) throw new ZegelError('ZEGEL_CONFIG_INVALID', 'store.url: sslmode must be disable, require, verify-ca or verify-full');
  const host = u.searchParams.get('host') ?? u.hostname.replace(/^\[(.*)\]$/, '$1');
  if (!host) throw new ZegelError('ZEGEL_CONFIG_INVALID', 'store.url: names no host');
  const user = decodeURIComponent(u.username) || 'zegel';
  return {
    host,
    port: Number(u.searchParams.get('port') ?? (u.port || 5432)),
    user,
    database: decodeURIComponent(u.pathname.replace(/^\//, '')) || user,
    // every mode but disable verifies the server's certificate and name:
    // an encrypted connection to anyone who answers is not offered
    ssl: sslmode !== 'disable',
    sslRootCert: u.searchParams.get('sslrootcert') ?? undefined,
  };
}

/** Reads the password: the file's first line, without its line ending. */
export async function readPasswordFile(file: string): Promise<string> {
  let text: string;
  try {
    text = await fsp.readFile(file, 'utf8');
  } catch (err) {
    throw pgStoreError('ZEGEL_STORE_UNAVAILABLE', `cannot read store.passwordFile ${file}: ${(err as NodeJS.ErrnoException).code ?? 'error'}`);
  }
  return text.split('\n')[0]!.replace(/\r$/, '');
}

/** bigint (int8) as a JavaScript number; every other type as pg parses it. */
const TYPES: pg.CustomTypesConfig = {
  getTypeParser: ((oid: number, format?: 'text' | 'binary') =>
    oid === pg.types.builtins.INT8 && format !== 'binary' ? (value: string) => Number(value) : pg.types.getTypeParser(oid, format)) as pg.CustomTypesConfig['getTypeParser'],
};

/** A checked-out connection: `release` returns it to the pool, or destroys it when it broke or its state is unknown. */
export interface PgCheckout {
  readonly client: pg.PoolClient;
  /** The connection error seen while checked out, if any. */
  broken(): Error | undefined;
  release(destroy?: boolean): void;
}

export class PgPool {
  /** `user@host:port/database`, for messages and logs (no secret in it). */
  readonly where: string;
  readonly #pool: pg.Pool;
  readonly #secret: string | undefined;

  constructor(pool: pg.Pool, where: string, secret: string | undefined) {
    this.#pool = pool;
    this.where = where;
    this.#secret = secret;
  }

  /** Takes a connection from the pool (opening one if needed). */
  async checkout(): Promise<PgCheckout> {
    let client: pg.PoolClient;
    try {
      client = await this.#pool.connect();
    } catch (err) {
      throw this.failure(err);
    }
    // pg-pool listens for errors only on idle clients; a checked-out one
    // whose connection drops between queries would emit to no one (a crash)
    let seen: Error | undefined;
    const onError = (err: Error): void => {
      seen ??= err;
    };
    client.on('error', onError);
    let released = false;
    return {
      client,
      broken: () => seen,
      release: (destroy = false) => {
        if (released) return;
        released = true;
        client.off('error', onError);
        client.release(destroy || seen !== undefined ? (seen ?? true) : undefined);
      },
    };
  }

  /** One statement on any pooled connection (outside a transaction of the caller's). */
  async query<R extends pg.QueryResultRow = pg.QueryResultRow>(text: string, params?: unknown[]): Promise<pg.QueryResult<R>> {
    try {
      return await this.#pool.query<R>(text, params);
    } catch (err) {
      throw this.failure(err);
    }
  }

  /**
   * The error to hand on for one pg raised: a connection failure becomes
   * ZEGEL_STORE_UNAVAILABLE with a message of our own; any other error (a
   * constraint, a trigger's refusal) is passed on as it is. Neither carries
   * the password or a connection string.
   */
  failure(err: unknown): Error {
    if (err instanceof ZegelError) return err;
    if (isUnavailable(err)) {
      const e = err as Error & { code?: unknown };
      const code = typeof e.code === 'string' ? ` (${e.code})` : '';
      return pgStoreError('ZEGEL_STORE_UNAVAILABLE', `PostgreSQL ${this.where} unavailable: ${this.redact(e.message)}${code}`);
    }
    if (err instanceof Error) {
      const clean = this.redact(err.message);
      if (clean !== err.message) err.message = clean;
      return err;
    }
    return new Error(this.redact(String(err)));
  }

  /** The text without the password or a connection string's credentials. */
  redact(text: string): string {
    let out = text.replace(/(postgres(?:ql)?:\/\/)[^@\s/]*@/gi, '$1[redacted]@');
    if (this.#secret) out = out.split(this.#secret).join('[redacted]');
    return out;
  }

  /** Connections open, idle, and callers waiting for one. */
  get stats(): { total: number; idle: number; waiting: number } {
    return { total: this.#pool.totalCount, idle: this.#pool.idleCount, waiting: this.#pool.waitingCount };
  }

  /** Closes every connection; waits for checked-out ones to be released. */
  async close(): Promise<void> {
    if (this.#pool.ending) return;
    await this.#pool.end();
  }
}

/** Opens the pool (see PgPoolOptions); with `probe` (the default) one connection is made before it resolves. */
export async function openPgPool(options: PgPoolOptions): Promise<PgPool> {
  const target = parseUrl(options.url);
  const password = options.passwordFile === undefined ? undefined : await readPasswordFile(options.passwordFile);
  const statementTimeoutMs = options.statementTimeoutMs ?? PG_POOL_DEFAULTS.statementTimeoutMs;
  let ca: string | undefined;
  if (target.sslRootCert) {
    try {
      ca = await fsp.readFile(target.sslRootCert, 'utf8');
    } catch (err) {
      throw new ZegelError('ZEGEL_CONFIG_INVALID', `store.url: cannot read sslrootcert ${target.sslRootCert}: ${(err as NodeJS.ErrnoException).code ?? 'error'}`);
    }
  }
  const pool = new pg.Pool({
    host: target.host,
    port: target.port,
    user: target.user,
    database: target.database,
    ...(password === undefined ? {} : { password }),
    ...(target.ssl ? { ssl: { rejectUnauthorized: true, ...(ca ? { ca } : {}) } } : {}),
    application_name: options.applicationName,
    max: options.max ?? PG_POOL_DEFAULTS.max,
    connectionTimeoutMillis: options.connectTimeoutMs ?? PG_POOL_DEFAULTS.connectTimeoutMs,
    statement_timeout: statementTimeoutMs,
    ...(statementTimeoutMs > 0 ? { query_timeout: statementTimeoutMs + READ_TIMEOUT_MARGIN_MS } : {}),
    idle_in_transaction_session_timeout: options.idleInTransactionTimeoutMs ?? PG_POOL_DEFAULTS.idleInTransactionTimeoutMs,
    keepAlive: true,
    types: TYPES,
  });
  const where = `${target.user}@${target.host}:${target.port}/${target.database}`;
  const result = new PgPool(pool, where, password);
  pool.on('error', (err) => {
    options.log?.warn({ store: where, reason: result.redact(err.message) }, 'PostgreSQL dropped an idle connection');
  });
  // Every connection keeps a listener of its own for as long as it lives. pg-pool listens only
  // while a connection is idle or inside its own query(); a server that dies sends each of its
  // sessions a last 57P01 ("terminating connection"), and one that arrives between those
  // windows (after a failed query released the connection, seen with a PostgreSQL restart)
  // would otherwise be an uncaught 'error' event and end the node.
  pool.on('connect', (client) => {
    client.on('error', () => undefined);
  });
  if (options.probe ?? true) {
    try {
      const { rows } = await result.query<{ sc: string; fs: string }>("SELECT current_setting('synchronous_commit') AS sc, current_setting('fsync') AS fs");
      // a commit is acknowledged (and mail accepted) on the strength of the server's flush
      if (rows[0]?.sc === 'off' || rows[0]?.fs === 'off') {
        options.log?.warn({ store: where, synchronous_commit: rows[0].sc, fsync: rows[0].fs }, 'PostgreSQL does not flush commits before answering: a crash can lose accepted mail');
      }
    } catch (err) {
      await pool.end().catch(() => undefined);
      throw err;
    }
  }
  return result;
}
