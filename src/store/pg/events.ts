import type { Clock } from '../../clock.js';
import { ZegelError } from '../../errors.js';
import { canonicalJson, toEventRecord, type EventInput, type EventLog, type EventRecord, type EventRow, type EventType } from '../events.js';
import type { Public } from '../store.js';
import type { Tx } from '../tx.js';
import type { PgPool } from './connect.js';
import { pgTx } from './tx.js';

/** The advisory lock key pair the chain trigger takes (schema 001, 003): one chain per database. */
export const CHAIN_LOCK: readonly [number, number] = [1514489676, 2];

/**
 * The audit trail's one writer on PostgreSQL (the public face of
 * src/store/events.ts). `append` inserts the record in the caller's
 * transaction; the BEFORE INSERT trigger (migrations 001 and 003) takes the
 * cluster-wide chain lock, numbers the record one past the last one and
 * computes its hashes, so every node of a cluster appends to one chain and
 * none can fork it. The lock is held until the caller's transaction ends:
 * appends take turns across the cluster (docs/cluster.md).
 *
 * The detail is stored as canonical JSON text, byte for byte what the chain
 * hashes, exactly as on SQLite.
 */
export class PgEventLog implements Public<EventLog> {
  readonly #pool: PgPool;
  readonly #clock: Clock;

  constructor(pool: PgPool, clock: Clock) {
    this.#pool = pool;
    this.#clock = clock;
  }

  /** Appends one event to the chain, in the caller's transaction. */
  async append(tx: Tx, event: EventInput, at = this.#clock.now()): Promise<void> {
    await this.appendAll(tx, [event], at);
  }

  /**
   * Appends events in the order given, in one statement. The chain lock is
   * taken at the first record and held to the commit, so a repository
   * appends last in its transaction, all at once: every node waits for this
   * one statement and the COMMIT, not for the rest of the work.
   */
  async appendAll(tx: Tx, events: readonly EventInput[], at = this.#clock.now()): Promise<void> {
    const t = pgTx(tx);
    if (!events.length) return;
    // seq, prev_hash and hash are the trigger's; the values given here are placeholders it overwrites.
    // Rows are inserted in ORDER BY order, and the row trigger numbers them as they come.
    await t.query(
      `INSERT INTO events (seq, at, message_id, recipient, type, detail, prev_hash, hash)
       SELECT 0, $1, e.message_id, e.recipient, e.type, e.detail, '', ''
       FROM unnest($2::text[], $3::text[], $4::text[], $5::text[]) WITH ORDINALITY AS e(message_id, recipient, type, detail, n)
       ORDER BY e.n`,
      [at, events.map((e) => e.messageId), events.map((e) => e.recipient ?? null), events.map((e) => e.type), events.map((e) => canonicalJson(e.detail ?? {}))],
    );
  }

  /** SQLite's synchronous append has no PostgreSQL form: a statement here is always awaited. */
  appendSync(_tx: Tx, _event: EventInput, _at?: number): void {
    throw new ZegelError('ZEGEL_STORE_TX', 'appendSync is the SQLite driver’s; on PostgreSQL await append');
  }

  /**
   * Removes the start of the chain through `last` (retention.audit; the
   * caller signed the head and `last` first: src/audit/retention.ts). In the
   * caller's transaction: `last` becomes the anchor, the records up to it are
   * deleted (the delete trigger allows exactly those at or below the
   * anchor's seq), and an `audit-purged` event is chained. The chain lock is
   * taken first, so no other node appends between the cut and its event.
   */
  async cutThrough(tx: Tx, last: { seq: number; hash: string }, detail: Record<string, unknown>, now = this.#clock.now()): Promise<void> {
    const t = pgTx(tx);
    await t.query('SELECT pg_advisory_xact_lock($1, $2)', [...CHAIN_LOCK]);
    await t.query(
      `INSERT INTO audit_anchor (id, seq, hash, at) VALUES (1, $1, $2, $3)
       ON CONFLICT (id) DO UPDATE SET seq = excluded.seq, hash = excluded.hash, at = excluded.at`,
      [last.seq, last.hash, now],
    );
    await t.query('DELETE FROM events WHERE seq <= $1', [last.seq]);
    await this.append(tx, { messageId: null, type: 'audit-purged', detail }, now);
  }

  /** The events of one message, oldest first. */
  async forMessage(messageId: string): Promise<EventRecord[]> {
    const { rows } = await this.#pool.query<EventRow>('SELECT seq, at, message_id, recipient, type, detail FROM events WHERE message_id = $1 ORDER BY seq', [messageId]);
    return rows.map(toEventRecord);
  }

  /** Time of the last event of `type` about a message whose detail has `field` = `value` (a string, as SQLite's json_extract compares it). */
  async lastAt(messageId: string, type: EventType, field: string, value: string): Promise<number | undefined> {
    const { rows } = await this.#pool.query<{ at: number | null }>(
      `SELECT MAX(at) AS at FROM events WHERE message_id = $1 AND type = $2 AND (detail::jsonb -> $3::text) = to_jsonb($4::text)`,
      [messageId, type, field, value],
    );
    return rows[0]?.at ?? undefined;
  }

  /** Time of the last event of `type` about a message, or undefined. */
  async lastOfType(messageId: string, type: EventType): Promise<number | undefined> {
    const { rows } = await this.#pool.query<{ at: number | null }>('SELECT MAX(at) AS at FROM events WHERE message_id = $1 AND type = $2', [messageId, type]);
    return rows[0]?.at ?? undefined;
  }

  /** How many events of `type` about a message have `field` = `value` in their detail. */
  async countWith(messageId: string, type: EventType, field: string, value: string): Promise<number> {
    const { rows } = await this.#pool.query<{ n: number }>(
      `SELECT COUNT(*) AS n FROM events WHERE message_id = $1 AND type = $2 AND (detail::jsonb -> $3::text) = to_jsonb($4::text)`,
      [messageId, type, field, value],
    );
    return rows[0]?.n ?? 0;
  }
}
