import type { Db } from './db.js';

/**
 * Secure messages and their per-recipient links, as the secure job writes
 * them. Rows hold no content and no K_link: only ciphertext blob ids, the
 * wraps W_r and the server halves K_srv_r (DESIGN "Key schedule"). The reader
 * (src/reader/links.ts) reads and updates the check state of the same rows.
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

export interface SecureLinkInsert {
  id: string;
  recipientIdx: number;
  address: string;
  method: 'none' | 'access-code' | 'email-code' | 'sms-code';
  phone?: string | undefined;
  language: 'nl' | 'en';
  wrap: Buffer;
  kSrv: Buffer;
  /** Queue id of the link's notification mail. */
  notificationId: string;
}

export interface SecureMessageRow {
  id: string;
  queue_id: string;
  sender: string;
  created_at: number;
  expires_at: number;
  state: string;
  body_blob: string | null;
  blobs: string;
}

export interface SecureLinkRow {
  id: string;
  message_id: string;
  recipient_idx: number;
  address: string;
  method: string;
  phone: string | null;
  language: string;
  wrap: Buffer | null;
  k_srv: Buffer | null;
  state: string;
}

export class SecureStore {
  readonly #stmt;

  constructor(db: Db) {
    this.#stmt = {
      insertMessage: db.prepare(
        `INSERT INTO secure_messages (id, queue_id, sender, created_at, expires_at, state, body_blob, blobs, origin_message_id, thread_id)
         VALUES (@id, @queueId, @sender, @createdAt, @expiresAt, 'active', @bodyBlob, @blobs, @originMessageId, @threadId)`,
      ),
      insertLink: db.prepare(
        `INSERT INTO secure_links (id, message_id, recipient_idx, address, method, phone, language, wrap, k_srv, state, created_at, notification_id)
         VALUES (@id, @messageId, @recipientIdx, @address, @method, @phone, @language, @wrap, @kSrv, 'active', @createdAt, @notificationId)`,
      ),
      byQueueId: db.prepare('SELECT * FROM secure_messages WHERE queue_id = ?'),
      byId: db.prepare('SELECT * FROM secure_messages WHERE id = ?'),
      links: db.prepare('SELECT * FROM secure_links WHERE message_id = ? ORDER BY recipient_idx, created_at'),
      ids: db.prepare('SELECT id FROM secure_messages WHERE body_blob IS NOT NULL'),
    };
  }

  /** Records a secure message and its links; call inside the caller's transaction. */
  insertSync(message: SecureMessageInsert, links: SecureLinkInsert[]): void {
    this.#stmt.insertMessage.run({ ...message, originMessageId: message.originMessageId ?? null, blobs: JSON.stringify(message.blobs) });
    for (const link of links) {
      this.#stmt.insertLink.run({ ...link, phone: link.phone ?? null, messageId: message.id, createdAt: message.createdAt });
    }
  }

  byQueueId(queueId: string): SecureMessageRow | undefined {
    return this.#stmt.byQueueId.get(queueId) as SecureMessageRow | undefined;
  }

  get(id: string): SecureMessageRow | undefined {
    return this.#stmt.byId.get(id) as SecureMessageRow | undefined;
  }

  links(secureId: string): SecureLinkRow[] {
    return this.#stmt.links.all(secureId) as SecureLinkRow[];
  }

  /** Secure messages whose blobs must exist; any other blob directory is left over from a crash. */
  idsWithBlobs(): Set<string> {
    return new Set((this.#stmt.ids.all() as Array<{ id: string }>).map((r) => r.id));
  }
}
