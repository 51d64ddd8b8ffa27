import type { DeliverPayload } from '../deliver/deliver-job.js';
import type { ProcessPayload } from '../pipeline/process-job.js';
import type { PurgePayload } from '../pipeline/purge-job.js';
import type { SecurePayload } from '../pipeline/secure-job.js';
import type { JobHandler, JobQueue, NewJob } from './types.js';

/**
 * The registry of job kinds: the one list the relay's workers, the metrics
 * (a series per kind from the first scrape) and the queue CLI read. A kind
 * added here without a worker does not compile (`registerWorkers` wants one
 * per kind).
 *
 * - `process`: classify a message and decide per recipient (src/pipeline/process-job.ts)
 * - `secure`: encrypt, make links, queue notifications and the receipt (src/pipeline/secure-job.ts)
 * - `deliver`: hand a message to the next hop on one route (src/deliver/deliver-job.ts)
 * - `purge`: expire and purge secure messages, run scheduled revocations (src/pipeline/purge-job.ts)
 */
export const JOB_KINDS = ['process', 'secure', 'deliver', 'purge'] as const;

export type JobKind = (typeof JOB_KINDS)[number];

/** The payload each kind carries. */
export interface JobPayloads {
  process: ProcessPayload;
  secure: SecurePayload;
  deliver: DeliverPayload;
  purge: PurgePayload;
}

/** Kinds whose jobs work on one message (its queue id is `payload.messageId`): the queue CLI's retry and delete act on that message. */
export const MESSAGE_JOB_KINDS: ReadonlySet<JobKind> = new Set<JobKind>(['process', 'secure', 'deliver']);

export function isJobKind(kind: string): kind is JobKind {
  return (JOB_KINDS as readonly string[]).includes(kind);
}

/** A new job of a registered kind, its payload checked against the kind. */
export function newJob<K extends JobKind>(kind: K, id: string, payload: JobPayloads[K], runAt?: number): NewJob {
  return runAt === undefined ? { id, kind, payload } : { id, kind, payload, runAt };
}

export type JobWorkers = { [K in JobKind]: { handle: JobHandler<JobPayloads[K]>; concurrency: number } };

/** Starts one worker per registered kind. */
export function registerWorkers(queue: JobQueue, workers: JobWorkers): void {
  for (const kind of JOB_KINDS) {
    const worker = workers[kind] as { handle: JobHandler<unknown>; concurrency: number };
    queue.work(kind, worker.handle, { concurrency: worker.concurrency });
  }
}
