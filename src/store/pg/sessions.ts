import type { SessionRow, SessionStore, VerifiedSession } from '../sessions.js';
import type { Public } from '../store.js';
import type { Tx } from '../tx.js';
import type { PgPool } from './connect.js';
import { reader } from './runner.js';
import { pgTx } from './tx.js';

/** `reader_sessions` on PostgreSQL, the same calls and rows as src/store/sessions.ts. */
export class PgSessionStore implements Public<SessionStore> {
  readonly #pool: PgPool;

  constructor(pool: PgPool) {
    this.#pool = pool;
  }

  async get(idHash: string, tx?: Tx): Promise<SessionRow | undefined> {
    const { rows } = await reader(this.#pool, tx).query<{ id_hash: string; link_id: string; created_at: number; verified_at: number | null; expires_at: number }>(
      'SELECT * FROM reader_sessions WHERE id_hash = $1',
      [idHash],
    );
    const row = rows[0];
    if (!row) return undefined;
    return { idHash: row.id_hash, linkId: row.link_id, createdAt: row.created_at, verifiedAt: row.verified_at ?? undefined, expiresAt: row.expires_at };
  }

  async insertVerified(tx: Tx, session: VerifiedSession, replaces: string | undefined): Promise<void> {
    const db = pgTx(tx);
    if (replaces) await db.query('DELETE FROM reader_sessions WHERE id_hash = $1 AND link_id = $2', [replaces, session.linkId]);
    await db.query('DELETE FROM reader_sessions WHERE link_id = $1 AND expires_at <= $2', [session.linkId, session.now]);
    await db.query('INSERT INTO reader_sessions (id_hash, link_id, created_at, verified_at, expires_at) VALUES ($1, $2, $3, $3, $4)', [
      session.idHash,
      session.linkId,
      session.now,
      session.expiresAt,
    ]);
  }

  async endForLink(tx: Tx, linkId: string): Promise<void> {
    await pgTx(tx).query('DELETE FROM reader_sessions WHERE link_id = $1', [linkId]);
  }

  async deleteExpired(tx: Tx, now: number): Promise<number> {
    return (await pgTx(tx).query('DELETE FROM reader_sessions WHERE expires_at <= $1', [now])).rowCount ?? 0;
  }
}
