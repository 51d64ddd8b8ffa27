import type { Clock } from '../../clock.js';
import { canonicalRecipients } from '../../crypto/origin.js';
import type { EventInput } from '../events.js';
import {
  receivedEvent,
  relayMailRecipients,
  toMessageRecord,
  toRecipientRecord,
  type AttemptResult,
  type Decision,
  type IncomingMessage,
  type MessageRecord,
  type MessageRepository,
  type MessageRow,
  type RecipientRecord,
  type RecipientRow,
} from '../messages.js';
import type { Public } from '../store.js';
import type { Tx } from '../tx.js';
import type { PgPool } from './connect.js';
import type { PgEventLog } from './events.js';
import { pgTx, type PgTx } from './tx.js';

type Rows = { query: PgPool['query'] };

/**
 * `messages`, `recipients` and `relay_mail` on PostgreSQL: the public face
 * of src/store/messages.ts, with the same rows, events and idempotence.
 *
 * Where SQLite's single writer makes a read-then-write safe, nodes here run
 * side by side: every write that reads a message's state first locks its
 * `messages` row (`SELECT … FOR UPDATE`), so two nodes working on one
 * message take turns and a repeated job still records nothing twice. The
 * relay-mail claim stays one conditional UPDATE, which PostgreSQL
 * re-checks against the committed row when another claim got there first.
 */
export class PgMessageRepository implements Public<MessageRepository> {
  readonly #pool: PgPool;
  readonly #events: PgEventLog;
  readonly #clock: Clock;

  constructor(pool: PgPool, events: PgEventLog, clock: Clock) {
    this.#pool = pool;
    this.#events = events;
    this.#clock = clock;
  }

