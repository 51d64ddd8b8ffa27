import { GENESIS_HASH, chainHash } from '../audit/chain.js';
import type { Clock } from '../clock.js';
import type { Db } from './db.js';
import { sqliteTx, type Tx } from './tx.js';

/**
 * The one writer of the `events` table: the audit trail. Every event the
 * relay, the reader, the CLI or a retention purge records goes through
 * `EventLog.append`, in the caller's transaction, so each record is chained
 * (src/audit/chain.ts) to the head it sees under the write lock. `src/audit/`
 * only reads, signs, verifies and exports.
 */
export const EVENT_TYPES = [
  // the relay spine (src/smtp, src/pipeline, src/deliver)
  'received', 'classified', 'decided', 'delivered', 'deferred', 'bounced', 'dsn-queued', 'spool-removed',
  'encrypted', 'notification-queued', 'mail-queued',
  // the reader
  'code-sent', 'check-passed', 'check-failed', 'locked', 'forgot-code', 'opened', 'downloaded',
  // revocation, expiry and purge; operator commands
  'revoked', 'expired', 'purged', 'revoke-scheduled', 'admin-action',
  // the sender's status page
  'link-resent',
  // a recipient's reply from the reader; no content
  'replied',
  // audit records past retention.audit removed from the start of the chain
  'audit-purged',
  // the rule set: reloaded after a change, or refused (the previous set stays active); no message
  'rules-reloaded', 'rules-refused',
  // relay-made mail that could not be delivered: a notice to the postmaster, or held for an admin
  'postmaster-queued', 'held',
] as const;

export type EventType = (typeof EVENT_TYPES)[number];

export interface EventInput {
  /** The message the event is about; null for relay-wide events (rules reloaded or refused, audit purged). */
  messageId: string | null;
  recipient?: string | undefined;
  type: EventType;
  detail?: Record<string, unknown>;
}

export interface EventRecord extends Required<Omit<EventInput, 'recipient'>> {
  seq: number;
  at: number;
  recipient: string | undefined;
}

