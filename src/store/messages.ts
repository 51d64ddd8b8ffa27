import { GENESIS_HASH, chainHash } from '../audit/chain.js';
import type { Clock } from '../clock.js';
import { canonicalRecipients } from '../crypto/origin.js';
import type { Db } from './db.js';
import type { GroupCommitter } from './group-commit.js';

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

export type EventType = 'received' | 'classified' | 'decided' | 'delivered' | 'deferred' | 'bounced' | 'dsn-queued' | 'spool-removed' | 'encrypted' | 'notification-queued' | 'mail-queued'
  // the reader (src/reader/routes/api.ts)
  | 'code-sent' | 'check-passed' | 'check-failed' | 'locked' | 'forgot-code' | 'opened' | 'downloaded'
  // revocation, expiry and purge (src/store/revocation.ts), operator commands (src/cli/messages-commands.ts)
  | 'revoked' | 'expired' | 'purged' | 'revoke-scheduled' | 'admin-action'
  // the sender's status page (src/reader/routes/status.ts)
  | 'link-resent'
  // a recipient's reply from the reader (src/reader/routes/reply.ts); no content
  | 'replied'
  // audit records past retention.audit removed from the start of the chain (src/audit/retention.ts)
  | 'audit-purged'
  // the rule set: reloaded after a change, or refused (the previous set stays active); no message
  | 'rules-reloaded' | 'rules-refused'
  // relay-made mail that could not be delivered (src/deliver): a notice to the postmaster, or held for an admin
  | 'postmaster-queued' | 'held';

export interface EventInput {
  /** The message the event is about; null for relay-wide events (rules reloaded or refused). */
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

export interface AttemptResult {
  idx: number;
  outcome: 'delivered' | 'deferred' | 'bounced' | 'encrypted';
  reply: string;
  remoteMta?: string | undefined;
}

/** JSON with keys in a fixed order, so a record's bytes can be hashed later. */
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

interface MessageRow {
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

interface RecipientRow {
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

/**
 * Messages, their recipients and the append-only event table, in SQLite.
 * Writes go through the group committer and resolve once durable; `*Sync`
 * methods run inside a transaction the caller already holds.
 */
export class MessageStore {
  readonly #db: Db;
  readonly #committer: GroupCommitter;
  readonly #clock: Clock;
  readonly #stmt;

  constructor(db: Db, committer: GroupCommitter, clock: Clock) {
    this.#db = db;
    this.#committer = committer;
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
      // the audit chain's head, read inside the writing transaction (src/audit/chain.ts)
      chainHead: db.prepare(
        `SELECT (SELECT seq FROM sqlite_sequence WHERE name = 'events') AS last,
                (SELECT hash FROM events ORDER BY seq DESC LIMIT 1) AS prev,
                (SELECT hash FROM audit_anchor WHERE id = 1) AS anchor`,
      ),
      insertEvent: db.prepare('INSERT INTO events (seq, at, message_id, recipient, type, detail, prev_hash, hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?)'),
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
      events: db.prepare('SELECT * FROM events WHERE message_id = ? ORDER BY seq'),
      spooled: db.prepare('SELECT spool FROM messages WHERE spool IS NOT NULL'),
      insertRelayMail: db.prepare('INSERT OR IGNORE INTO relay_mail (message_id, recipients, created_at) VALUES (?, ?, ?)'),
      getRelayMail: db.prepare('SELECT recipients, returned_as FROM relay_mail WHERE message_id = ?'),
      // single use: the one statement that consumes the record also checks that nobody did before
      returnRelayMail: db.prepare('UPDATE relay_mail SET returned_as = ? WHERE message_id = ? AND (returned_as IS NULL OR returned_as = ?)'),
    };
  }

  /** Records an accepted message with its recipients and the `received` event. */
  insertReceivedSync(message: IncomingMessage): void {
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
      this.#stmt.insertRelayMail.run(message.messageId.trim(), JSON.stringify(message.recipients.map((r) => r.address.toLowerCase())), now);
    }
    this.appendEventSync({
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
    });
  }

  appendEventSync(event: EventInput): void {
    // chained here (the events_chain trigger does the same for inserts that bring no hash): the head is read
    // under the write lock this transaction holds, so no other writer can link to the same record
    const head = this.#stmt.chainHead.get() as { last: number | null; prev: string | null; anchor: string | null };
    const record = { seq: (head.last ?? 0) + 1, at: this.#clock.now(), message_id: event.messageId, recipient: event.recipient ?? null, type: event.type, detail: canonicalJson(event.detail ?? {}) };
    const prev = head.prev ?? head.anchor ?? GENESIS_HASH;
    this.#stmt.insertEvent.run(record.seq, record.at, record.message_id, record.recipient, record.type, record.detail, prev, chainHash(prev, record));
  }

  getMessage(id: string): MessageRecord | undefined {
    const row = this.#stmt.getMessage.get(id) as MessageRow | undefined;
    if (!row) return undefined;
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

  getRecipients(messageId: string): RecipientRecord[] {
    return (this.#stmt.getRecipients.all(messageId) as RecipientRow[]).map((row) => ({
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
    }));
  }

