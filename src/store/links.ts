import type { Db } from './db.js';
import { sqliteTx, type Tx } from './tx.js';

/**
 * The `secure_links` table: one link per recipient of a secure message
 * (`/m/<id>`), with what opens the message for that recipient (the wrap W_r
 * and the server half K_srv_r, never K_link), its check method and the
 * reader's counters (failures, lock, open times), a scheduled revocation and
 * a resent link's successor. The only module that holds SQL for this table.
 *
 * Writes take the caller's transaction first (src/store/tx.ts); they run
 * synchronously underneath, so a group commit stays within one event-loop turn.
 */

export type LinkMethod = 'none' | 'access-code' | 'email-code' | 'sms-code';

export interface SecureLinkInsert {
  id: string;
  recipientIdx: number;
  address: string;
  method: LinkMethod;
  phone?: string | undefined;
  language: 'nl' | 'en';
  wrap: Buffer;
  kSrv: Buffer;
  /** Queue id of the link's notification mail. */
  notificationId: string;
}

/** A secure_links row as stored (snake_case: the secure job and the CLI read it like this). */
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
  created_at: number;
  first_opened_at: number | null;
  last_opened_at: number | null;
  failures: number;
  locked_until: number | null;
  revoke_at: number | null;
  notification_id: string | null;
  replaced_by: string | null;
}

/** A resent link: takes the old link's recipient, method, phone and language. */
export interface ReplacementLink {
  id: string;
  messageId: string;
  oldLinkId: string;
  wrap: Buffer;
  kSrv: Buffer;
  notificationId: string;
  createdAt: number;
}

export class LinkStore {
  readonly #stmt;

