import type { Clock } from '../clock.js';
import type { Logger } from '../log.js';
import type { Job, JobQueue, JobResult, NewJob } from '../queue/types.js';
import type { Revocations } from '../secure/revocation.js';
import type { Tx } from '../store/tx.js';
import { newJob } from '../queue/registry.js';

/**
 * The periodic purge job (kind `purge`): expires due messages, applies due
 * scheduled revocations, purges ciphertext no link can open any more and
 * deletes reader sessions and codes past their expiry (Revocations.purgeDue).
 *
 * One chain of jobs per store (per cluster on PostgreSQL): each run completes
 * by adding the next, atomically, with the deterministic id `purge:<slot>`
 * where slot = floor(runAt / interval); start-up adds the chain's next id
 * (`ensureScheduled`), never one of the current slot. So however many nodes
 * start or restart, each slot's job exists once and runs once (the job
 * table's id is unique; a second insert of an id is a no-op); a job cut off
 * by kill -9 simply runs again.
 * `once` jobs (a revocation scheduled for an exact moment) run a purge without
 * adding a next one.
 * Every run ends with a WAL checkpoint that truncates the `-wal` file
 * (Revocations.purgeDue, store/shred.ts): a shred that another process could
 * not finish (a busy reader while the CLI revoked) completes here.
 */

export const PURGE_INTERVAL_MS = 5 * 60_000;

export interface PurgePayload {
  /** Do not chain: a one-off run (e.g. at a scheduled revocation moment). */
  once?: boolean;
}

/** The chain's job for the slot that contains `at`. */
export function purgeJob(at: number, intervalMs = PURGE_INTERVAL_MS, runAt = at): NewJob {
  return newJob('purge', `purge:${Math.floor(at / intervalMs)}`, {}, runAt);
}

/** A one-off purge run at `at` (deterministic per moment). */
export function purgeOnceJob(at: number): NewJob {
  return newJob('purge', `purge-at:${at}`, { once: true }, at);
}

/**
 * Queues a one-off purge run at `at` in the caller's transaction, for a
 * process without workers of its own (the CLI): the relay picks it up at its
 * next poll. Idempotent per moment (the job id is deterministic).
 */
export async function queuePurgeOnce(tx: Tx, jobs: { insert(tx: Tx, jobs: NewJob[]): Promise<void> }, at: number): Promise<void> {
  await jobs.insert(tx, [purgeOnceJob(at)]);
}

export class PurgeWorker {
  readonly #revocations: Revocations;
  readonly #clock: Clock;
  readonly #log: Logger;
  readonly #intervalMs: number;

  constructor(deps: { revocations: Revocations; clock: Clock; log: Logger; intervalMs?: number | undefined }) {
    this.#revocations = deps.revocations;
    this.#clock = deps.clock;
    this.#log = deps.log;
    this.#intervalMs = deps.intervalMs ?? PURGE_INTERVAL_MS;
  }

  /**
   * Joins the chain at start-up by adding its *next* job, `purge:<slot + 1>`:
   * the id the chain's current run adds when it completes (a job of this
   * slot that ran already, or runs now on any node, adds exactly it), so
   * start-up never runs a purge of its own. Nodes starting together add the
   * same id (one row: the insert ignores an id that is there), a restart
   * within a slot whose purge ran already adds nothing new, and an overdue
   * job left from before (a long stop) runs at once and merges into it.
   * The first run of a fresh database is at the next slot boundary.
   */
  async ensureScheduled(queue: JobQueue): Promise<void> {
    const slot = Math.floor(this.#clock.now() / this.#intervalMs) + 1;
    await queue.add([purgeJob(slot * this.#intervalMs, this.#intervalMs)]);
  }

  readonly handle = async (job: Job<PurgePayload>): Promise<JobResult> => {
    const report = await this.#revocations.purgeDue();
    this.#log.debug({ job: job.id, ...report }, 'purge job ran');
    if (job.payload?.once) return { status: 'done' };
    const slot = Math.floor(this.#clock.now() / this.#intervalMs) + 1;
    return { status: 'done', next: [newJob('purge', `purge:${slot}`, {}, slot * this.#intervalMs)] };
  };
}
