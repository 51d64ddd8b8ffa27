import type { Db } from '../store/db.js';

/**
 * Data access for the sender's status page: the status columns of
 * secure_messages, and per link what happened to it (its notification's
 * delivery state, open times, downloads, replies). Holds no key material
 * beyond what the rows already hold (W_s and K_srv_s, released only to a
 * valid status token).
 */

export interface StatusMessageRow {
  id: string;
  queueId: string;
  sender: string;
  createdAt: number;
  expiresAt: number;
  state: string;
  revokeAt: number | undefined;
  statusTokenHash: string | undefined;
  senderWrap: Buffer | undefined;
  senderKSrv: Buffer | undefined;
}

export interface StatusLinkRow {
  id: string;
  recipientIdx: number;
  address: string;
  method: string;
  phone: string | undefined;
  language: string;
  state: string;
  createdAt: number;
  firstOpenedAt: number | undefined;
  lastOpenedAt: number | undefined;
  revokeAt: number | undefined;
  replacedBy: string | undefined;
  notificationId: string | undefined;
  /** recipients.state of the notification: pending | delivered | bounced; undefined when unknown. */
  notificationState: string | undefined;
  hasWrap: boolean;
}

export interface ResentLink {
  id: string;
  messageId: string;
  oldLinkId: string;
  wrap: Buffer;
  kSrv: Buffer;
  notificationId: string;
  createdAt: number;
}

const opt = <T>(v: T | null): T | undefined => (v === null ? undefined : v);

export class StatusStore {
  readonly #stmt;

