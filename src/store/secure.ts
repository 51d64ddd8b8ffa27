import type { Db } from './db.js';
import { LinkStore, type SecureLinkInsert, type SecureLinkRow } from './links.js';
import { sqliteTx, type Tx } from './tx.js';

export type { SecureLinkInsert, SecureLinkRow } from './links.js';

/**
 * The `secure_messages` table: one row per message stored encrypted. Rows
 * hold no content and no K_link: ciphertext blob ids, the state
 * (active | revoked | expired), the expiry and a scheduled revocation, the
 * conversation (thread id, original Message-ID) and the sender's status link
 * (status id, SHA-256 of its token, W_s and K_srv_s). The only module that
 * holds SQL for this table; the links are in src/store/links.ts.
 *
 * Writes take the caller's transaction first (src/store/tx.ts).
 */

export interface SecureMessageInsert {
  id: string;
  queueId: string;
  sender: string;
  createdAt: number;
  expiresAt: number;
  bodyBlob: string;
  blobs: Array<{ id: string; bytes: number }>;
  /** Message-ID of the original, for threading replies. */
  originMessageId?: string | undefined;
  /** The conversation this message belongs to (its own id when it starts one). */
  threadId: string;
}

/** A secure_messages row as stored (snake_case: the CLI and the secure job read it like this). */
export interface SecureMessageRow {
  id: string;
  queue_id: string;
  sender: string;
  created_at: number;
  expires_at: number;
  state: string;
  body_blob: string | null;
  blobs: string;
  revoke_at: number | null;
  purged_at: number | null;
  thread_id: string | null;
  origin_message_id: string | null;
  status_id: string | null;
  status_token_hash: string | null;
  sender_wrap: Buffer | null;
  sender_k_srv: Buffer | null;
}

/** How many attachment blobs a secure message row lists (its `blobs` column, JSON); 0 when unreadable. */
export function blobCount(row: Pick<SecureMessageRow, 'blobs'>): number {
  try {
    const parsed: unknown = JSON.parse(row.blobs);
    return Array.isArray(parsed) ? parsed.length : 0;
  } catch {
    return 0;
  }
}

export interface StatusLinkSecrets {
  statusId: string;
  tokenHash: string;
  wrap: Buffer;
  kSrv: Buffer;
}

export class SecureStore {
  readonly #stmt;
  /** The links of the same messages (src/store/links.ts): written with the message by the secure job. */
  readonly #links: LinkStore;

