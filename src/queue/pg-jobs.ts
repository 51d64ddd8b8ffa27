import { ZegelError } from '../errors.js';
import type { Clock } from '../clock.js';
import type { PgPool } from '../store/pg/connect.js';
import { pgTx } from '../store/pg/tx.js';
import type { Tx } from '../store/tx.js';
import { heldJob, storedJob, type HeldJobRow, type StoredJob, type StoredJobRow } from './rows.js';
import type { HeldJob, Job, NewJob } from './types.js';

/**
 * The jobs table on PostgreSQL: the durable half of the BullMQ driver
 * (src/queue/bullmq.ts). Every job lives here from the commit that adds it to
 * the commit that completes it; BullMQ only carries ids to workers.
 *
 * A worker takes a job with a claim: one UPDATE that sets a lease (an owner
 * token and `lease_until` in the server's clock) on a row that is due, not
 * held and not leased, or whose lease expired (its node died). The lease is
 * renewed while the handler runs. The outcome (complete, reschedule, hold)
 * is written only while the token still owns the row, in the transaction of
 * the handler's own rows: a run whose lease another node took over commits
 * nothing (ZEGEL_JOB_LEASE_LOST), so one run per claim writes its outcome.
 *
 * Due times (`run_at`) are in the relay's clock, as on SQLite; leases in the
 * server's (`clock_timestamp()`), so nodes whose clocks differ agree on them.
 */

/** The server's clock in milliseconds. */
const DB_NOW = '(extract(epoch from clock_timestamp()) * 1000)::bigint';
/** A row no live claim holds. */
const UNLEASED = `(lease_until IS NULL OR lease_until < ${DB_NOW})`;

/** What BullMQ needs to carry a job: its id, kind, attempt, dispatch generation and due time. */
export interface JobRef {
  id: string;
  kind: string;
  attempts: number;
  dispatch: number;
  runAt: number;
}

/** A claimed job: the handler's view plus the claim's token. */
export interface ClaimedJob extends Job {
  token: string;
  runAt: number;
}

interface RefRow {
  id: string;
  kind: string;
  attempts: number;
  dispatch: number;
  run_at: number;
}

export interface PgJobCounts {
  kind: string;
  due: number;
  delayed: number;
  held: number;
  running: number;
  oldest: number | undefined;
}

const ref = (row: RefRow): JobRef => ({ id: row.id, kind: row.kind, attempts: row.attempts, dispatch: row.dispatch, runAt: row.run_at });

function leaseLost(id: string): ZegelError {
  return new ZegelError('ZEGEL_JOB_LEASE_LOST', `job ${id}: its lease was taken over by another node; this run's outcome is not written`);
}

export class PgJobs {
  readonly #pool: PgPool;
  readonly #clock: Clock;
  readonly #leaseMs: number;

  constructor(pool: PgPool, clock: Clock, options: { leaseMs: number }) {
    this.#pool = pool;
    this.#clock = clock;
    this.#leaseMs = options.leaseMs;
  }

  get leaseMs(): number {
    return this.#leaseMs;
  }

  /** Adds jobs in the caller's transaction; an id already there is left as it is. Resolves to the rows it added. */
  async insert(tx: Tx, jobs: readonly NewJob[]): Promise<JobRef[]> {
    if (!jobs.length) return [];
    const now = this.#clock.now();
    const { rows } = await pgTx(tx).query<RefRow>(
      `INSERT INTO jobs (id, kind, payload, run_at, attempts, state, created_at)
       SELECT id, kind, payload, run_at, 0, 'ready', $5 FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[]) AS j(id, kind, payload, run_at)
       ON CONFLICT (id) DO NOTHING
       RETURNING id, kind, attempts, dispatch, run_at`,
      [jobs.map((j) => j.id), jobs.map((j) => j.kind), jobs.map((j) => JSON.stringify(j.payload ?? null)), jobs.map((j) => j.runAt ?? now), now],
    );
    return rows.map(ref);
  }

  /** Takes a due job for `token`; undefined when it is gone, not due, held, or leased by a live claim. */
  async claim(id: string, token: string): Promise<ClaimedJob | undefined> {
    const { rows } = await this.#pool.query<StoredJobRow>(
      `UPDATE jobs SET lease_owner = $2, lease_until = ${DB_NOW} + $3
       WHERE id = $1 AND state <> 'held' AND run_at <= $4 AND ${UNLEASED}
       RETURNING id, kind, payload, run_at, attempts, state, created_at`,
      [id, token, this.#leaseMs, this.#clock.now()],
    );
    const row = rows[0];
    if (!row) return undefined;
    return { id: row.id, kind: row.kind, payload: JSON.parse(row.payload), attempts: row.attempts, createdAt: row.created_at, runAt: row.run_at, token };
  }

  /** Extends a claim; false when the token no longer owns the row (done, or taken over). */
  async renew(id: string, token: string): Promise<boolean> {
    const { rowCount } = await this.#pool.query(`UPDATE jobs SET lease_until = ${DB_NOW} + $3 WHERE id = $1 AND lease_owner = $2`, [id, token, this.#leaseMs]);
    return rowCount === 1;
  }

  /** Removes a finished job and adds its next jobs, in the caller's transaction; ZEGEL_JOB_LEASE_LOST when the claim was lost. */
  async complete(tx: Tx, id: string, token: string, next: readonly NewJob[]): Promise<JobRef[]> {
    const { rowCount } = await pgTx(tx).query('DELETE FROM jobs WHERE id = $1 AND lease_owner = $2', [id, token]);
    if (rowCount !== 1) throw leaseLost(id);
    return this.insert(tx, next);
  }

