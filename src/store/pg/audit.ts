import crypto from 'node:crypto';
import Database from 'better-sqlite3';
import { checkpointBytes, keyId, type CheckpointRow } from '../../audit/checkpoint.js';
import type { ChainFields } from '../../audit/chain.js';
import { toAuditRecord, type AuditFilter, type AuditRecord, type AuditRow } from '../../audit/export.js';
import type { AuditPurgeResult } from '../../audit/retention.js';
import type { AuditTrail, AuditTrailStore } from '../../audit/trail.js';
import { verifyChain, type VerifyResult } from '../../audit/verify.js';
import type { Public } from '../store.js';
import type { Transactor, Tx } from '../tx.js';
import type { PgPool } from './connect.js';
import { CHAIN_LOCK, type PgEventLog } from './events.js';
import { pgTx, type PgTx } from './tx.js';

/**
 * The audit trail on PostgreSQL, as the admin commands and the checkpoint
 * timer reach it (the PostgreSQL face of src/audit/trail.ts): export,
 * verify, sign the head, purge past retention.
 *
 * Verify reads the chain, the checkpoints and the anchor in one REPEATABLE
 * READ snapshot, page by page, into an in-memory SQLite database of the
 * same three tables, and runs src/audit/verify.ts on it: one verifier for
 * both drivers, so a chain written by many nodes at once is held to exactly
 * the checks a single relay's chain is.
 *
 * Checkpoint and purge run in the caller's store (PgTransactor); the purge
 * takes the chain lock first, so purges of two nodes take turns and no node
 * appends between the cut and its `audit-purged` event.
 */

/** Rows per round trip when reading the chain. */
const PAGE = 5_000;
/** Records one purge removes at most (as src/audit/retention.ts). */
const PURGE_BATCH = 10_000;

/** An `events` row with both of its hashes: what verify copies. */
interface ChainRow extends ChainFields {
  prev_hash: string | null;
  hash: string | null;
}

/** The filter of src/audit/export.ts as a WHERE clause with $n parameters after `first`. */
function where(filter: AuditFilter, params: unknown[]): string {
  const parts: string[] = [];
  const p = (value: unknown): string => {
    params.push(value);
    return `$${params.length}`;
  };
  if (filter.since !== undefined) parts.push(`at >= ${p(filter.since)}`);
  if (filter.until !== undefined) parts.push(`at < ${p(filter.until)}`);
  if (filter.message !== undefined) {
    const m = p(filter.message);
    parts.push(`(message_id = ${m} OR message_id IN (SELECT queue_id FROM secure_messages WHERE id = ${m}))`);
  }
  if (filter.recipient !== undefined) parts.push(`lower(recipient) = ${p(filter.recipient.trim().toLowerCase())}`);
  if (filter.event !== undefined) parts.push(`type = ${p(filter.event)}`);
  return parts.length ? ` AND ${parts.join(' AND ')}` : '';
}

/** AuditTrail's face but for `records`, which is an async iterable here (rows come over the network). */
export class PgAuditTrail implements Omit<Public<AuditTrail>, 'records'>, AuditTrailStore {
  readonly #pool: PgPool;
  readonly #store: Transactor;
  readonly #events: PgEventLog;

  constructor(pool: PgPool, store: Transactor, events: PgEventLog) {
    this.#pool = pool;
    this.#store = store;
    this.#events = events;
  }

  /** The records a filter selects, oldest first, read page by page (by seq, so a page never repeats or skips a record). */
  async *records(filter: AuditFilter): AsyncGenerator<AuditRecord> {
    let after = -1;
    for (;;) {
      const params: unknown[] = [after];
      const sql = `SELECT seq, at, message_id, recipient, type, detail, hash FROM events WHERE seq > $1${where(filter, params)} ORDER BY seq LIMIT ${PAGE}`;
      const { rows } = await this.#pool.query<AuditRow>(sql, params);
      for (const row of rows) yield toAuditRecord(row);
      if (rows.length < PAGE) return;
      after = rows.at(-1)!.seq;
    }
  }

