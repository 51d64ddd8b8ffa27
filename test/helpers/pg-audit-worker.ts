import path from 'node:path';
import type { Logger } from '../../src/log.js';
import { AuditCheckpointWorker } from '../../src/audit/checkpoint-job.js';
import type { PeriodicLeader } from '../../src/audit/leader.js';
import { systemClock } from '../../src/clock.js';
import { PgAuditTrail } from '../../src/store/pg/audit.js';
import type { PgPool } from '../../src/store/pg/connect.js';
import { PgEventLog } from '../../src/store/pg/events.js';
import { PgSessionLeader } from '../../src/store/pg/leader.js';
import { PgTransactor } from '../../src/store/pg/tx.js';

/**
 * One node's audit checkpoint worker on PostgreSQL, as the relay composes
 * it (src/relay.ts): PgAuditTrail on the node's pool, the signing key file
 * every node shares, and a PgSessionLeader unless `leader` replaces it
 * (soleLeader for an unguarded control). The caller stops it.
 */
export function pgAuditWorker(
  pool: PgPool,
  options: { signingKeyFile: string; intervalMs: number; retentionMs: number; log: Logger; leader?: PeriodicLeader },
): { worker: AuditCheckpointWorker; leader: PeriodicLeader & { readonly leading?: boolean } } {
  const leader = options.leader ?? new PgSessionLeader(pool, { log: options.log });
  const worker = new AuditCheckpointWorker({
    trail: new PgAuditTrail(pool, new PgTransactor(pool), new PgEventLog(pool, systemClock)),
    leader,
    clock: systemClock,
    log: options.log,
    dataDir: path.dirname(options.signingKeyFile),
    signingKeyFile: options.signingKeyFile,
    intervalMs: options.intervalMs,
    retentionMs: options.retentionMs,
  });
  return { worker, leader };
}
