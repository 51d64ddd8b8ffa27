import type { Db } from './db.js';
import { sqliteTx, type Tx } from './tx.js';

/**
 * The `one_time_codes` table: e-mail and SMS codes of the reader's checks,
 * stored as HMACs bound to the link and the browser session
 * (src/secure/checks.ts), with their state live | used | void. Rows outlive
 * their expiry for a while: the reader's code rate limits count them. The
 * only module that holds SQL for this table.
 */

export interface CodeRow {
  id: number;
  codeHash: string;
  expiresAt: number;
}

export interface NewCode {
  linkId: string;
  sessionHash: string;
  channel: 'email' | 'sms';
  codeHash: string;
  createdAt: number;
  expiresAt: number;
}

export class CodeStore {
  readonly #stmt;

  constructor(db: Db) {
    this.#stmt = {
      voidLive: db.prepare(`UPDATE one_time_codes SET state = 'void' WHERE link_id = ? AND state = 'live'`),
      insert: db.prepare(
        `INSERT INTO one_time_codes (link_id, session_hash, channel, code_hash, created_at, expires_at, state)
         VALUES (?, ?, ?, ?, ?, ?, 'live')`,
      ),
      since: db.prepare('SELECT created_at FROM one_time_codes WHERE link_id = ? AND created_at > ? ORDER BY created_at'),
      live: db.prepare(
        `SELECT id, code_hash, expires_at FROM one_time_codes
         WHERE link_id = ? AND session_hash = ? AND state = 'live' AND expires_at > ?`,
      ),
      use: db.prepare(`UPDATE one_time_codes SET state = 'used' WHERE id = ? AND state = 'live'`),
      void: db.prepare(`UPDATE one_time_codes SET state = 'void' WHERE id = ? AND state = 'live'`),
      deleteLive: db.prepare(`DELETE FROM one_time_codes WHERE link_id = ? AND state = 'live'`),
      expired: db.prepare('DELETE FROM one_time_codes WHERE expires_at <= ?'),
    };
  }

  /** Stores a new live code; resolves to its row id. */
  async insert(tx: Tx, code: NewCode): Promise<number> {
    sqliteTx(tx);
    const info = this.#stmt.insert.run(code.linkId, code.sessionHash, code.channel, code.codeHash, code.createdAt, code.expiresAt);
    return Number(info.lastInsertRowid);
  }

  /** Every live code of the link becomes void (a new code was sent, or the link locked or replaced). */
  async voidLive(tx: Tx, linkId: string): Promise<void> {
    sqliteTx(tx);
    this.#stmt.voidLive.run(linkId);
  }

  /** Creation times of the link's codes newer than `since`, oldest first (rate limits). */
  async createdSince(linkId: string, since: number, _tx?: Tx): Promise<number[]> {
    return (this.#stmt.since.all(linkId, since) as Array<{ created_at: number }>).map((r) => r.created_at);
  }

  /** Live, unexpired codes of a link for one browser session. */
  async live(linkId: string, sessionHash: string, now: number): Promise<CodeRow[]> {
    return (this.#stmt.live.all(linkId, sessionHash, now) as Array<{ id: number; code_hash: string; expires_at: number }>).map((r) => ({
      id: r.id,
      codeHash: r.code_hash,
      expiresAt: r.expires_at,
    }));
  }

  /** Marks a live code used; false when another request used or voided it first. */
  async use(tx: Tx, id: number): Promise<boolean> {
    sqliteTx(tx);
    return this.#stmt.use.run(id).changes === 1;
  }

  async void(tx: Tx, id: number): Promise<void> {
    sqliteTx(tx);
    this.#stmt.void.run(id);
  }

  /** Deletes the live codes of a link (revoked or expired: nothing may open it any more). */
  async deleteLive(tx: Tx, linkId: string): Promise<void> {
    sqliteTx(tx);
    this.#stmt.deleteLive.run(linkId);
  }

  /** Deletes codes that expired before `before`; resolves to how many. */
  async deleteExpired(tx: Tx, before: number): Promise<number> {
    sqliteTx(tx);
    return this.#stmt.expired.run(before).changes;
  }
}