  constructor(db: Db) {
    this.#stmt = {
      setStatus: db.prepare('UPDATE secure_messages SET status_id = ?, status_token_hash = ?, sender_wrap = ?, sender_k_srv = ? WHERE id = ?'),
      byStatusId: db.prepare('SELECT * FROM secure_messages WHERE status_id = ?'),
      links: db.prepare(
        `SELECT l.*, r.state AS notification_state, (l.wrap IS NOT NULL AND l.k_srv IS NOT NULL) AS has_wrap
         FROM secure_links l LEFT JOIN recipients r ON r.message_id = l.notification_id AND r.idx = 0
         WHERE l.message_id = ? ORDER BY l.recipient_idx, l.created_at`,
      ),
      downloads: db.prepare(
        `SELECT json_extract(detail, '$.linkId') AS link_id, COUNT(*) AS n, MAX(at) AS last FROM events
         WHERE message_id = ? AND type = 'downloaded' GROUP BY link_id`,
      ),
      replies: db.prepare('SELECT link_id, COUNT(*) AS n, MAX(created_at) AS last FROM secure_replies WHERE message_id = ? GROUP BY link_id'),
      link: db.prepare('SELECT * FROM secure_links WHERE id = ?'),
      insertLink: db.prepare(
        `INSERT INTO secure_links (id, message_id, recipient_idx, address, method, phone, language, wrap, k_srv, state, created_at, notification_id)
         SELECT @id, message_id, recipient_idx, address, method, phone, language, @wrap, @kSrv, 'active', @createdAt, @notificationId
         FROM secure_links WHERE id = @oldLinkId AND message_id = @messageId AND state = 'active'`,
      ),
      replace: db.prepare(
        `UPDATE secure_links SET state = 'replaced', replaced_by = ?, wrap = NULL, k_srv = NULL WHERE id = ? AND message_id = ? AND state = 'active'`,
      ),
      endSessions: db.prepare('DELETE FROM reader_sessions WHERE link_id = ?'),
      voidCodes: db.prepare(`UPDATE one_time_codes SET state = 'void' WHERE link_id = ? AND state = 'live'`),
      openedBefore: db.prepare(
        `SELECT COUNT(*) AS n FROM secure_links WHERE message_id = ? AND recipient_idx = ? AND id != ? AND first_opened_at IS NOT NULL`,
      ),
    };
  }

  /** Records the sender's status link; call inside the secure job's transaction. */
  setStatusSync(secureId: string, status: { statusId: string; tokenHash: string; wrap: Buffer; kSrv: Buffer }): void {
    this.#stmt.setStatus.run(status.statusId, status.tokenHash, status.wrap, status.kSrv, secureId);
  }

  byStatusId(statusId: string): StatusMessageRow | undefined {
    const row = this.#stmt.byStatusId.get(statusId) as
      | {
          id: string; queue_id: string; sender: string; created_at: number; expires_at: number; state: string; revoke_at: number | null;
          status_token_hash: string | null; sender_wrap: Buffer | null; sender_k_srv: Buffer | null;
        }
      | undefined;
    if (!row) return undefined;
    return {
      id: row.id,
      queueId: row.queue_id,
      sender: row.sender,
      createdAt: row.created_at,
      expiresAt: row.expires_at,
      state: row.state,
      revokeAt: opt(row.revoke_at),
      statusTokenHash: opt(row.status_token_hash),
      senderWrap: opt(row.sender_wrap),
      senderKSrv: opt(row.sender_k_srv),
    };
  }

  links(secureId: string): StatusLinkRow[] {
    return (this.#stmt.links.all(secureId) as Array<Record<string, unknown>>).map((r) => ({
      id: r.id as string,
      recipientIdx: r.recipient_idx as number,
      address: r.address as string,
      method: r.method as string,
      phone: opt(r.phone as string | null),
      language: r.language as string,
      state: r.state as string,
      createdAt: r.created_at as number,
      firstOpenedAt: opt(r.first_opened_at as number | null),
      lastOpenedAt: opt(r.last_opened_at as number | null),
      revokeAt: opt((r.revoke_at as number | null | undefined) ?? null),
      replacedBy: opt((r.replaced_by as string | null | undefined) ?? null),
      notificationId: opt((r.notification_id as string | null | undefined) ?? null),
      notificationState: opt(r.notification_state as string | null),
      hasWrap: r.has_wrap === 1,
    }));
  }

  /** Downloads per link id (events 'downloaded' of the queued message). */
  downloads(queueId: string): Map<string, { count: number; last: number }> {
    const rows = this.#stmt.downloads.all(queueId) as Array<{ link_id: string | null; n: number; last: number }>;
    return new Map(rows.filter((r) => r.link_id).map((r) => [r.link_id!, { count: r.n, last: r.last }]));
  }

  /** Replies per link id. */
  replies(secureId: string): Map<string, { count: number; last: number }> {
    const rows = this.#stmt.replies.all(secureId) as Array<{ link_id: string; n: number; last: number }>;
    return new Map(rows.map((r) => [r.link_id, { count: r.n, last: r.last }]));
  }

  /**
   * A resent link: the new link takes the old one's recipient, method, phone
   * and language; the old one becomes 'replaced' (its wrap and K_srv gone,
   * its sessions ended, its codes void). Call inside a transaction; false
   * when the old link is not an active link of that message (nothing changed).
   */
  replaceSync(link: ResentLink): boolean {
    const inserted = this.#stmt.insertLink.run({
      id: link.id,
      oldLinkId: link.oldLinkId,
      messageId: link.messageId,
      wrap: link.wrap,
      kSrv: link.kSrv,
      createdAt: link.createdAt,
      notificationId: link.notificationId,
    });
    if (inserted.changes !== 1) return false;
    this.#stmt.replace.run(link.id, link.oldLinkId, link.messageId);
    this.#stmt.endSessions.run(link.oldLinkId);
    this.#stmt.voidCodes.run(link.oldLinkId);
    return true;
  }

  /** Whether another link of the same recipient was opened before (a resent link's open is not the first). */
  openedBefore(secureId: string, recipientIdx: number, linkId: string): boolean {
    return (this.#stmt.openedBefore.get(secureId, recipientIdx, linkId) as { n: number }).n > 0;
  }
}
