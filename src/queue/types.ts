import type { Tx } from '../store/tx.js';

/**
 * The durable job contract. Drivers (SQLite now, BullMQ later) run the same
 * contract tests; callers see only this interface.
 *
 * - Jobs carry a caller-chosen, deterministic id: adding a job whose id is
 *   already queued is a no-op, so a handler that runs twice adds nothing twice.
 * - A job is at-least-once: after a crash a job that was running runs again,
 *   so handlers are idempotent.
 */
export interface NewJob {
  id: string;
  kind: string;
  payload: unknown;
  /** Earliest start, in clock milliseconds; now when omitted. */
  runAt?: number;
}

export interface Job<P = unknown> {
  id: string;
  kind: string;
  payload: P;
  /**
   * How many earlier runs ended in a retry (or a handler error). A run cut
   * off by a crash or a drain is not counted: claims live in memory only.
   */
  attempts: number;
  createdAt: number;
}

/**
 * What a job's outcome writes besides the job itself. `record` runs inside
 * the transaction that completes, reschedules or holds the job, so the
 * handler's own rows (decisions, delivery outcomes, events) and the job's
 * new state commit together: one commit per job run instead of two, and no
 * window in which the rows say done while the job is still due. `afterCommit`
 * runs once that commit is durable (removing a file the rows released). If
 * the commit fails, neither happened and the job runs again.
 */
export interface JobOutcomeWrites {
  record?: ((tx: Tx) => Promise<unknown>) | undefined;
  afterCommit?: (() => Promise<void>) | undefined;
}

export type JobResult = JobOutcomeWrites &
  (
  /** Finished; `next` jobs are added atomically with the completion where the driver can. */
  | { status: 'done'; next?: NewJob[] }
  /** Not finished; run again at `runAt` (clock milliseconds). */
  | { status: 'retry'; runAt: number }
  /**
   * Not finished and not to be tried again by itself: the job stays in the
   * queue in the `held` state (never due) until an admin makes it due again
   * (`zegel queue retry`) or deletes it (`zegel queue delete --force`).
   */
  | { status: 'held' }
  );

export type JobHandler<P = unknown> = (job: Job<P>) => Promise<JobResult>;

export interface QueueCounts {
  kind: string;
  ready: number;
  delayed: number;
  running: number;
  /** Held jobs (never due until an admin acts), when there are any; not counted in ready or delayed. */
  held?: number;
  /** created_at of the oldest job of this kind, if any. */
  oldestCreatedAt: number | undefined;
}

export interface JobQueue {
  add(jobs: NewJob[]): Promise<void>;
  /** Starts taking jobs of one kind; at most `concurrency` run at once. */
  work<P>(kind: string, handler: JobHandler<P>, options: { concurrency: number }): void;
  /** Looks for due jobs now (after the clock moved, or new work elsewhere); with kinds, only for those. */
  poke(kinds?: string | readonly string[]): void;
  counts(): Promise<QueueCounts[]>;
  /** The held jobs, oldest first (for readiness detail and metrics). */
  held(): Promise<HeldJob[]>;
  /** Resolves when no job is due or running (tests and benchmarks). */
  idle(): Promise<void>;
  /**
   * Stops taking jobs and waits up to `timeoutMs` for running ones. A job still
   * running then is left as it is in the store and runs again after restart.
   */
  close(timeoutMs: number): Promise<void>;
  /** Whether the job carrier (Redis, for BullMQ) answers; absent when jobs need no other server. */
  carrierReachable?(): Promise<boolean>;
}

export interface HeldJob {
  id: string;
  kind: string;
  /** The queue id the job's payload names, if any. */
  messageId: string | undefined;
  createdAt: number;
}
