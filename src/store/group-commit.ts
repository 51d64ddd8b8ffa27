import type { Db } from './db.js';
import { ZegelError } from '../errors.js';
import { SqliteTx, type Transactor, type Tx } from './tx.js';
import { WalSync } from './wal-sync.js';

interface Pending {
  work: (tx: Tx) => unknown;
  resolve: (value: unknown) => void;
  reject: (err: unknown) => void;
}

/**
 * Group commit for SQLite: the embedded store's `transaction` (src/store/tx.ts).
 *
 * Transactions that arrive within a short window (2 ms) are collected and
 * committed in one SQLite transaction, and every caller's promise settles
 * only after that commit is on disk: the WAL is flushed with fdatasync on
 * libuv's thread pool after COMMIT (wal-sync.ts; what `synchronous = FULL`
 * would do inside COMMIT on the main thread). While a group's flush runs,
 * the event loop serves sessions and the next group may commit; groups that
 * commit during one flush share the next. Each
 * piece of work runs in its own savepoint with its own `Tx` handle, so one
 * failing piece rolls back alone; a failing COMMIT rejects the whole group.
 *
 * Work may be async (the repository interface is), but on SQLite it only
 * awaits promises that are already settled, so a group runs within one turn
 * of the event loop: no request handler or timer can run between BEGIN and
 * COMMIT and see a half-done group. Groups never overlap: the next one starts
 * after the previous has committed.
 *
 * A failed flush leaves the store refusing every later write
 * (`ZEGEL_STORE_WRITE`, readiness fails): after a failed fsync the kernel may
 * have dropped the dirty pages, so nothing written since can be trusted to be
 * on disk until a restart re-reads the database (the lesson of PostgreSQL's
 * "fsyncgate").
 */
export class GroupCommitter implements Transactor {
  readonly #db: Db;
  readonly #windowMs: number;
  #pending: Pending[] = [];
  #scheduled = false;
  #flushing: Promise<void> | undefined;
  #closed = false;
  #commits = 0;
  #writes = 0;
  readonly #wal: WalSync | undefined;
  /** Groups committed whose flush has not finished yet. */
  readonly #syncing = new Set<Promise<void>>();
  #failed: ZegelError | undefined;

  readonly #tx;

  constructor(db: Db, options: { windowMs?: number; wal?: WalSync } = {}) {
    this.#db = db;
    this.#windowMs = options.windowMs ?? 2;
    this.#wal = db.memory ? undefined : (options.wal ?? new WalSync(db.name));
    // prepared once: a write costs two statement steps, not two SQL parses
    this.#tx = {
      begin: db.prepare('BEGIN IMMEDIATE'),
      commit: db.prepare('COMMIT'),
      savepoint: db.prepare('SAVEPOINT w'),
      release: db.prepare('RELEASE w'),
      rollbackTo: db.prepare('ROLLBACK TO w'),
    };
  }

  transaction<T>(work: (tx: Tx) => Promise<T> | T): Promise<T> {
    if (this.#closed) return Promise.reject(new ZegelError('ZEGEL_STORE_WRITE', 'store is closed'));
    if (this.#failed) return Promise.reject(this.#failed);
    return new Promise<T>((resolve, reject) => {
      this.#pending.push({ work, resolve: resolve as (value: unknown) => void, reject });
      this.#schedule();
    });
  }

  /** Commits so far and writes so far, for benchmarks and metrics. */
  get stats(): { commits: number; writes: number } {
    return { commits: this.#commits, writes: this.#writes };
  }

  /** Set when a flush of the WAL failed: every later write is refused until a restart. */
  get failed(): ZegelError | undefined {
    return this.#failed;
  }

  /** Commits and flushes what is queued, then refuses new work. */
  async close(): Promise<void> {
    this.#closed = true;
    while (this.#flushing || this.#pending.length || this.#syncing.size) {
      if (this.#flushing) await this.#flushing;
      else if (this.#pending.length) await this.#flush();
      else await Promise.all(this.#syncing);
    }
    await this.#wal?.close();
  }

  #schedule(): void {
    if (this.#scheduled || this.#flushing) return;
    this.#scheduled = true;
    // a short window lets writes from many concurrent sessions and jobs share one commit
    setTimeout(() => {
      this.#scheduled = false;
      void this.#flush();
    }, this.#windowMs);
  }

  #flush(): Promise<void> {
    if (this.#flushing) return this.#flushing;
    const batch = this.#pending;
    this.#pending = [];
    if (!batch.length) return Promise.resolve();
    this.#flushing = this.#run(batch).finally(() => {
      this.#flushing = undefined;
      // work that arrived while this group ran goes into the next one
      if (this.#pending.length) {
        if (this.#closed) void this.#flush();
        else this.#schedule();
      }
    });
    return this.#flushing;
  }

  async #run(batch: Pending[]): Promise<void> {
    const db = this.#db;
    const results: Array<{ ok: true; value: unknown } | { ok: false; error: unknown }> = [];
    try {
      const tx = this.#tx;
      tx.begin.run();
      for (const item of batch) {
        tx.savepoint.run();
        const handle = new SqliteTx();
        try {
          const value = await item.work(handle);
          tx.release.run();
          results.push({ ok: true, value });
        } catch (error) {
          tx.rollbackTo.run();
          tx.release.run();
          results.push({ ok: false, error });
        } finally {
          handle.close();
        }
      }
      tx.commit.run();
    } catch (error) {
      if (db.inTransaction) {
        try {
          db.exec('ROLLBACK');
        } catch {
          // the connection rolls back by itself when COMMIT fails hard
        }
      }
      const failure = new ZegelError('ZEGEL_STORE_WRITE', `store commit failed: ${(error as Error).message}`, { cause: error });
      for (const item of batch) item.reject(failure);
      return;
    }
    this.#commits++;
    this.#writes += batch.length;
    const settle = () =>
      batch.forEach((item, i) => {
        const result = results[i]!;
        if (result.ok) item.resolve(result.value);
        else item.reject(result.error);
      });
    if (!this.#wal) return settle();
    // nobody hears of the commit before it is on disk; the next group need not wait for that
    const refuse = (failure: ZegelError) => batch.forEach((item) => item.reject(failure));
    const syncing = this.#wal.sync().then(
      // a later flush that succeeds does not vouch for pages an earlier failed one may have lost
      () => (this.#failed ? refuse(this.#failed) : settle()),
      (error: unknown) => {
        this.#failed ??= new ZegelError('ZEGEL_STORE_WRITE', `store flush failed, writes refused until a restart: ${(error as Error).message}`, { cause: error });
        refuse(this.#failed);
      },
    );
    this.#syncing.add(syncing);
    void syncing.finally(() => this.#syncing.delete(syncing));
  }
}
