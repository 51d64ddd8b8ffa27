import type { Db } from './db.js';
import { sqliteTx, type Tx } from './tx.js';

/**
 * The `reader_sessions` table: verified reader sessions, each bound to one
 * link, stored as SHA-256 (hex) of the cookie value only (src/secure/sessions.ts
 * makes and checks them). The only module that holds SQL for this table.
 */

export interface SessionRow {
  idHash: string;
  linkId: string;
  createdAt: number;
  verifiedAt: number | undefined;
  expiresAt: number;
}

export interface VerifiedSession {
  idHash: string;
  linkId: string;
  now: number;
  expiresAt: number;
}

export class SessionStore {
  readonly #stmt;

  constructor(db: Db) {
    this.#stmt = {
      get: db.prepare('SELECT * FROM reader_sessions WHERE id_hash = ?'),
      insertVerified: db.prepare('INSERT INTO reader_sessions (id_hash, link_id, created_at, verified_at, expires_at) VALUES (?, ?, ?, ?, ?)'),
      expiredOfLink: db.prepare('DELETE FROM reader_sessions WHERE link_id = ? AND expires_at <= ?'),
      delete: db.prepare('DELETE FROM reader_sessions WHERE id_hash = ? AND link_id = ?'),
      endForLink: db.prepare('DELETE FROM reader_sessions WHERE link_id = ?'),
      expired: db.prepare('DELETE FROM reader_sessions WHERE expires_at <= ?'),
    };
  }

  async get(idHash: string, _tx?: Tx): Promise<SessionRow | undefined> {
    const row = this.#stmt.get.get(idHash) as
      | { id_hash: string; link_id: string; created_at: number; verified_at: number | null; expires_at: number }
      | undefined;
    if (!row) return undefined;
    return { idHash: row.id_hash, linkId: row.link_id, createdAt: row.created_at, verifiedAt: row.verified_at ?? undefined, expiresAt: row.expires_at };
  }

  /** Stores a verified session: the one it `replaces` (if stored) and the link's expired sessions go. */
  async insertVerified(tx: Tx, session: VerifiedSession, replaces: string | undefined): Promise<void> {
    sqliteTx(tx);
    if (replaces) this.#stmt.delete.run(replaces, session.linkId);
    this.#stmt.expiredOfLink.run(session.linkId, session.now);
    this.#stmt.insertVerified.run(session.idHash, session.linkId, session.now, session.now, session.expiresAt);
  }

  /** Ends every session of a link (revoked, expired or replaced). */
  async endForLink(tx: Tx, linkId: string): Promise<void> {
    sqliteTx(tx);
    this.#stmt.endForLink.run(linkId);
  }

  /** Deletes sessions past their expiry; resolves to how many. */
  async deleteExpired(tx: Tx, now: number): Promise<number> {
    sqliteTx(tx);
    return this.#stmt.expired.run(now).changes;
  }
}
