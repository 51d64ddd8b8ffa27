import type { Logger } from '../log.js';
import type { Db } from './db.js';

/**
 * Byte-level shredding of what a revocation, expiry or purge deleted.
 *
 * Every connection openDb makes runs with `secure_delete = ON`, so SQLite
 * overwrites deleted cells and freed pages with zeros in the pages it writes.
 * But in WAL mode those pages go to the `-wal` file first: until a checkpoint
 * copies them into the database file, the old page images (with the wrap and
 * K_srv) are still in the database file, and older frames stay in the WAL
 * until it is truncated (a reset WAL is re-used from its start, not zeroed).
 * So after each shred the WAL is checkpointed with TRUNCATE: every frame is
 * copied back and the `-wal` file is cut to zero bytes.
 *
 * A TRUNCATE checkpoint cannot complete while another connection (the CLI, an
 * audit export, a reader with an open transaction) holds a read snapshot of
 * the WAL or a write lock. It is tried without waiting for locks (the relay's
 * event loop never blocks on another process), then again with a bounded
 * backoff, and if still busy a follow-up timer keeps trying until it
 * succeeds. Each purge run ends with a checkpoint too (revocation.ts), so a
 * shred a process could not finish before it exited (the CLI) completes at
 * the relay's next purge run at the latest.
 *
 * The `-shm` file (the WAL index) holds page numbers, salts and checksums, no
 * page content.
 */

/** One row of `PRAGMA wal_checkpoint`: busy = 1 when it could not complete. */
export interface CheckpointResult {
  busy: number;
  log: number;
  checkpointed: number;
}

/** Backoff of the first attempts after a shred, in ms (about 2 s in all). */
export const SHRED_RETRY_MS = [10, 25, 50, 100, 250, 500, 1000] as const;
/** The follow-up timer: first delay and cap, in ms. */
export const SHRED_FOLLOW_UP_MS = 1000;
export const SHRED_FOLLOW_UP_MAX_MS = 30_000;

export class WalShredder {
  readonly #db: Db;
  #log: Logger | undefined;
  readonly #retryMs: readonly number[];
  #timer: NodeJS.Timeout | undefined;
  #followUpMs = SHRED_FOLLOW_UP_MS;
  #pending = false;
  #closed = false;
  #attempts = 0;
  #waiters: Array<() => void> = [];

  constructor(db: Db, options: { log?: Logger | undefined; retryMs?: readonly number[] } = {}) {
    this.#db = db;
    this.#log = options.log;
    this.#retryMs = options.retryMs ?? SHRED_RETRY_MS;
  }

  /** A logger for the follow-up's warnings (the relay sets it; the CLI has none). */
  set log(log: Logger | undefined) {
    this.#log ??= log;
  }

  /** A shred waits for its checkpoint (a busy reader or writer). */
  get pending(): boolean {
    return this.#pending;
  }

  /** Checkpoint attempts so far (for tests and metrics). */
  get attempts(): number {
    return this.#attempts;
  }

  /**
   * One TRUNCATE checkpoint, without waiting for locks: busy_timeout is 0 for
   * the call, so a busy reader makes it return busy at once. True when the WAL
   * was copied back and cut to zero bytes.
   */
  tryNow(): boolean {
    if (!this.#db.open) return false;
    // a checkpoint cannot run inside this connection's own transaction
    if (this.#db.inTransaction) return false;
    this.#attempts++;
    const timeout = this.#db.pragma('busy_timeout', { simple: true }) as number;
    this.#db.pragma('busy_timeout = 0');
    try {
      const [row] = this.#db.pragma('wal_checkpoint(TRUNCATE)') as CheckpointResult[];
      return row !== undefined && row.busy === 0;
    } catch (err) {
      const code = (err as { code?: unknown }).code;
      if (typeof code === 'string' && (code.startsWith('SQLITE_BUSY') || code.startsWith('SQLITE_LOCKED'))) return false;
      throw err;
    } finally {
      this.#db.pragma(`busy_timeout = ${Math.trunc(timeout)}`);
    }
  }

  /**
   * Truncates the WAL after a shred: now, then with the bounded backoff.
   * Resolves true once done; false when still busy, in which case the
   * follow-up timer goes on trying (until it succeeds or the store closes).
   */
  async shred(): Promise<boolean> {
    this.#pending = true;
    if (this.tryNow()) return this.#done();
    for (const ms of this.#retryMs) {
      await delay(ms);
      if (this.#closed) return false;
      if (this.tryNow()) return this.#done();
    }
    this.#log?.warn({ attempts: this.#attempts }, 'shred: the WAL checkpoint waits for another connection; retrying in the background');
    this.#arm();
    return false;
  }

  /** Resolves once no shred waits for its checkpoint (at once when none does). */
  settled(): Promise<void> {
    if (!this.#pending) return Promise.resolve();
    return new Promise((resolve) => this.#waiters.push(resolve));
  }

  /** Stops the follow-up timer (the database is closing). A pending shred completes at the next purge run. */
  close(): void {
    this.#closed = true;
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  #done(): true {
    this.#pending = false;
    this.#followUpMs = SHRED_FOLLOW_UP_MS;
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = undefined;
    const waiters = this.#waiters;
    this.#waiters = [];
    for (const resolve of waiters) resolve();
    return true;
  }

  #arm(): void {
    if (this.#closed || this.#timer) return;
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      if (this.#closed || !this.#pending) return;
      if (!this.#db.open) {
        // closed without close(): the next purge run of whoever opens it completes the shred
        this.close();
        return;
      }
      let ok = false;
      try {
        ok = this.tryNow();
      } catch (err) {
        this.#log?.warn({ err: { message: (err as Error).message } }, 'shred: WAL checkpoint failed; retrying');
      }
      if (ok) {
        this.#log?.info({ attempts: this.#attempts }, 'shred: WAL checkpoint completed');
        this.#done();
        return;
      }
      this.#followUpMs = Math.min(this.#followUpMs * 2, SHRED_FOLLOW_UP_MAX_MS);
      this.#arm();
    }, this.#followUpMs);
    // a pending shred never keeps the process alive: the next purge run (or start-up) completes it
    this.#timer.unref();
  }
}

const shredders = new WeakMap<Db, WalShredder>();

/** The one shredder of a connection (its follow-up timer is per connection). */
export function shredderFor(db: Db, log?: Logger): WalShredder {
  let shredder = shredders.get(db);
  if (!shredder) {
    shredder = new WalShredder(db, { log });
    shredders.set(db, shredder);
  } else if (log) shredder.log = log;
  return shredder;
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
