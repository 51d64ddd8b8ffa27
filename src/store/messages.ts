import type { TlsFacts } from '../deliver/smtp-pool.js';
import type { Clock } from '../clock.js';
import { canonicalRecipients } from '../crypto/origin.js';
import type { Db } from './db.js';
import type { EventInput, EventLog } from './events.js';
import { sqliteTx, type Tx } from './tx.js';

/** Where a message came from: SMTP ingress, or made by the relay itself (a DSN, a notification, a code mail, a notice). */
/** `postmaster`: the notice to delivery.postmaster about relay-made mail that could not be delivered (src/deliver/dsn-sender.ts). */
export type MessageOrigin = 'ingress' | 'dsn' | 'notification' | 'postmaster';
export type MessageState = 'queued' | 'processed' | 'done';
/** `encrypted`: stored as ciphertext with a notification queued; the plaintext copy is no longer needed for this recipient. */
export type RecipientState = 'pending' | 'delivered' | 'bounced' | 'encrypted';
export type Decision = 'deliver' | 'encrypt' | 'block';

export interface IncomingRecipient {
  address: string;
  /** DSN NOTIFY values (RFC 3461), upper case; undefined means the default (FAILURE). */
  notify?: string[] | undefined;
  orcpt?: string | undefined;
}

export interface IncomingMessage {
  id: string;
  receivedAt: number;
  /** Envelope sender; '' for the null sender <>. */
  mailFrom: string;
  clientIp?: string | undefined;
  helo?: string | undefined;
  size: number;
  messageId?: string | undefined;
  origin: MessageOrigin;
  envId?: string | undefined;
  ret?: string | undefined;
  recipients: IncomingRecipient[];
}

export interface MessageRecord extends Omit<IncomingMessage, 'recipients'> {
  state: MessageState;
  spool: boolean;
}

export interface RecipientRecord {
  messageId: string;
  idx: number;
  address: string;
  notify: string[] | undefined;
  orcpt: string | undefined;
  decision: Decision | undefined;
  state: RecipientState;
  attempts: number;
  lastReply: string | undefined;
  remoteMta: string | undefined;
  updatedAt: number;
}

export interface AttemptResult {
  idx: number;
  outcome: 'delivered' | 'deferred' | 'bounced' | 'encrypted';
  reply: string;
  remoteMta?: string | undefined;
  /** TLS facts of the SMTP session (src/deliver/smtp-pool.ts): recorded in the event's detail as `tls`. */
  tls?: TlsFacts | undefined;
}

export interface MessageRow {
  id: string;
  received_at: number;
  mail_from: string;
  client_ip: string | null;
  helo: string | null;
  size: number;
  message_id: string | null;
  origin: MessageOrigin;
  env_id: string | null;
  ret: string | null;
  state: MessageState;
  spool: string | null;
}

export interface RecipientRow {
  message_id: string;
  idx: number;
  address: string;
  notify: string | null;
  orcpt: string | null;
  decision: Decision | null;
  state: RecipientState;
  attempts: number;
  last_reply: string | null;
  remote_mta: string | null;
  updated_at: number;
}

const opt = <T>(value: T | null): T | undefined => (value === null ? undefined : value);

/** A `messages` row as the record callers see (the row's shape is this module's alone). */
export function toMessageRecord(row: MessageRow): MessageRecord {
  return {
    id: row.id,
    receivedAt: row.received_at,
    mailFrom: row.mail_from,
    clientIp: opt(row.client_ip),
    helo: opt(row.helo),
    size: row.size,
    messageId: opt(row.message_id),
    origin: row.origin,
    envId: opt(row.env_id),
    ret: opt(row.ret),
    state: row.state,
    spool: row.spool !== null,
  };
}

/** A `recipients` row as the record callers see. */
export function toRecipientRecord(row: RecipientRow): RecipientRecord {
  return {
    messageId: row.message_id,
    idx: row.idx,
    address: row.address,
    notify: row.notify ? row.notify.split(',') : undefined,
    orcpt: opt(row.orcpt),
    decision: opt(row.decision),
    state: row.state,
    attempts: row.attempts,
    lastReply: opt(row.last_reply),
    remoteMta: opt(row.remote_mta),
    updatedAt: row.updated_at,
  };
}

/** The `received` event that records an accepted (or relay-made) message. */
export function receivedEvent(message: IncomingMessage): EventInput {
  return {
    messageId: message.id,
    type: 'received',
    detail: {
      from: message.mailFrom,
      recipients: message.recipients.length,
      size: message.size,
      clientIp: message.clientIp,
      origin: message.origin,
      messageId: message.messageId,
    },
  };
}

/** The `relay_mail.recipients` text of a relay-made message: its lower-cased addresses as a JSON array. */
export function relayMailRecipients(message: IncomingMessage): string {
  return JSON.stringify(message.recipients.map((r) => r.address.toLowerCase()));
}