  /** Makes the job due again at `runAt` with one more attempt, and lets go of it. */
  async reschedule(tx: Tx, id: string, token: string, runAt: number): Promise<JobRef> {
    const { rows } = await pgTx(tx).query<RefRow>(
      `UPDATE jobs SET run_at = $3, attempts = attempts + 1, lease_owner = NULL, lease_until = NULL
       WHERE id = $1 AND lease_owner = $2 RETURNING id, kind, attempts, dispatch, run_at`,
      [id, token, runAt],
    );
    if (!rows[0]) throw leaseLost(id);
    return ref(rows[0]);
  }

  /** Holds the job (never due until an admin acts), with one more attempt, and lets go of it. */
  async hold(tx: Tx, id: string, token: string): Promise<void> {
    const { rowCount } = await pgTx(tx).query(
      "UPDATE jobs SET state = 'held', attempts = attempts + 1, lease_owner = NULL, lease_until = NULL WHERE id = $1 AND lease_owner = $2",
      [id, token],
    );
    if (rowCount !== 1) throw leaseLost(id);
  }

  /** Lets go of claims (a node that stops with jobs still running): those jobs are due again at once. */
  async release(tokens: readonly string[]): Promise<number> {
    if (!tokens.length) return 0;
    const { rowCount } = await this.#pool.query('UPDATE jobs SET lease_owner = NULL, lease_until = NULL WHERE lease_owner = ANY($1::text[])', [tokens]);
    return rowCount ?? 0;
  }

  /** Due, not held, not leased jobs that have been due at least `graceMs`, oldest due first (the reconciler's scan). */
  async dueUnleased(limit: number, graceMs: number): Promise<JobRef[]> {
    const { rows } = await this.#pool.query<RefRow>(
      `SELECT id, kind, attempts, dispatch, run_at FROM jobs
       WHERE state <> 'held' AND run_at <= $1 AND ${UNLEASED}
       ORDER BY run_at, id LIMIT $2`,
      [this.#clock.now() - graceMs, limit],
    );
    return rows.map(ref);
  }

  /** Raises a due, unleased job's dispatch generation from `dispatch`; the new ref, or undefined when the row moved on meanwhile. */
  async redispatch(id: string, dispatch: number): Promise<JobRef | undefined> {
    const { rows } = await this.#pool.query<RefRow>(
      `UPDATE jobs SET dispatch = dispatch + 1
       WHERE id = $1 AND dispatch = $2 AND state <> 'held' AND ${UNLEASED}
       RETURNING id, kind, attempts, dispatch, run_at`,
      [id, dispatch],
    );
    return rows[0] ? ref(rows[0]) : undefined;
  }

  /** Per kind: due (unleased), delayed, held, running (leased by a live claim anywhere in the cluster), the oldest created_at. */
  async counts(): Promise<PgJobCounts[]> {
    const leased = `(lease_until IS NOT NULL AND lease_until >= ${DB_NOW})`;
    const { rows } = await this.#pool.query<{ kind: string; due: number; delayed: number; held: number; running: number; oldest: number | null }>(
      `SELECT kind,
              count(*) FILTER (WHERE state <> 'held' AND run_at <= $1 AND NOT ${leased}) AS due,
              count(*) FILTER (WHERE state <> 'held' AND run_at > $1 AND NOT ${leased}) AS delayed,
              count(*) FILTER (WHERE state = 'held') AS held,
              count(*) FILTER (WHERE state <> 'held' AND ${leased}) AS running,
              min(created_at) AS oldest
       FROM jobs GROUP BY kind ORDER BY kind`,
      [this.#clock.now()],
    );
    return rows.map((r) => ({ kind: r.kind, due: r.due, delayed: r.delayed, held: r.held, running: r.running, oldest: r.oldest ?? undefined }));
  }

  async held(): Promise<HeldJob[]> {
    const { rows } = await this.#pool.query<HeldJobRow>(
      "SELECT id, kind, payload, created_at FROM jobs WHERE state = 'held' ORDER BY created_at, id",
    );
    return rows.map(heldJob);
  }

  // ---- the operator's view (zegel queue, zegel messages), as SqliteQueue offers it

  async list(tx?: Tx): Promise<StoredJob[]> {
    const sql = 'SELECT id, kind, payload, run_at, attempts, state, created_at FROM jobs ORDER BY run_at, created_at, id';
    const { rows } = tx ? await pgTx(tx).query<StoredJobRow>(sql) : await this.#pool.query<StoredJobRow>(sql);
    return rows.map(storedJob);
  }

  async get(id: string, tx?: Tx): Promise<StoredJob | undefined> {
    const sql = 'SELECT id, kind, payload, run_at, attempts, state, created_at FROM jobs WHERE id = $1';
    const { rows } = tx ? await pgTx(tx).query<StoredJobRow>(sql, [id]) : await this.#pool.query<StoredJobRow>(sql, [id]);
    return rows[0] ? storedJob(rows[0]) : undefined;
  }

  /** Makes a job due at `at` and ready (a held one too); the ref to dispatch after the commit, or undefined when there is no such job. */
  async retryAt(tx: Tx, id: string, at: number): Promise<JobRef | undefined> {
    const { rows } = await pgTx(tx).query<RefRow>(
      "UPDATE jobs SET run_at = $2, state = 'ready' WHERE id = $1 RETURNING id, kind, attempts, dispatch, run_at",
      [id, at],
    );
    return rows[0] ? ref(rows[0]) : undefined;
  }

  async remove(tx: Tx, id: string): Promise<boolean> {
    const { rowCount } = await pgTx(tx).query('DELETE FROM jobs WHERE id = $1', [id]);
    return rowCount === 1;
  }
}

