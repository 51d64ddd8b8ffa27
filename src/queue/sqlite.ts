import type { Clock } from '../clock.js';
import type { Logger } from '../log.js';
import type { Db } from '../store/db.js';
import type { GroupCommitter } from '../store/group-commit.js';
import { sqliteTx, type Tx } from '../store/tx.js';
import { heldJob, storedJob, type HeldJobRow, type StoredJob, type StoredJobRow } from './rows.js';
import type { HeldJob, Job, JobHandler, JobQueue, JobResult, NewJob, QueueCounts } from './types.js';

export type { StoredJob } from './rows.js';

interface JobRow {
  id: string;
  kind: string;
  payload: string;
  run_at: number;
  attempts: number;
  created_at: number;
}

interface Worker {
  kind: string;
  handler: JobHandler<unknown>;
  concurrency: number;
  running: Map<string, Promise<void>>;
}

/** Backoff for a handler that threw unexpectedly: 30 s doubling, at most one hour. */
function crashBackoff(attempts: number): number {
  return Math.min(30_000 * 2 ** Math.min(attempts, 7), 3_600_000);
}

/**
 * The SQLite job queue. Jobs live in the `jobs` table of the relay database;
 * which jobs are running is kept in memory only (one process owns the file),
 * so claiming a job costs no disk write and a crash leaves every unfinished job
 * ready to run again after restart. Completions and retries go through the
 * group committer.
 */
export class SqliteQueue implements JobQueue {
  readonly #db: Db;
  readonly #committer: GroupCommitter;
  readonly #clock: Clock;
  readonly #log: Logger;
  readonly #workers = new Map<string, Worker>();
  /** Jobs whose completion could not be stored: not retried before this time. */
  readonly #cooldown = new Map<string, number>();
  readonly #insert;
  readonly #due;
  readonly #complete;
  readonly #reschedule;
  readonly #hold;
  readonly #held;
  #timer: NodeJS.Timeout | undefined;
  #closed = false;
  #pumping = false;
  #pokeAll = false;
  #poked = new Set<string>();

