import type { Db } from './db.js';
import { ZegelError } from '../errors.js';

interface Pending {
  work: () => unknown;
  resolve: (value: unknown) => void;
  reject: (err: unknown) => void;
}

/**
 * Group commit for SQLite. Writes that arrive within a short window (2 ms) are
 * collected and committed in one transaction (one WAL fsync with
 * synchronous=FULL), and every caller's promise settles only after that commit
 * is on disk. Each write runs in its own savepoint, so one failing write rolls
 * back alone; a failing COMMIT rejects the whole group.
 */
export class GroupCommitter {
  readonly #db: Db;
  readonly #windowMs: number;
  #pending: Pending[] = [];
  #scheduled = false;
  #closed = false;
  #commits = 0;
  #writes = 0;

  readonly #tx;

  constructor(db: Db, options: { windowMs?: number } = {}) {
    this.#db = db;
    this.#windowMs = options.windowMs ?? 2;
    // prepared once: a write costs two statement steps, not two SQL parses
    this.#tx = {
      begin: db.prepare('BEGIN IMMEDIATE'),
      commit: db.prepare('COMMIT'),
      savepoint: db.prepare('SAVEPOINT w'),
      release: db.prepare('RELEASE w'),
      rollbackTo: db.prepare('ROLLBACK TO w'),
    };
  }

  /** Runs `work` inside the next group transaction; resolves after it is durable. */
  write<T>(work: () => T): Promise<T> {
    if (this.#closed) return Promise.reject(new ZegelError('ZEGEL_STORE_WRITE', 'store is closed'));
    return new Promise<T>((resolve, reject) => {
      this.#pending.push({ work, resolve: resolve as (value: unknown) => void, reject });
      if (!this.#scheduled) {
        this.#scheduled = true;
        // a short window lets writes from many concurrent sessions and jobs share one commit
        setTimeout(() => this.#flush(), this.#windowMs);
      }
    });
  }

  /** Commits so far and writes so far, for benchmarks and metrics. */
  get stats(): { commits: number; writes: number } {
    return { commits: this.#commits, writes: this.#writes };
  }

  close(): void {
    this.#flush();
    this.#closed = true;
  }

  #flush(): void {
    this.#scheduled = false;
    const batch = this.#pending;
    this.#pending = [];
    if (!batch.length) return;
    const db = this.#db;
    const results: Array<{ ok: true; value: unknown } | { ok: false; error: unknown }> = [];
    try {
      const tx = this.#tx;
      tx.begin.run();
      for (const item of batch) {
        tx.savepoint.run();
        try {
          const value = item.work();
          tx.release.run();
          results.push({ ok: true, value });
        } catch (error) {
          tx.rollbackTo.run();
          tx.release.run();
          results.push({ ok: false, error });
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
    batch.forEach((item, i) => {
      const result = results[i]!;
      if (result.ok) item.resolve(result.value);
      else item.reject(result.error);
    });
  }
}