  /** Statements of a read: in `tx` when given (to see its writes), else on any pooled connection. */
  #reader(tx?: Tx): Rows {
    return tx ? pgTx(tx) : this.#pool;
  }

  /** Records an accepted (or relay-made) message with its recipients and the `received` event. */
  async insertReceived(tx: Tx, message: IncomingMessage): Promise<void> {
    const t = pgTx(tx);
    const now = this.#clock.now();
    await t.query(
      `INSERT INTO messages (id, received_at, mail_from, client_ip, helo, size, message_id, origin, env_id, ret, state, spool)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, 'queued', $1)`,
      [message.id, message.receivedAt, message.mailFrom, message.clientIp ?? null, message.helo ?? null, message.size, message.messageId ?? null, message.origin, message.envId ?? null, message.ret ?? null],
    );
    if (message.recipients.length) {
      // one statement for every recipient: a round trip per message, not per recipient
      await t.query(
        `INSERT INTO recipients (message_id, idx, address, notify, orcpt, state, updated_at)
         SELECT $1, r.idx - 1, r.address, r.notify, r.orcpt, 'pending', $2
         FROM unnest($3::text[], $4::text[], $5::text[]) WITH ORDINALITY AS r(address, notify, orcpt, idx)`,
        [message.id, now, message.recipients.map((r) => r.address), message.recipients.map((r) => r.notify?.join(',') ?? null), message.recipients.map((r) => r.orcpt ?? null)],
      );
    }
    if (message.origin !== 'ingress' && message.messageId) {
      await t.query('INSERT INTO relay_mail (message_id, recipients, created_at) VALUES ($1, $2, $3) ON CONFLICT (message_id) DO NOTHING', [
        message.messageId.trim(),
        relayMailRecipients(message),
        now,
      ]);
    }
    await this.#events.append(tx, receivedEvent(message));
  }

  async get(id: string, tx?: Tx): Promise<MessageRecord | undefined> {
    const { rows } = await this.#reader(tx).query<MessageRow>('SELECT * FROM messages WHERE id = $1', [id]);
    return rows[0] ? toMessageRecord(rows[0]) : undefined;
  }

  async recipients(messageId: string, tx?: Tx): Promise<RecipientRecord[]> {
    const { rows } = await this.#reader(tx).query<RecipientRow>('SELECT * FROM recipients WHERE message_id = $1 ORDER BY idx', [messageId]);
    return rows.map(toRecipientRecord);
  }

  /** The message row, locked until the end of `tx` (undefined: no such message). */
  async #lock(t: PgTx, messageId: string): Promise<{ state: string; spool: string | null } | undefined> {
    const { rows } = await t.query<{ state: string; spool: string | null }>('SELECT state, spool FROM messages WHERE id = $1 FOR UPDATE', [messageId]);
    return rows[0];
  }

  /** Stores the decision for each recipient (idempotent: a second run writes the same and records no event twice). */
  async recordDecisions(tx: Tx, messageId: string, decisions: Array<{ idx: number; address: string; decision: Decision; reason: string }>): Promise<void> {
    const t = pgTx(tx);
    const now = this.#clock.now();
    const already = (await this.#lock(t, messageId))?.state !== 'queued';
    if (decisions.length) {
      // one statement; an idx given twice ends with its last decision, as the SQLite loop leaves it
      await t.query(
        `UPDATE recipients r SET decision = d.decision, updated_at = $2
         FROM (SELECT DISTINCT ON (idx) idx, decision FROM unnest($3::integer[], $4::text[]) WITH ORDINALITY AS u(idx, decision, n) ORDER BY idx, n DESC) AS d
         WHERE r.message_id = $1 AND r.idx = d.idx`,
        [messageId, now, decisions.map((d) => d.idx), decisions.map((d) => d.decision)],
      );
    }
    if (already) return;
    await t.query(`UPDATE messages SET state = 'processed' WHERE id = $1`, [messageId]);
    // the events last: the chain lock they take is held to the commit
    await this.#events.appendAll(
      tx,
      decisions.map((d) => ({ messageId, recipient: d.address, type: 'decided' as const, detail: { decision: d.decision, reason: d.reason } })),
    );
  }

  /**
   * Stores the outcome of one delivery attempt for some recipients (see
   * MessageRepository.recordAttempt): only pending recipients change, and at
   * 0 pending the spool is released in the same commit. Resolves to the
   * number of recipients still pending.
   */
  async recordAttempt(tx: Tx, messageId: string, results: AttemptResult[], extra: Record<string, unknown> = {}): Promise<number> {
    const t = pgTx(tx);
    const now = this.#clock.now();
    await this.#lock(t, messageId);
    const recipients = new Map((await this.recipients(messageId, tx)).map((r) => [r.idx, r]));
    const events: EventInput[] = [];
    for (const result of results) {
      const rcpt = recipients.get(result.idx);
      if (!rcpt || rcpt.state !== 'pending') continue;
      const state = result.outcome === 'deferred' ? 'pending' : result.outcome;
      await t.query(
        `UPDATE recipients SET state = $1, attempts = attempts + 1, last_reply = $2, remote_mta = $3, updated_at = $4
         WHERE message_id = $5 AND idx = $6 AND state = 'pending'`,
        [state, result.reply, result.remoteMta ?? null, now, messageId, result.idx],
      );
      events.push({
        messageId,
        recipient: rcpt.address,
        type: result.outcome,
        detail: { reply: result.reply, remoteMta: result.remoteMta, attempt: rcpt.attempts + 1, ...extra, ...(result.tls ? { tls: result.tls } : {}) },
      });
    }
    const pending = await this.pendingCount(messageId, tx);
    if (pending === 0 && (await this.#spoolGone(t, messageId))) events.push({ messageId, type: 'spool-removed' });
    // the events last, in SQLite's order: the chain lock they take is held to the commit
    await this.#events.appendAll(tx, events);
    return pending;
  }

  /** Marks the spool of a message as no longer needed (the message is then done); the caller removes the bytes after the commit. */
  async releaseSpool(tx: Tx, messageId: string): Promise<void> {
    await this.#releaseSpool(pgTx(tx), messageId);
  }

  async #releaseSpool(t: PgTx, messageId: string): Promise<void> {
    if (await this.#spoolGone(t, messageId)) await this.#events.append(t, { messageId, type: 'spool-removed' });
  }

  /** Marks the spool released; true for the one transaction that changed it (of two nodes releasing at once, one records the event). */
  async #spoolGone(t: PgTx, messageId: string): Promise<boolean> {
    const { rowCount } = await t.query(`UPDATE messages SET spool = NULL, state = 'done' WHERE id = $1 AND spool IS NOT NULL`, [messageId]);
    return rowCount === 1;
  }

  /**
   * Consumes the relay-mail record for `messageId` when these envelope
   * recipients are exactly the ones the relay made it for (see
   * MessageRepository.claimRelayOrigin): one conditional UPDATE, once;
   * idempotent for the same queue id.
   */
  async claimRelayOrigin(tx: Tx, queueId: string, messageId: string | undefined, recipients: readonly string[]): Promise<boolean> {
    const t = pgTx(tx);
    if (!messageId) return false;
    const { rows } = await t.query<{ recipients: string }>('SELECT recipients FROM relay_mail WHERE message_id = $1', [messageId.trim()]);
    const row = rows[0];
    if (!row) return false;
    const made = canonicalRecipients(JSON.parse(row.recipients) as string[]);
    const came = canonicalRecipients(recipients);
    if (made.length !== came.length || made.some((r, i) => r !== came[i])) return false;
    const { rowCount } = await t.query('UPDATE relay_mail SET returned_as = $1 WHERE message_id = $2 AND (returned_as IS NULL OR returned_as = $1)', [queueId, messageId.trim()]);
    return rowCount === 1;
  }

  /** Ids of messages whose spool is still needed. */
  async spooledIds(): Promise<Set<string>> {
    const { rows } = await this.#pool.query<{ spool: string }>('SELECT spool FROM messages WHERE spool IS NOT NULL');
    return new Set(rows.map((r) => r.spool));
  }

  /** How many recipients of a message are still pending. */
  async pendingCount(messageId: string, tx?: Tx): Promise<number> {
    const { rows } = await this.#reader(tx).query<{ n: number }>(`SELECT COUNT(*) AS n FROM recipients WHERE message_id = $1 AND state = 'pending'`, [messageId]);
    return rows[0]?.n ?? 0;
  }

  /**
   * An admin gives up held mail (see MessageRepository.giveUp): pending
   * recipients end as bounced with `reason`, the message is done with its
   * spool released; no event. True when the spool was still needed.
   */
  async giveUp(tx: Tx, messageId: string, reason: string): Promise<boolean> {
    const t = pgTx(tx);
    await t.query(`UPDATE recipients SET state = 'bounced', last_reply = $1, updated_at = $2 WHERE message_id = $3 AND state = 'pending'`, [reason, this.#clock.now(), messageId]);
    return this.#spoolGone(t, messageId);
  }
}