  constructor(db: Db, links: LinkStore = new LinkStore(db)) {
    this.#links = links;
    this.#stmt = {
      insert: db.prepare(
        `INSERT INTO secure_messages (id, queue_id, sender, created_at, expires_at, state, body_blob, blobs, origin_message_id, thread_id)
         VALUES (@id, @queueId, @sender, @createdAt, @expiresAt, 'active', @bodyBlob, @blobs, @originMessageId, @threadId)`,
      ),
      byQueueId: db.prepare('SELECT * FROM secure_messages WHERE queue_id = ?'),
      byId: db.prepare('SELECT * FROM secure_messages WHERE id = ?'),
      byStatusId: db.prepare('SELECT * FROM secure_messages WHERE status_id = ?'),
      withBlobs: db.prepare('SELECT id FROM secure_messages WHERE body_blob IS NOT NULL'),
      setStatus: db.prepare('UPDATE secure_messages SET status_id = ?, status_token_hash = ?, sender_wrap = ?, sender_k_srv = ? WHERE id = ?'),
      byOrigin: db.prepare('SELECT thread_id, id FROM secure_messages WHERE origin_message_id = ? ORDER BY created_at LIMIT 1'),
      purge: db.prepare(
        `UPDATE secure_messages SET state = ?, body_blob = NULL, purged_at = ?, sender_wrap = NULL, sender_k_srv = NULL, revoke_at = NULL
         WHERE id = ? AND purged_at IS NULL`,
      ),
      setState: db.prepare(`UPDATE secure_messages SET state = ? WHERE id = ? AND state = 'active'`),
      schedule: db.prepare('UPDATE secure_messages SET revoke_at = ? WHERE id = ? AND purged_at IS NULL'),
      dueExpiry: db.prepare(`SELECT id FROM secure_messages WHERE state = 'active' AND expires_at <= ? ORDER BY expires_at LIMIT ?`),
      dueRevocations: db.prepare('SELECT id FROM secure_messages WHERE revoke_at IS NOT NULL AND revoke_at <= ? AND purged_at IS NULL LIMIT ?'),
      unpurgedInactive: db.prepare(`SELECT id FROM secure_messages WHERE purged_at IS NULL AND state <> 'active'`),
      // admin reads (zegel messages list): see the section at the end
      adminList: db.prepare('SELECT * FROM secure_messages WHERE (? IS NULL OR lower(sender) = ?) AND created_at >= ? ORDER BY created_at DESC, id'),
    };
  }

  /** Records a secure message and its links. */
  async insert(tx: Tx, message: SecureMessageInsert, links: readonly SecureLinkInsert[]): Promise<void> {
    sqliteTx(tx);
    this.#stmt.insert.run({ ...message, originMessageId: message.originMessageId ?? null, blobs: JSON.stringify(message.blobs) });
    // LinkStore.insert has no await: its rows are written in this same turn, right after the message's
    await this.#links.insert(tx, message.id, message.createdAt, links);
  }

  /** Records the sender's status link (the secure job, with the message). */
  async setStatus(tx: Tx, secureId: string, status: StatusLinkSecrets): Promise<void> {
    sqliteTx(tx);
    this.#stmt.setStatus.run(status.statusId, status.tokenHash, status.wrap, status.kSrv, secureId);
  }

  async get(id: string, _tx?: Tx): Promise<SecureMessageRow | undefined> {
    return this.#stmt.byId.get(id) as SecureMessageRow | undefined;
  }

  /** The secure message made from a queued message (its queue id), or undefined. */
  async byQueueId(queueId: string): Promise<SecureMessageRow | undefined> {
    return this.#stmt.byQueueId.get(queueId) as SecureMessageRow | undefined;
  }

  async byStatusId(statusId: string): Promise<SecureMessageRow | undefined> {
    return this.#stmt.byStatusId.get(statusId) as SecureMessageRow | undefined;
  }

  /** The links of a message (src/store/links.ts), for callers that hold only this store. */
  links(secureId: string): Promise<SecureLinkRow[]> {
    return this.#links.ofMessage(secureId);
  }

  /** Secure messages whose blobs must exist; any other blob directory is left over from a crash. */
  async idsWithBlobs(): Promise<Set<string>> {
    return new Set((this.#stmt.withBlobs.all() as Array<{ id: string }>).map((r) => r.id));
  }

  /** The thread of the oldest secure message whose original had this Message-ID, or undefined. */
  async threadOfOrigin(messageId: string): Promise<string | undefined> {
    const row = this.#stmt.byOrigin.get(messageId) as { thread_id: string | null; id: string } | undefined;
    return row ? (row.thread_id ?? row.id) : undefined;
  }

  /**
   * Purges a message: body blob id, the sender's W_s and K_srv_s and a
   * scheduled revocation gone, purged_at set, state as given. Only once.
   */
  async purge(tx: Tx, secureId: string, state: string, now: number): Promise<void> {
    sqliteTx(tx);
    this.#stmt.purge.run(state, now, secureId);
  }

  /** Sets the state of a message that is still active. */
  async setState(tx: Tx, secureId: string, state: 'revoked' | 'expired'): Promise<void> {
    sqliteTx(tx);
    this.#stmt.setState.run(state, secureId);
  }

  /** Sets or clears the scheduled revocation of every link; false when the message was purged already. */
  async scheduleRevoke(tx: Tx, secureId: string, at: number | null): Promise<boolean> {
    sqliteTx(tx);
    return this.#stmt.schedule.run(at, secureId).changes > 0;
  }

  /** Active messages past their expiry, oldest expiry first. */
  async dueExpiry(now: number, limit: number): Promise<string[]> {
    return (this.#stmt.dueExpiry.all(now, limit) as Array<{ id: string }>).map((r) => r.id);
  }

  /** Unpurged messages whose scheduled revocation is due. */
  async dueRevocations(now: number, limit: number): Promise<string[]> {
    return (this.#stmt.dueRevocations.all(now, limit) as Array<{ id: string }>).map((r) => r.id);
  }

  /** Messages no longer active that were never purged (normally none: a purge follows in the same commit). */
  async unpurgedInactive(): Promise<string[]> {
    return (this.#stmt.unpurgedInactive.all() as Array<{ id: string }>).map((r) => r.id);
  }

  // ---- admin reads (zegel messages, src/cli/), added by the CLI's helper: the owner may move or rename them

  /** Secure messages created at or after `since`, newest first; with `sender` only that envelope sender (case-insensitive). */
  async list(filter: { sender?: string | undefined; since: number }): Promise<SecureMessageRow[]> {
    const sender = filter.sender?.trim().toLowerCase() ?? null;
    return this.#stmt.adminList.all(sender, sender, filter.since) as SecureMessageRow[];
  }
}