  constructor(db: Db, committer: GroupCommitter, clock: Clock, log: Logger, options: { pollMs?: number } = {}) {
    this.#db = db;
    this.#committer = committer;
    this.#clock = clock;
    this.#log = log;
    this.#insert = db.prepare(
      'INSERT OR IGNORE INTO jobs (id, kind, payload, run_at, attempts, state, created_at) VALUES (?, ?, ?, ?, 0, ?, ?)',
    );
    this.#due = db.prepare(
      `SELECT id, kind, payload, run_at, attempts, created_at FROM jobs
       WHERE kind = ? AND run_at <= ? AND state != 'held'
       ORDER BY run_at, created_at LIMIT ?`,
    );
    this.#complete = db.prepare('DELETE FROM jobs WHERE id = ?');
    this.#reschedule = db.prepare('UPDATE jobs SET run_at = ?, attempts = attempts + 1 WHERE id = ?');
    this.#hold = db.prepare("UPDATE jobs SET state = 'held', attempts = attempts + 1 WHERE id = ?");
    this.#held = db.prepare("SELECT id, kind, payload, created_at FROM jobs WHERE state = 'held' ORDER BY created_at, id");
    this.#timer = setInterval(() => this.poke(), options.pollMs ?? 250);
  }

  /**
   * Adds jobs in the caller's transaction (a message and its first job commit
   * together). Call `poke()` after the commit so a worker looks at once.
   */
  async insert(tx: Tx, jobs: NewJob[]): Promise<void> {
    sqliteTx(tx);
    this.#insertJobs(jobs);
  }

  #insertJobs(jobs: NewJob[]): void {
    const now = this.#clock.now();
    for (const job of jobs) {
      this.#insert.run(job.id, job.kind, JSON.stringify(job.payload ?? null), job.runAt ?? now, 'ready', now);
    }
  }

  async add(jobs: NewJob[]): Promise<void> {
    if (!jobs.length) return;
    await this.#committer.transaction((tx) => this.insert(tx, jobs));
    this.poke([...new Set(jobs.map((j) => j.kind))]);
  }

  work<P>(kind: string, handler: JobHandler<P>, options: { concurrency: number }): void {
    if (this.#workers.has(kind)) throw new Error(`a worker for ${kind} is already registered`);
    this.#workers.set(kind, { kind, handler: handler as JobHandler<unknown>, concurrency: options.concurrency, running: new Map() });
    this.poke();
  }

  /**
   * Looks for due jobs on the next turn of the event loop; many pokes in one
   * turn cost one look per kind. With `kinds`, only those workers look (a
   * look is one indexed query): intake wakes `process`, a finished job its
   * own kind and the kinds of the jobs it added.
   */
  poke(kinds?: string | readonly string[]): void {
    if (this.#closed) return;
    if (kinds === undefined) this.#pokeAll = true;
    else for (const kind of typeof kinds === 'string' ? [kinds] : kinds) this.#poked.add(kind);
    if (this.#pumping) return;
    this.#pumping = true;
    setImmediate(() => {
      this.#pumping = false;
      const all = this.#pokeAll;
      const poked = this.#poked;
      this.#pokeAll = false;
      this.#poked = new Set();
      if (this.#closed) return;
      for (const worker of this.#workers.values()) if (all || poked.has(worker.kind)) this.#pump(worker);
    });
  }

  #pump(worker: Worker): void {
    const free = worker.concurrency - worker.running.size;
    if (free <= 0) return;
    const now = this.#clock.now();
    for (const [id, until] of this.#cooldown) {
      if (until <= now) this.#cooldown.delete(id);
    }
    // running and cooling-down jobs are skipped here rather than in SQL: the
    // query stays a plain index range scan
    const skip = worker.running.size + this.#cooldown.size;
    const rows = (this.#due.all(worker.kind, now, free + skip) as JobRow[]).filter((row) => !worker.running.has(row.id) && !this.#cooldown.has(row.id)).slice(0, free);
    for (const row of rows) {
      const job: Job = {
        id: row.id,
        kind: row.kind,
        payload: JSON.parse(row.payload),
        attempts: row.attempts,
        createdAt: row.created_at,
      };
      const run = this.#run(worker, job).then((kinds) => {
        worker.running.delete(job.id);
        this.poke(kinds);
      });
      worker.running.set(job.id, run);
    }
  }

  /** Runs one job and stores its outcome; resolves to the kinds to look at next (its own: a slot is free; those it added). */
  async #run(worker: Worker, job: Job): Promise<string[]> {
    let result: JobResult;
    try {
      result = await worker.handler(job);
    } catch (err) {
      const runAt = this.#clock.now() + crashBackoff(job.attempts);
      this.#log.error({ job: job.id, kind: job.kind, err: { code: (err as { code?: string }).code, message: (err as Error).message } }, 'job failed unexpectedly; will retry');
      result = { status: 'retry', runAt };
    }
    const next = result.status === 'done' ? (result.next ?? []) : [];
    try {
      // the handler's rows and the job's new state: one commit
      await this.#committer.transaction(async (tx) => {
        if (result.record) await result.record(tx);
        sqliteTx(tx);
        if (result.status === 'done') {
          this.#complete.run(job.id);
          this.#insertJobs(next);
        } else if (result.status === 'held') this.#hold.run(job.id);
        else this.#reschedule.run(result.runAt, job.id);
      });
    } catch (err) {
      // The outcome could not be stored: the job stays as it was and runs again
      // later. Handlers are idempotent, so that is safe; the pause keeps a full
      // disk from turning into a busy loop.
      this.#cooldown.set(job.id, this.#clock.now() + 5_000);
      this.#log.error({ job: job.id, kind: job.kind, err: { message: (err as Error).message } }, 'could not store job outcome');
      return [job.kind];
    }
    if (result.afterCommit) {
      await result.afterCommit().catch((err: Error) => this.#log.warn({ job: job.id, kind: job.kind, err: { message: err.message } }, 'job clean-up after its commit failed; start-up sweeps what is left'));
    }
    return [job.kind, ...new Set(next.map((j) => j.kind))];
  }

  async counts(): Promise<QueueCounts[]> {
    const now = this.#clock.now();
    const rows = this.#db
      .prepare(
        `SELECT kind, SUM(run_at <= ? AND state != 'held') AS due, SUM(run_at > ? AND state != 'held') AS delayed,
                SUM(state = 'held') AS held, MIN(created_at) AS oldest
         FROM jobs GROUP BY kind ORDER BY kind`,
      )
      .all(now, now) as Array<{ kind: string; due: number; delayed: number; held: number; oldest: number | null }>;
    return rows.map((row) => {
      const running = this.#workers.get(row.kind)?.running.size ?? 0;
      return {
        kind: row.kind,
        ready: Math.max(0, row.due - running),
        delayed: row.delayed,
        running,
        ...(row.held ? { held: row.held } : {}),
        oldestCreatedAt: row.oldest ?? undefined,
      };
    });
  }

  async held(): Promise<HeldJob[]> {
    return this.heldSync();
  }

  /** The held jobs, read at once (readiness checks are synchronous). */
  heldSync(): HeldJob[] {
    return (this.#held.all() as HeldJobRow[]).map(heldJob);
  }

  async idle(): Promise<void> {
    for (;;) {
      const counts = await this.counts();
      const busy = [...this.#workers.values()].some((w) => w.running.size > 0);
      // kinds nobody works on (jobs held for a later feature) never count as busy
      if (!busy && counts.every((c) => c.ready === 0 || !this.#workers.has(c.kind))) return;
      this.poke();
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
  }

  async close(timeoutMs: number): Promise<void> {
    this.#closed = true;
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = undefined;
    const running = [...this.#workers.values()].flatMap((w) => [...w.running.values()]);
    if (!running.length) return;
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      Promise.allSettled(running),
      new Promise((resolve) => {
        timer = setTimeout(resolve, timeoutMs);
      }),
    ]);
    clearTimeout(timer);
  }

  // ---- the operator's view of the jobs table (zegel queue, zegel messages): prepared on first use

  #adminStmt: ReturnType<typeof prepareAdmin> | undefined;

  get #admin(): ReturnType<typeof prepareAdmin> {
    return (this.#adminStmt ??= prepareAdmin(this.#db));
  }

  /** Every job in run order (run time, then age, then id), as stored. */
  async list(_tx?: Tx): Promise<StoredJob[]> {
    return (this.#admin.list.all() as StoredJobRow[]).map(storedJob);
  }

  /** One job, or undefined. */
  async get(id: string, _tx?: Tx): Promise<StoredJob | undefined> {
    const row = this.#admin.get.get(id) as StoredJobRow | undefined;
    return row ? storedJob(row) : undefined;
  }

  /** Makes a job due at `at` and ready (a held one too); false when there is no such job. Call `poke()` after the commit. */
  async retryAt(tx: Tx, id: string, at: number): Promise<boolean> {
    sqliteTx(tx);
    return this.#admin.retry.run(at, id).changes === 1;
  }

  /** Removes a job whatever its state; false when there is no such job. */
  async remove(tx: Tx, id: string): Promise<boolean> {
    sqliteTx(tx);
    return this.#admin.remove.run(id).changes === 1;
  }
}

function prepareAdmin(db: Db) {
  return {
    list: db.prepare('SELECT id, kind, payload, run_at, attempts, state, created_at FROM jobs ORDER BY run_at, created_at, id'),
    get: db.prepare('SELECT id, kind, payload, run_at, attempts, state, created_at FROM jobs WHERE id = ?'),
    retry: db.prepare("UPDATE jobs SET run_at = ?, state = 'ready' WHERE id = ?"),
    remove: db.prepare('DELETE FROM jobs WHERE id = ?'),
  };
}
