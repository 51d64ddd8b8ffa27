import type crypto from 'node:crypto';
import type { Db } from '../store/db.js';
import type { EventLog } from '../store/events.js';
import { sqliteTx, type Tx } from '../store/tx.js';
import { checkpointSync } from './checkpoint.js';

/**
 * Retention of audit records (retention.audit, default 6 years). Records go
 * only from the start of the chain, oldest first, stopping at the first one
 * still inside the retention period. In one transaction the purge
 *
 *  1. signs the current head (a checkpoint, so nothing after the cut can be
 *     rewritten unnoticed) and the last record it removes (the anchor
 *     checkpoint: `audit verify` accepts an anchor only with a valid signed
 *     checkpoint naming its seq and hash, so cutting the start of the chain
 *     and writing an anchor by hand is detected);
 *  2. stores that record's seq and hash in `audit_anchor`, where verification
 *     starts (the first record kept carries it as prev_hash);
 *  3. lifts the delete trigger for this one statement (DROP, DELETE, CREATE in
 *     the same transaction: no other writer ever sees it missing);
 *  4. appends an `audit-purged` event, chained like any other.
 */

export interface AuditPurgeResult {
  removed: number;
  /** The new anchor: the last record removed. */
  anchor?: { seq: number; hash: string } | undefined;
}

const BATCH = 10_000;

/**
 * The purge, in the caller's transaction: reads how far the chain may be cut
 * (records older than the cutoff, oldest first), signs, and has the event log
 * cut it (the one writer of the events table: src/store/events.ts).
 */
export async function purgeAuditIn(tx: Tx, db: Db, events: EventLog, key: crypto.KeyObject, now: number, retentionMs: number): Promise<AuditPurgeResult> {
  sqliteTx(tx);
  const cutoff = now - retentionMs;
  let last: { seq: number; hash: string } | undefined;
  let removed = 0;
  for (const row of db.prepare('SELECT seq, at, hash FROM events ORDER BY seq LIMIT ?').iterate(BATCH) as IterableIterator<{ seq: number; at: number; hash: string | null }>) {
    if (row.at >= cutoff || row.hash === null) break;
    last = { seq: row.seq, hash: row.hash };
    removed++;
  }
  if (!last) return { removed: 0 };
  checkpointSync(db, key, now);
  // the anchor checkpoint, signed before the records go
  checkpointSync(db, key, now, { record: last });
  await events.cutThrough(tx, last, { through: last.seq, removed, cutoff: new Date(cutoff).toISOString() }, now);
  return { removed, anchor: last };
}
