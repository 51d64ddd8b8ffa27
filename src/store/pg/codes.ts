import type { CodeRow, CodeStore, NewCode } from '../codes.js';
import type { Public } from '../store.js';
import type { Tx } from '../tx.js';
import type { PgPool } from './connect.js';
import { reader } from './runner.js';
import { pgTx } from './tx.js';

/**
 * `one_time_codes` on PostgreSQL, the same calls and rows as src/store/codes.ts.
 * `use` is `UPDATE … WHERE state = 'live'`: of two nodes using one code at
 * once, the second waits for the first's row lock, finds the code used, and
 * gets false. `createdSince` in a transaction locks the link (see there).
 */
export class PgCodeStore implements Public<CodeStore> {
  readonly #pool: PgPool;

  constructor(pool: PgPool) {
    this.#pool = pool;
  }

  async insert(tx: Tx, code: NewCode): Promise<number> {
    const { rows } = await pgTx(tx).query<{ id: number }>(
      `INSERT INTO one_time_codes (link_id, session_hash, channel, code_hash, created_at, expires_at, state)
       VALUES ($1, $2, $3, $4, $5, $6, 'live') RETURNING id`,
      [code.linkId, code.sessionHash, code.channel, code.codeHash, code.createdAt, code.expiresAt],
    );
    return rows[0]!.id;
  }

  async voidLive(tx: Tx, linkId: string): Promise<void> {
    await pgTx(tx).query(`UPDATE one_time_codes SET state = 'void' WHERE link_id = $1 AND state = 'live'`, [linkId]);
  }

  /**
   * Creation times of the link's codes newer than `since`, oldest first.
   * Inside a transaction it first takes the link's row lock: the rate limit
   * reads this, then inserts a code (LinkService.insertCode), and two nodes
   * reading at once would each allow one code more than the limit.
   */
  async createdSince(linkId: string, since: number, tx?: Tx): Promise<number[]> {
    if (tx) await pgTx(tx).query('SELECT 1 FROM secure_links WHERE id = $1 FOR NO KEY UPDATE', [linkId]);
    const { rows } = await reader(this.#pool, tx).query<{ created_at: number }>(
      'SELECT created_at FROM one_time_codes WHERE link_id = $1 AND created_at > $2 ORDER BY created_at',
      [linkId, since],
    );
    return rows.map((r) => r.created_at);
  }

  async live(linkId: string, sessionHash: string, now: number): Promise<CodeRow[]> {
    const { rows } = await this.#pool.query<{ id: number; code_hash: string; expires_at: number }>(
      `SELECT id, code_hash, expires_at FROM one_time_codes WHERE link_id = $1 AND session_hash = $2 AND state = 'live' AND expires_at > $3 ORDER BY id`,
      [linkId, sessionHash, now],
    );
    return rows.map((r) => ({ id: r.id, codeHash: r.code_hash, expiresAt: r.expires_at }));
  }

  async use(tx: Tx, id: number): Promise<boolean> {
    return (await pgTx(tx).query(`UPDATE one_time_codes SET state = 'used' WHERE id = $1 AND state = 'live'`, [id])).rowCount === 1;
  }

  async void(tx: Tx, id: number): Promise<void> {
    await pgTx(tx).query(`UPDATE one_time_codes SET state = 'void' WHERE id = $1 AND state = 'live'`, [id]);
  }

  async deleteLive(tx: Tx, linkId: string): Promise<void> {
    await pgTx(tx).query(`DELETE FROM one_time_codes WHERE link_id = $1 AND state = 'live'`, [linkId]);
  }

  async deleteExpired(tx: Tx, before: number): Promise<number> {
    return (await pgTx(tx).query('DELETE FROM one_time_codes WHERE expires_at <= $1', [before])).rowCount ?? 0;
  }
}