/** The canonical form of an event's detail: JSON with keys in a fixed order, so a record's bytes can be hashed later. */
export function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (value && typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>)
      .filter(([, v]) => v !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(',')}}`;
  }
  return JSON.stringify(value ?? null);
}

export interface EventRow {
  seq: number;
  at: number;
  message_id: string;
  recipient: string | null;
  type: EventType;
  detail: string;
}

/** An `events` row as the record callers see. */
export function toEventRecord(row: EventRow): EventRecord {
  return { seq: row.seq, at: row.at, messageId: row.message_id, recipient: row.recipient ?? undefined, type: row.type, detail: JSON.parse(row.detail) as Record<string, unknown> };
}

export class EventLog {
  readonly #db: Db;
  readonly #clock: Clock;
  readonly #stmt;

  constructor(db: Db, clock: Clock) {
    this.#db = db;
    this.#clock = clock;
    this.#stmt = {
      // the chain's head, read inside the writing transaction
      head: db.prepare(
        `SELECT (SELECT seq FROM sqlite_sequence WHERE name = 'events') AS last,
                (SELECT hash FROM events ORDER BY seq DESC LIMIT 1) AS prev,
                (SELECT hash FROM audit_anchor WHERE id = 1) AS anchor`,
      ),
      insert: db.prepare('INSERT INTO events (seq, at, message_id, recipient, type, detail, prev_hash, hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?)'),
      forMessage: db.prepare('SELECT * FROM events WHERE message_id = ? ORDER BY seq'),
      setAnchor: db.prepare('INSERT INTO audit_anchor (id, seq, hash, at) VALUES (1, ?, ?, ?) ON CONFLICT(id) DO UPDATE SET seq = excluded.seq, hash = excluded.hash, at = excluded.at'),
      deleteThrough: db.prepare('DELETE FROM events WHERE seq <= ?'),
      lastOf: db.prepare(`SELECT MAX(at) AS at FROM events WHERE message_id = ? AND type = ? AND json_extract(detail, '$.' || ?) = ?`),
    };
  }

  /** Appends one event to the chain, in the caller's transaction. */
  append(tx: Tx, event: EventInput): Promise<void> {
    this.appendSync(tx, event);
    return Promise.resolve();
  }

  /** append, for SQLite repositories already running inside `tx`. */
  appendSync(tx: Tx, event: EventInput, at = this.#clock.now()): void {
    sqliteTx(tx);
    // the head is read under the write lock this transaction holds, so no other writer can link to the same record
    const head = this.#stmt.head.get() as { last: number | null; prev: string | null; anchor: string | null };
    const record = { seq: (head.last ?? 0) + 1, at, message_id: event.messageId, recipient: event.recipient ?? null, type: event.type, detail: canonicalJson(event.detail ?? {}) };
    const prev = head.prev ?? head.anchor ?? GENESIS_HASH;
    this.#stmt.insert.run(record.seq, record.at, record.message_id, record.recipient, record.type, record.detail, prev, chainHash(prev, record));
  }

  /**
   * Removes the start of the chain through `last` (retention.audit; the
   * caller signed the head and `last` first: src/audit/retention.ts). In the
   * caller's transaction: `last` becomes the anchor the first kept record
   * links to, the delete guard is lifted for this one statement (no other
   * writer ever sees it missing), and an `audit-purged` event is chained.
   */
  async cutThrough(tx: Tx, last: { seq: number; hash: string }, detail: Record<string, unknown>, now = this.#clock.now()): Promise<void> {
    sqliteTx(tx);
    this.#stmt.setAnchor.run(last.seq, last.hash, now);
    // DDL is not prepared ahead: a CREATE of a trigger that exists does not even prepare
    this.#db.exec('DROP TRIGGER events_no_delete');
    this.#stmt.deleteThrough.run(last.seq);
    this.#db.exec(`CREATE TRIGGER events_no_delete BEFORE DELETE ON events BEGIN SELECT RAISE(ABORT, 'events are append-only'); END`);
    this.appendSync(tx, { messageId: null, type: 'audit-purged', detail }, now);
  }

  /** The events of one message, oldest first. */
  async forMessage(messageId: string): Promise<EventRecord[]> {
    return (this.#stmt.forMessage.all(messageId) as EventRow[]).map(toEventRecord);
  }

  /** Time of the last event of `type` about a message whose detail has `field` = `value` (e.g. the last forgot-code of a link). */
  async lastAt(messageId: string, type: EventType, field: string, value: string): Promise<number | undefined> {
    const row = this.#stmt.lastOf.get(messageId, type, field, value) as { at: number | null } | undefined;
    return row?.at ?? undefined;
  }

  // ---- reads for the admin commands (src/cli/): prepared on first use, once per connection

  #adminStmt: ReturnType<typeof prepareAdminReads> | undefined;

  get #admin(): ReturnType<typeof prepareAdminReads> {
    return (this.#adminStmt ??= prepareAdminReads(this.#db));
  }

  /** Time of the last event of `type` about a message (e.g. when held mail was held), or undefined. */
  async lastOfType(messageId: string, type: EventType): Promise<number | undefined> {
    const row = this.#admin.lastOfType.get(messageId, type) as { at: number | null } | undefined;
    return row?.at ?? undefined;
  }

  /** How many events of `type` about a message have `field` = `value` in their detail (e.g. the downloads of one link). */
  async countWith(messageId: string, type: EventType, field: string, value: string): Promise<number> {
    return (this.#admin.countWith.get(messageId, type, field, value) as { n: number }).n;
  }
}

function prepareAdminReads(db: Db) {
  return {
    lastOfType: db.prepare('SELECT MAX(at) AS at FROM events WHERE message_id = ? AND type = ?'),
    countWith: db.prepare(`SELECT COUNT(*) AS n FROM events WHERE message_id = ? AND type = ? AND json_extract(detail, '$.' || ?) = ?`),
  };
}