  events(messageId: string): EventRecord[] {
    return (this.#stmt.events.all(messageId) as Array<{ seq: number; at: number; message_id: string; recipient: string | null; type: EventType; detail: string }>).map(
      (row) => ({ seq: row.seq, at: row.at, messageId: row.message_id, recipient: opt(row.recipient), type: row.type, detail: JSON.parse(row.detail) }),
    );
  }

  /** Stores the decision for each recipient (idempotent: a second run writes the same). */
  recordDecisions(messageId: string, decisions: Array<{ idx: number; address: string; decision: Decision; reason: string }>): Promise<void> {
    return this.#committer.write(() => {
      const now = this.#clock.now();
      const already = this.getMessage(messageId)?.state !== 'queued';
      for (const d of decisions) {
        this.#stmt.setDecision.run(d.decision, now, messageId, d.idx);
        if (!already) this.appendEventSync({ messageId, recipient: d.address, type: 'decided', detail: { decision: d.decision, reason: d.reason } });
      }
      if (!already) this.#stmt.setMessageState.run('processed', messageId);
    });
  }

  /**
   * Stores the outcome of one delivery attempt for some recipients. Only
   * pending recipients change, so a repeated attempt after a crash records
   * nothing twice. Resolves to the number of recipients still pending; at 0
   * the spool file is marked released in the same commit (the caller deletes
   * it; a crash before that leaves a file that start-up removes).
   */
  recordAttempt(messageId: string, results: AttemptResult[], extra: Record<string, unknown> = {}): Promise<number> {
    return this.#committer.write(() => this.recordAttemptSync(messageId, results, extra));
  }

  /** recordAttempt inside a transaction the caller runs. */
  recordAttemptSync(messageId: string, results: AttemptResult[], extra: Record<string, unknown> = {}): number {
    const now = this.#clock.now();
    const recipients = new Map(this.getRecipients(messageId).map((r) => [r.idx, r]));
    for (const result of results) {
      const rcpt = recipients.get(result.idx);
      if (!rcpt || rcpt.state !== 'pending') continue;
      const state = result.outcome === 'deferred' ? 'pending' : result.outcome;
      this.#stmt.setAttempt.run(state, result.reply, result.remoteMta ?? null, now, messageId, result.idx);
      this.appendEventSync({
        messageId,
        recipient: rcpt.address,
        type: result.outcome,
        detail: { reply: result.reply, remoteMta: result.remoteMta, attempt: rcpt.attempts + 1, ...extra },
      });
    }
    const pending = (this.#stmt.pending.get(messageId) as { n: number }).n;
    if (pending === 0) this.#releaseSpoolSync(messageId);
    return pending;
  }

  /** Marks the spool file as no longer needed; the caller deletes the file after the commit. */
  #releaseSpoolSync(messageId: string): void {
    const row = this.#stmt.getMessage.get(messageId) as MessageRow | undefined;
    if (!row || row.spool === null) return;
    this.#stmt.spoolGone.run(messageId);
    this.appendEventSync({ messageId, type: 'spool-removed' });
  }

  /** Marks the spool file of a message as removed; the message is then done. */
  markSpoolRemoved(messageId: string): Promise<void> {
    return this.#committer.write(() => this.#releaseSpoolSync(messageId));
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
  claimRelayOrigin(queueId: string, messageId: string | undefined, recipients: readonly string[]): Promise<boolean> {
    return this.#committer.write(() => {
      if (!messageId) return false;
      const row = this.#stmt.getRelayMail.get(messageId.trim()) as { recipients: string; returned_as: string | null } | undefined;
      if (!row) return false;
      const made = canonicalRecipients(JSON.parse(row.recipients) as string[]);
      const came = canonicalRecipients(recipients);
      if (made.length !== came.length || made.some((r, i) => r !== came[i])) return false;
      return this.#stmt.returnRelayMail.run(queueId, messageId.trim(), queueId).changes === 1;
    });
  }

  appendEvent(event: EventInput): Promise<void> {
    return this.#committer.write(() => this.appendEventSync(event));
  }

  /** Ids of messages whose spool file is still needed. */
  spooledIds(): Set<string> {
    return new Set((this.#stmt.spooled.all() as Array<{ spool: string }>).map((r) => r.spool));
  }

  get db(): Db {
    return this.#db;
  }
}
