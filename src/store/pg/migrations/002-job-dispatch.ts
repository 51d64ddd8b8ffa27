import type { PgMigration } from './index.js';

/**
 * Version 2: what the BullMQ job driver (src/queue/bullmq.ts,
 * src/queue/pg-jobs.ts) needs on the jobs table, where PostgreSQL holds
 * the jobs and BullMQ only carries their ids.
 *
 * - `lease_owner`, `lease_until`: a claim. A worker that takes a job sets
 *   both (a token of its own, and the server's clock in milliseconds plus
 *   the lease), renews `lease_until` while the handler runs, and writes the
 *   outcome only while it still owns the lease. A job whose lease expired
 *   (its node died) is due again.
 * - `dispatch`: the generation of the job's BullMQ job. The reconciler
 *   raises it when the BullMQ job of a due, unleased row is stuck active
 *   (its worker is gone), so a fresh BullMQ job carries the row again.
 * - `jobs_dispatch`: the reconciler's scan (due, not held, oldest first).
 *
 * The roles' table grants on jobs (001) cover the new columns.
 */
export const jobDispatch: PgMigration = {
  version: 2,
  name: 'job-dispatch',
  sql: `
ALTER TABLE jobs ADD COLUMN lease_owner text;
ALTER TABLE jobs ADD COLUMN lease_until bigint;
ALTER TABLE jobs ADD COLUMN dispatch integer NOT NULL DEFAULT 0;
CREATE INDEX jobs_dispatch ON jobs(run_at) WHERE state <> 'held';
`,
};
