import type crypto from 'node:crypto';
import type { Db } from '../store/db.js';
import type { EventLog } from '../store/events.js';
import { sqliteTx, type Transactor } from '../store/tx.js';
import { checkpointSync, type CheckpointRow } from './checkpoint.js';
import { auditRecords, type AuditFilter, type AuditRecord } from './export.js';
import { purgeAuditIn, type AuditPurgeResult } from './retention.js';
import { verifyChain, type VerifyResult } from './verify.js';

/**
 * What the checkpoint timer (src/audit/checkpoint-job.ts) and the admin
 * commands need of an audit trail, whichever store holds it: AuditTrail
 * below on SQLite, PgAuditTrail (src/store/pg/audit.ts) on PostgreSQL.
 * `records` is a plain iterable on SQLite and an async one on PostgreSQL
 * (rows come over the network): iterate it with `for await`.
 */
export interface AuditTrailStore {
  /** The records a filter selects, oldest first. */
  records(filter: AuditFilter): Iterable<AuditRecord> | AsyncIterable<AuditRecord>;
  /** Walks the chain and every checkpoint (one read snapshot). */
  verify(publicKey: crypto.KeyObject): Promise<VerifyResult>;
  /** Whether any checkpoint was ever signed (then verifying needs the key). */
  hasCheckpoints(): Promise<boolean>;
  /** Signs the chain head at `now`; with `force` even when the last checkpoint names it already. Undefined: nothing to sign. */
  checkpoint(key: crypto.KeyObject, now: number, options?: { force?: boolean }): Promise<CheckpointRow | undefined>;
  /** Removes records past `retentionMs` from the start of the chain (signing first). */
  purge(key: crypto.KeyObject, now: number, retentionMs: number): Promise<AuditPurgeResult>;
}

/**
 * The audit trail as the relay's checkpoint timer (src/audit/checkpoint-job.ts)
 * and the admin commands (`zegel audit …`, src/cli/) reach it: export,
 * verify, sign the head, purge past retention. Writes run in the store's
 * transactions (the relay's or the CLI context's group committer), never in
 * a transaction of their own; reads are the audit module's own
 * (src/audit/export.ts, verify.ts).
 */
export class AuditTrail implements AuditTrailStore {
  readonly #db: Db;
  readonly #store: Transactor;
  readonly #events: EventLog;
  readonly #checkpoints;

  constructor(db: Db, store: Transactor, events: EventLog) {
    this.#db = db;
    this.#store = store;
    this.#events = events;
    this.#checkpoints = db.prepare('SELECT COUNT(*) AS n FROM audit_checkpoints');
  }

  /** The records a filter selects, oldest first. */
  records(filter: AuditFilter): Iterable<AuditRecord> {
    return auditRecords(this.#db, filter);
  }

  /** Walks the chain and every checkpoint (one read snapshot). */
  async verify(publicKey: crypto.KeyObject): Promise<VerifyResult> {
    return verifyChain(this.#db, publicKey);
  }

  /** Whether any checkpoint was ever signed (then verifying needs the key). */
  async hasCheckpoints(): Promise<boolean> {
    return (this.#checkpoints.get() as { n: number }).n > 0;
  }

  /** Signs the chain head at `now`; with `force` even when the last checkpoint names it already. Undefined: the chain is empty. */
  checkpoint(key: crypto.KeyObject, now: number, options: { force?: boolean } = {}): Promise<CheckpointRow | undefined> {
    return this.#store.transaction((tx) => {
      sqliteTx(tx);
      return checkpointSync(this.#db, key, now, options);
    });
  }

  /** Removes records past `retentionMs` from the start of the chain (signing first), with `now` as the time of every record it writes. */
  purge(key: crypto.KeyObject, now: number, retentionMs: number): Promise<AuditPurgeResult> {
    return this.#store.transaction((tx) => purgeAuditIn(tx, this.#db, this.#events, key, now, retentionMs));
  }
}
