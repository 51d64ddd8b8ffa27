import crypto from 'node:crypto';
import type Database from 'better-sqlite3';

/**
 * The audit hash chain over the `events` table (DESIGN "Audit trail").
 *
 * Each record carries `prev_hash` (the hash of the record before it; for the
 * first record the anchor a retention purge left, else GENESIS_HASH) and
 *
 *   hash = SHA-256(prev_hash (32 bytes) ‖ UTF-8 canonical JSON of
 *                  [seq, at, message_id, recipient, type, detail])
 *
 * where `detail` is the stored text as it is. The chain is computed by an AFTER
 * INSERT trigger inside the inserting transaction (src/store/db.ts), so every
 * writer (the relay, an admin command in another process) links to the last
 * record it sees under the write lock, and no two writers can fork the chain.
 */

export const GENESIS_HASH = '0'.repeat(64);

export interface ChainFields {
  seq: number;
  at: number;
  message_id: string | null;
  recipient: string | null;
  type: string;
  detail: string;
}

/** The canonical bytes of one record (without its hashes). */
export function recordBytes(r: ChainFields): Buffer {
  return Buffer.from(JSON.stringify([r.seq, r.at, r.message_id, r.recipient, r.type, r.detail]), 'utf8');
}

export function chainHash(prevHash: string, record: ChainFields): string {
  return crypto.createHash('sha256').update(Buffer.from(prevHash, 'hex')).update(recordBytes(record)).digest('hex');
}

/** Registers the SQL function the chain trigger calls; openDb does this on every connection. */
export function registerAuditFunctions(db: Database.Database): void {
  db.function('zegel_audit_hash', { deterministic: true }, (prev: unknown, seq: unknown, at: unknown, messageId: unknown, recipient: unknown, type: unknown, detail: unknown) =>
    chainHash(String(prev), {
      seq: Number(seq),
      at: Number(at),
      message_id: messageId === null ? null : String(messageId),
      recipient: recipient === null ? null : String(recipient),
      type: String(type),
      detail: String(detail),
    }),
  );
}

/**
 * Chains the records that have no hash yet, in seq order (the records from
 * before the audit migration). Runs inside the migration's transaction, with
 * the update trigger lifted; deterministic for the same rows.
 */
export function chainEventsSync(db: Database.Database): number {
  const last = db.prepare('SELECT hash FROM events WHERE hash IS NOT NULL ORDER BY seq DESC LIMIT 1').get() as { hash: string } | undefined;
  const anchor = db.prepare('SELECT hash FROM audit_anchor WHERE id = 1').get() as { hash: string } | undefined;
  let prev = last?.hash ?? anchor?.hash ?? GENESIS_HASH;
  const rows = db.prepare('SELECT seq, at, message_id, recipient, type, detail FROM events WHERE hash IS NULL ORDER BY seq').all() as ChainFields[];
  const set = db.prepare('UPDATE events SET prev_hash = ?, hash = ? WHERE seq = ?');
  for (const row of rows) {
    const hash = chainHash(prev, row);
    set.run(prev, hash, row.seq);
    prev = hash;
  }
  return rows.length;
}
