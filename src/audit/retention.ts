import type crypto from 'node:crypto';
import type Database from 'better-sqlite3';
import { canonicalJson } from '../store/messages.js';
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

export function purgeAuditSync(db: Database.Database, key: crypto.KeyObject, now: number, retentionMs: number): AuditPurgeResult {
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
  db.prepare('INSERT INTO audit_anchor (id, seq, hash, at) VALUES (1, ?, ?, ?) ON CONFLICT(id) DO UPDATE SET seq = excluded.seq, hash = excluded.hash, at = excluded.at').run(last.seq, last.hash, now);
  db.exec('DROP TRIGGER events_no_delete');
  db.prepare('DELETE FROM events WHERE seq <= ?').run(last.seq);
  db.exec(`CREATE TRIGGER events_no_delete BEFORE DELETE ON events BEGIN SELECT RAISE(ABORT, 'events are append-only'); END`);
  db.prepare('INSERT INTO events (at, message_id, recipient, type, detail) VALUES (?, NULL, NULL, ?, ?)').run(
    now,
    'audit-purged',
    canonicalJson({ through: last.seq, removed, cutoff: new Date(cutoff).toISOString() }),
  );
  return { removed, anchor: last };
}

export function purgeAudit(db: Database.Database, key: crypto.KeyObject, now: number, retentionMs: number): AuditPurgeResult {
  return db.transaction(() => purgeAuditSync(db, key, now, retentionMs)).immediate();
}