  /** Walks the chain and every checkpoint, read in one snapshot, with src/audit/verify.ts. */
  async verify(publicKey: crypto.KeyObject): Promise<VerifyResult> {
    const copy = new Database(':memory:');
    try {
      copy.exec(`
        CREATE TABLE events (seq INTEGER PRIMARY KEY, at INTEGER NOT NULL, message_id TEXT, recipient TEXT, type TEXT NOT NULL, detail TEXT NOT NULL, prev_hash TEXT, hash TEXT);
        CREATE TABLE audit_checkpoints (id INTEGER PRIMARY KEY, seq INTEGER NOT NULL, hash TEXT NOT NULL, at INTEGER NOT NULL, key_id TEXT NOT NULL, signature TEXT NOT NULL);
        CREATE TABLE audit_anchor (id INTEGER PRIMARY KEY, seq INTEGER NOT NULL, hash TEXT NOT NULL, at INTEGER NOT NULL);
      `);
      const putEvent = copy.prepare('INSERT INTO events (seq, at, message_id, recipient, type, detail, prev_hash, hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?)');
      const putCheckpoint = copy.prepare('INSERT INTO audit_checkpoints (id, seq, hash, at, key_id, signature) VALUES (?, ?, ?, ?, ?, ?)');
      const putAnchor = copy.prepare('INSERT INTO audit_anchor (id, seq, hash, at) VALUES (1, ?, ?, ?)');
      await this.#snapshot(async (q) => {
        const anchor = (await q<{ seq: number; hash: string; at: number }>('SELECT seq, hash, at FROM audit_anchor WHERE id = 1')).rows[0];
        if (anchor) putAnchor.run(anchor.seq, anchor.hash, anchor.at);
        for (const cp of (await q<CheckpointRow>('SELECT id, seq, hash, at, key_id, signature FROM audit_checkpoints ORDER BY id')).rows) {
          putCheckpoint.run(cp.id, cp.seq, cp.hash, cp.at, cp.key_id, cp.signature);
        }
        let after = Number.MIN_SAFE_INTEGER;
        for (;;) {
          const { rows } = await q<ChainRow>(`SELECT seq, at, message_id, recipient, type, detail, prev_hash, hash FROM events WHERE seq > $1 ORDER BY seq LIMIT ${PAGE}`, [after]);
          copy.transaction(() => {
            for (const r of rows) putEvent.run(r.seq, r.at, r.message_id, r.recipient, r.type, r.detail, r.prev_hash, r.hash);
          })();
          if (rows.length < PAGE) break;
          after = rows.at(-1)!.seq;
        }
      });
      return verifyChain(copy, publicKey);
    } finally {
      copy.close();
    }
  }

  /** Whether any checkpoint was ever signed (then verifying needs the key). */
  async hasCheckpoints(): Promise<boolean> {
    const { rows } = await this.#pool.query('SELECT 1 FROM audit_checkpoints LIMIT 1');
    return rows.length > 0;
  }

  /** Signs the chain head at `now`; with `force` even when the last checkpoint names it already. Undefined: the chain is empty. */
  checkpoint(key: crypto.KeyObject, now: number, options: { force?: boolean } = {}): Promise<CheckpointRow | undefined> {
    return this.#store.transaction((tx) => checkpointIn(pgTx(tx), key, now, options));
  }

  /** Removes records past `retentionMs` from the start of the chain (signing first), with `now` as the time of every record it writes. */
  purge(key: crypto.KeyObject, now: number, retentionMs: number): Promise<AuditPurgeResult> {
    return this.#store.transaction((tx) => this.#purgeIn(tx, key, now, retentionMs));
  }

  async #purgeIn(tx: Tx, key: crypto.KeyObject, now: number, retentionMs: number): Promise<AuditPurgeResult> {
    const t = pgTx(tx);
    // before reading: a second node's purge waits here and then sees this one's cut
    await t.query('SELECT pg_advisory_xact_lock($1, $2)', [...CHAIN_LOCK]);
    const cutoff = now - retentionMs;
    const { rows } = await t.query<{ seq: number; at: number; hash: string }>('SELECT seq, at, hash FROM events ORDER BY seq LIMIT $1', [PURGE_BATCH]);
    let last: { seq: number; hash: string } | undefined;
    let removed = 0;
    for (const row of rows) {
      if (row.at >= cutoff) break;
      last = { seq: row.seq, hash: row.hash };
      removed++;
    }
    if (!last) return { removed: 0 };
    await checkpointIn(t, key, now, {});
    // the anchor checkpoint, signed before the records go
    await checkpointIn(t, key, now, { record: last });
    await this.#events.cutThrough(tx, last, { through: last.seq, removed, cutoff: new Date(cutoff).toISOString() }, now);
    return { removed, anchor: last };
  }

  /** Runs `read` in a REPEATABLE READ, READ ONLY transaction: every statement sees the same snapshot. */
  async #snapshot(read: (q: PgTx['query']) => Promise<void>): Promise<void> {
    const checkout = await this.#pool.checkout();
    let clean = false;
    try {
      const q: PgTx['query'] = async (text, params) => {
        try {
          return await checkout.client.query(text, params);
        } catch (err) {
          throw this.#pool.failure(err);
        }
      };
      await q('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
      await read(q);
      await q('COMMIT');
      clean = true;
    } finally {
      if (!clean) await checkout.client.query('ROLLBACK').catch(() => undefined);
      checkout.release(!clean);
    }
  }
}

/**
 * Signs the chain head (or `record`) into audit_checkpoints in `t` (as
 * src/audit/checkpoint.ts checkpointSync): nothing when the chain is empty
 * or the last checkpoint names the head already, unless `force`.
 */
async function checkpointIn(t: PgTx, key: crypto.KeyObject, now: number, options: { force?: boolean; record?: { seq: number; hash: string } }): Promise<CheckpointRow | undefined> {
  let cp: { seq: number; hash: string; at: number };
  if (options.record) {
    cp = { ...options.record, at: now };
  } else {
    const head = (await t.query<{ seq: number; hash: string }>('SELECT seq, hash FROM events ORDER BY seq DESC LIMIT 1')).rows[0];
    const top = head ?? (await t.query<{ seq: number; hash: string }>('SELECT seq, hash FROM audit_anchor WHERE id = 1')).rows[0];
    if (!top) return undefined;
    const last = (await t.query<{ seq: number }>('SELECT seq FROM audit_checkpoints ORDER BY id DESC LIMIT 1')).rows[0];
    if (!options.force && last?.seq === top.seq) return undefined;
    cp = { seq: top.seq, hash: top.hash, at: now };
  }
  const signature = crypto.sign(null, checkpointBytes(cp), key).toString('base64');
  const kid = keyId(key);
  const { rows } = await t.query<{ id: number }>('INSERT INTO audit_checkpoints (seq, hash, at, key_id, signature) VALUES ($1, $2, $3, $4, $5) RETURNING id', [cp.seq, cp.hash, cp.at, kid, signature]);
  return { id: rows[0]!.id, ...cp, key_id: kid, signature };
}
