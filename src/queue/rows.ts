import type { HeldJob } from './types.js';

/**
 * The `jobs` table's rows as the admin commands and readiness checks see
 * them: one mapping for both drivers (src/queue/sqlite.ts, src/queue/pg-jobs.ts).
 */

/** A row of the jobs table as an operator sees it. */
export interface StoredJob {
  id: string;
  kind: string;
  /** `ready` (due at runAt) or `held` (waits for an admin: src/deliver/deliver-job.ts). */
  state: string;
  runAt: number;
  attempts: number;
  createdAt: number;
  /** The queue id in the payload (process, secure, deliver jobs), if any. */
  messageId: string | undefined;
}

/** The columns `storedJob` reads. */
export interface StoredJobRow {
  id: string;
  kind: string;
  payload: string;
  run_at: number;
  attempts: number;
  state: string;
  created_at: number;
}

/** The columns `heldJob` reads. */
export type HeldJobRow = Pick<StoredJobRow, 'id' | 'kind' | 'payload' | 'created_at'>;

/** The queue id a job's JSON payload names (`messageId`), if any. */
export function messageIdOf(payload: string): string | undefined {
  try {
    const parsed = JSON.parse(payload) as { messageId?: unknown } | null;
    return typeof parsed?.messageId === 'string' ? parsed.messageId : undefined;
  } catch {
    // a payload that is not JSON names no message
    return undefined;
  }
}

export function storedJob(row: StoredJobRow): StoredJob {
  return { id: row.id, kind: row.kind, state: row.state, runAt: row.run_at, attempts: row.attempts, createdAt: row.created_at, messageId: messageIdOf(row.payload) };
}

export function heldJob(row: HeldJobRow): HeldJob {
  return { id: row.id, kind: row.kind, messageId: messageIdOf(row.payload), createdAt: row.created_at };
}