/**
 * The owner of the `messages`, `recipients` and `relay_mail` tables: every
 * message the relay holds (accepted over SMTP or made by the relay), the state
 * of each recipient, and the record of relay-made mail a loop-back may claim.
 * Writes take the caller's transaction (src/store/tx.ts) and record their
 * events through the event log in it.
 */
export class MessageRepository {
  readonly #events: EventLog;
  readonly #clock: Clock;
  readonly #stmt;

  constructor(db: Db, events: EventLog, clock: Clock) {
    this.#events = events;
    this.#clock = clock;
    this.#stmt = {
      insertMessage: db.prepare(
        `INSERT INTO messages (id, received_at, mail_from, client_ip, helo, size, message_id, origin, env_id, ret, state, spool)
         VALUES (@id, @receivedAt, @mailFrom, @clientIp, @helo, @size, @messageId, @origin, @envId, @ret, 'queued', @id)`,
      ),
      insertRecipient: db.prepare(
        `INSERT INTO recipients (message_id, idx, address, notify, orcpt, state, updated_at)
         VALUES (?, ?, ?, ?, ?, 'pending', ?)`,
      ),
      getMessage: db.prepare('SELECT * FROM messages WHERE id = ?'),
      getRecipients: db.prepare('SELECT * FROM recipients WHERE message_id = ? ORDER BY idx'),
      setDecision: db.prepare('UPDATE recipients SET decision = ?, updated_at = ? WHERE message_id = ? AND idx = ?'),
      setMessageState: db.prepare('UPDATE messages SET state = ? WHERE id = ?'),
      setAttempt: db.prepare(
        `UPDATE recipients SET state = ?, attempts = attempts + 1, last_reply = ?, remote_mta = ?, updated_at = ?
         WHERE message_id = ? AND idx = ? AND state = 'pending'`,
      ),
      pending: db.prepare(`SELECT COUNT(*) AS n FROM recipients WHERE message_id = ? AND state = 'pending'`),
      spoolGone: db.prepare(`UPDATE messages SET spool = NULL, state = 'done' WHERE id = ?`),
      spooled: db.prepare('SELECT spool FROM messages WHERE spool IS NOT NULL'),
      insertRelayMail: db.prepare('INSERT OR IGNORE INTO relay_mail (message_id, recipients, created_at) VALUES (?, ?, ?)'),
      getRelayMail: db.prepare('SELECT recipients, returned_as FROM relay_mail WHERE message_id = ?'),
      // single use: the one statement that consumes the record also checks that nobody did before
      returnRelayMail: db.prepare('UPDATE relay_mail SET returned_as = ? WHERE message_id = ? AND (returned_as IS NULL OR returned_as = ?)'),
      // zegel queue delete --force of held mail (giveUp)
      giveUp: db.prepare(`UPDATE recipients SET state = 'bounced', last_reply = ?, updated_at = ? WHERE message_id = ? AND state = 'pending'`),
    };
  }

  /** Records an accepted (or relay-made) message with its recipients and the `received` event. */
  async insertReceived(tx: Tx, message: IncomingMessage): Promise<void> {
    sqliteTx(tx);
    const now = this.#clock.now();
    this.#stmt.insertMessage.run({
      id: message.id,
      receivedAt: message.receivedAt,
      mailFrom: message.mailFrom,
      clientIp: message.clientIp ?? null,
      helo: message.helo ?? null,
      size: message.size,
      messageId: message.messageId ?? null,
      origin: message.origin,
      envId: message.envId ?? null,
      ret: message.ret ?? null,
    });
    message.recipients.forEach((rcpt, idx) => {
      this.#stmt.insertRecipient.run(message.id, idx, rcpt.address, rcpt.notify?.join(',') ?? null, rcpt.orcpt ?? null, now);
    });
    if (message.origin !== 'ingress' && message.messageId) {
      this.#stmt.insertRelayMail.run(message.messageId.trim(), relayMailRecipients(message), now);
    }
    this.#events.appendSync(tx, receivedEvent(message));
  }

  async get(id: string, _tx?: Tx): Promise<MessageRecord | undefined> {
    return this.#get(id);
  }

  #get(id: string): MessageRecord | undefined {
    const row = this.#stmt.getMessage.get(id) as MessageRow | undefined;
    return row ? toMessageRecord(row) : undefined;
  }

  async recipients(messageId: string, _tx?: Tx): Promise<RecipientRecord[]> {
    return this.#recipients(messageId);
  }

  #recipients(messageId: string): RecipientRecord[] {
    return (this.#stmt.getRecipients.all(messageId) as RecipientRow[]).map(toRecipientRecord);
  }

  /** Stores the decision for each recipient (idempotent: a second run writes the same and records no event twice). */
  async recordDecisions(tx: Tx, messageId: string, decisions: Array<{ idx: number; address: string; decision: Decision; reason: string }>): Promise<void> {
    sqliteTx(tx);
    const now = this.#clock.now();
    const already = this.#get(messageId)?.state !== 'queued';
    for (const d of decisions) {
      this.#stmt.setDecision.run(d.decision, now, messageId, d.idx);
      if (!already) this.#events.appendSync(tx, { messageId, recipient: d.address, type: 'decided', detail: { decision: d.decision, reason: d.reason } });
    }
    if (!already) this.#stmt.setMessageState.run('processed', messageId);
  }

  /**
   * Stores the outcome of one delivery attempt for some recipients. Only
   * pending recipients change, so a repeated attempt after a crash records
   * nothing twice. Resolves to the number of recipients still pending; at 0
   * the spool file is marked released in the same commit (the caller deletes
   * it; a crash before that leaves a file that start-up removes).
   */
  async recordAttempt(tx: Tx, messageId: string, results: AttemptResult[], extra: Record<string, unknown> = {}): Promise<number> {
    sqliteTx(tx);
    const now = this.#clock.now();
    const recipients = new Map(this.#recipients(messageId).map((r) => [r.idx, r]));
    for (const result of results) {
      const rcpt = recipients.get(result.idx);
      if (!rcpt || rcpt.state !== 'pending') continue;
      const state = result.outcome === 'deferred' ? 'pending' : result.outcome;
      this.#stmt.setAttempt.run(state, result.reply, result.remoteMta ?? null, now, messageId, result.idx);
      this.#events.appendSync(tx, {
        messageId,
        recipient: rcpt.address,
        type: result.outcome,
        detail: { reply: result.reply, remoteMta: result.remoteMta, attempt: rcpt.attempts + 1, ...extra, ...(result.tls ? { tls: result.tls } : {}) },
      });
    }
    const pending = (this.#stmt.pending.get(messageId) as { n: number }).n;
    if (pending === 0) this.#releaseSpool(tx, messageId);
    return pending;
  }

  /** Marks the spool file of a message as no longer needed (the message is then done); the caller deletes the file after the commit. */
  async releaseSpool(tx: Tx, messageId: string): Promise<void> {
    sqliteTx(tx);
    this.#releaseSpool(tx, messageId);
  }

  #releaseSpool(tx: Tx, messageId: string): void {
    const row = this.#stmt.getMessage.get(messageId) as MessageRow | undefined;
    if (!row || row.spool === null) return;
    this.#stmt.spoolGone.run(messageId);
    this.#events.appendSync(tx, { messageId, type: 'spool-removed' });
  }

  /**
   * A message came in whose X-Zegel-Origin verified at ingress (Message-ID,
   * envelope recipients and body: src/crypto/origin.ts). It counts as the
   * relay's own mail only if the relay made a mail with that Message-ID for
   * exactly these envelope recipients and no other message came back with it
   * before: the record is consumed here, once, by a single conditional
   * UPDATE. A second return, or a copy towards other recipients, is
   * classified like any other message. Idempotent for the same queue id (a
   * process job that runs again).
   */
  async claimRelayOrigin(tx: Tx, queueId: string, messageId: string | undefined, recipients: readonly string[]): Promise<boolean> {
    sqliteTx(tx);
    if (!messageId) return false;
    const row = this.#stmt.getRelayMail.get(messageId.trim()) as { recipients: string; returned_as: string | null } | undefined;
    if (!row) return false;
    const made = canonicalRecipients(JSON.parse(row.recipients) as string[]);
    const came = canonicalRecipients(recipients);
    if (made.length !== came.length || made.some((r, i) => r !== came[i])) return false;
    return this.#stmt.returnRelayMail.run(queueId, messageId.trim(), queueId).changes === 1;
  }

  /** Ids of messages whose spool file is still needed (start-up removes every other spool file). */
  async spooledIds(): Promise<Set<string>> {
    return new Set((this.#stmt.spooled.all() as Array<{ spool: string }>).map((r) => r.spool));
  }

  // ---- for the admin commands (src/cli/)

  /** How many recipients of a message are still pending. */
  async pendingCount(messageId: string, _tx?: Tx): Promise<number> {
    return (this.#stmt.pending.get(messageId) as { n: number }).n;
  }

  /**
   * An admin gives up held mail (`zegel queue delete --force`): its pending
   * recipients end as bounced with `reason` as their last reply, and the
   * message is done with its spool file released. Records no event: the
   * caller records its admin-action in the same transaction. Resolves true
   * when the spool file was still needed (the caller removes it after the commit).
   */
  async giveUp(tx: Tx, messageId: string, reason: string): Promise<boolean> {
    sqliteTx(tx);
    this.#stmt.giveUp.run(reason, this.#clock.now(), messageId);
    const row = this.#stmt.getMessage.get(messageId) as MessageRow | undefined;
    if (!row || row.spool === null) return false;
    this.#stmt.spoolGone.run(messageId);
    return true;
  }
}