  constructor(db: Db) {
    this.#stmt = {
      insert: db.prepare(
        `INSERT INTO secure_links (id, message_id, recipient_idx, address, method, phone, language, wrap, k_srv, state, created_at, notification_id)
         VALUES (@id, @messageId, @recipientIdx, @address, @method, @phone, @language, @wrap, @kSrv, 'active', @createdAt, @notificationId)`,
      ),
      get: db.prepare('SELECT * FROM secure_links WHERE id = ?'),
      ofMessage: db.prepare('SELECT * FROM secure_links WHERE message_id = ? ORDER BY recipient_idx, created_at'),
      addFailure: db.prepare('UPDATE secure_links SET failures = failures + 1 WHERE id = ? RETURNING failures'),
      lock: db.prepare('UPDATE secure_links SET failures = 0, locked_until = ? WHERE id = ?'),
      opened: db.prepare(
        'UPDATE secure_links SET failures = 0, first_opened_at = COALESCE(first_opened_at, ?), last_opened_at = ? WHERE id = ?',
      ),
      touch: db.prepare('UPDATE secure_links SET last_opened_at = ? WHERE id = ?'),
      insertReplacement: db.prepare(
        `INSERT INTO secure_links (id, message_id, recipient_idx, address, method, phone, language, wrap, k_srv, state, created_at, notification_id)
         SELECT @id, message_id, recipient_idx, address, method, phone, language, @wrap, @kSrv, 'active', @createdAt, @notificationId
         FROM secure_links WHERE id = @oldLinkId AND message_id = @messageId AND state = 'active'`,
      ),
      replace: db.prepare(
        `UPDATE secure_links SET state = 'replaced', replaced_by = ?, wrap = NULL, k_srv = NULL WHERE id = ? AND message_id = ? AND state = 'active'`,
      ),
      openedBefore: db.prepare(
        `SELECT COUNT(*) AS n FROM secure_links WHERE message_id = ? AND recipient_idx = ? AND id != ? AND first_opened_at IS NOT NULL`,
      ),
      shred: db.prepare(`UPDATE secure_links SET wrap = NULL, k_srv = NULL, state = ?, revoke_at = NULL WHERE id = ? AND state = 'active'`),
      wrapsLeft: db.prepare(`SELECT COUNT(*) AS n FROM secure_links WHERE message_id = ? AND state = 'active' AND wrap IS NOT NULL AND k_srv IS NOT NULL`),
      anyWrap: db.prepare(`SELECT COUNT(*) AS n FROM secure_links WHERE message_id = ? AND state = 'active' AND wrap IS NOT NULL`),
      shredAll: db.prepare('UPDATE secure_links SET wrap = NULL, k_srv = NULL, revoke_at = NULL WHERE message_id = ?'),
      schedule: db.prepare(`UPDATE secure_links SET revoke_at = ? WHERE id = ? AND state = 'active'`),
      due: db.prepare(`SELECT id FROM secure_links WHERE revoke_at IS NOT NULL AND revoke_at <= ? AND state = 'active' LIMIT ?`),
    };
  }

  /** Records the links of a new secure message (the secure job, with the message in the same transaction). */
  async insert(tx: Tx, messageId: string, createdAt: number, links: readonly SecureLinkInsert[]): Promise<void> {
    sqliteTx(tx);
    // no await in here: SecureStore.insert writes the message and these rows in one turn of the event loop
    for (const link of links) {
      this.#stmt.insert.run({ ...link, phone: link.phone ?? null, messageId, createdAt });
    }
  }

  async get(id: string, _tx?: Tx): Promise<SecureLinkRow | undefined> {
    return this.#stmt.get.get(id) as SecureLinkRow | undefined;
  }

  /** Every link of a secure message (resent ones included), by recipient then age. */
  async ofMessage(messageId: string, _tx?: Tx): Promise<SecureLinkRow[]> {
    return this.#stmt.ofMessage.all(messageId) as SecureLinkRow[];
  }

  /** Counts one check attempt; resolves to the attempts counted since the last lock or success (an unknown link: more than any limit). */
  async addFailure(tx: Tx, linkId: string): Promise<number> {
    sqliteTx(tx);
    const row = this.#stmt.addFailure.get(linkId) as { failures: number } | undefined;
    return row?.failures ?? Number.MAX_SAFE_INTEGER;
  }

  /** Locks a link until `until`; its failures start again from 0. */
  async lock(tx: Tx, linkId: string, until: number): Promise<void> {
    sqliteTx(tx);
    this.#stmt.lock.run(until, linkId);
  }

  /** A passed check: failures reset, first (once) and last open time set. */
  async opened(tx: Tx, linkId: string, now: number): Promise<void> {
    sqliteTx(tx);
    this.#stmt.opened.run(now, now, linkId);
  }

  /** The recipient used the link again (read, download, reply). */
  async touch(tx: Tx, linkId: string, now: number): Promise<void> {
    sqliteTx(tx);
    this.#stmt.touch.run(now, linkId);
  }

  /**
   * A resent link: the new row copies the old one's recipient, method, phone
   * and language; the old one becomes 'replaced' with its wrap and K_srv
   * gone. False when the old link is not an active link of that message
   * (nothing changed).
   */
  async replace(tx: Tx, link: ReplacementLink): Promise<boolean> {
    sqliteTx(tx);
    const inserted = this.#stmt.insertReplacement.run({
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
    return true;
  }

  /** Whether another link of the same recipient was opened before (a resent link's open is not the first). */
  async openedBefore(messageId: string, recipientIdx: number, linkId: string): Promise<boolean> {
    return (this.#stmt.openedBefore.get(messageId, recipientIdx, linkId) as { n: number }).n > 0;
  }

  /** Crypto-shreds an active link (wrap and K_srv overwritten, state revoked|expired); false when it was not active. */
  async shred(tx: Tx, linkId: string, state: 'revoked' | 'expired'): Promise<boolean> {
    sqliteTx(tx);
    return this.#stmt.shred.run(state, linkId).changes > 0;
  }

  /** Active links of a message that still hold both a wrap and K_srv. */
  async wrapsLeft(messageId: string, _tx?: Tx): Promise<number> {
    return (this.#stmt.wrapsLeft.get(messageId) as { n: number }).n;
  }

  /** Whether an active link of the message still holds a wrap. */
  async hasWrap(messageId: string, _tx?: Tx): Promise<boolean> {
    return (this.#stmt.anyWrap.get(messageId) as { n: number }).n > 0;
  }

  /** Shreds every link of a message, whatever its state (the message is purged). */
  async shredAll(tx: Tx, messageId: string): Promise<void> {
    sqliteTx(tx);
    this.#stmt.shredAll.run(messageId);
  }

  /** Sets or clears an active link's scheduled revocation; false when the link is not active. */
  async scheduleRevoke(tx: Tx, linkId: string, at: number | null): Promise<boolean> {
    sqliteTx(tx);
    return this.#stmt.schedule.run(at, linkId).changes > 0;
  }

  /** Active links whose scheduled revocation is due. */
  async dueRevocations(now: number, limit: number): Promise<string[]> {
    return (this.#stmt.due.all(now, limit) as Array<{ id: string }>).map((r) => r.id);
  }
}
