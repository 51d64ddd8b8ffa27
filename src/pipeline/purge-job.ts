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
 * One chain of jobs: each run completes by adding the next, atomically, with
 * the deterministic id `purge:<slot>` where slot = floor(runAt / interval). Two
 * chains (a start-up job next to a surviving chain) pick the same next id and
 * so merge at once; a job cut off by kill -9 simply runs again.
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
   * Queues a run for the current slot at start-up. A chain that survived a
   * restart holds `purge:<slot + 1>` (or an older, now due slot): this run and
   * that one add the same next id, so the chains merge after one run.
   */
  async ensureScheduled(queue: JobQueue): Promise<void> {
    await queue.add([purgeJob(this.#clock.now(), this.#intervalMs)]);
  }

  readonly handle = async (job: Job<PurgePayload>): Promise<JobResult> => {
    const report = await this.#revocations.purgeDue();
    this.#log.debug({ job: job.id, ...report }, 'purge job ran');
    if (job.payload?.once) return { status: 'done' };
    const slot = Math.floor(this.#clock.now() / this.#intervalMs) + 1;
    return { status: 'done', next: [newJob('purge', `purge:${slot}`, {}, slot * this.#intervalMs)] };
  };
}
