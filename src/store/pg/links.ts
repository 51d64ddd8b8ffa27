import type { StorageKey } from '../../crypto/storage-key.js';
import type { LinkStore, ReplacementLink, SecureLinkInsert, SecureLinkRow } from '../links.js';
import type { Public } from '../store.js';
import type { Tx } from '../tx.js';
import type { PgPool } from './connect.js';
import { reader, type PgRunner } from './runner.js';
import { linkKsrvContext, openKsrv, sealKsrv } from './server-keys.js';
import { pgTx } from './tx.js';

/** The public face of LinkStore, which this class gives whole (faces.ts checks it). */
export type LinkRepository = Public<LinkStore>;

/**
 * `secure_links` on PostgreSQL, the same calls and rows as src/store/links.ts.
 * K_srv is sealed under the storage key when written and opened when read
 * (server-keys.ts), so rows look the same to callers as SQLite's.
 *
 * The lockout across nodes: `addFailure` is one `UPDATE … SET failures =
 * failures + 1 … RETURNING`, which takes the row lock, so attempts from any
 * number of nodes count one after another. A read of a link inside a
 * transaction (`get(id, tx)`, `ofMessage(id, tx)`) takes the row lock:
 * at READ COMMITTED a plain read could see the link unlocked while another
 * node's lock commits, and the UPDATE that follows would then count on from
 * the lock's fresh 0 (LinkService.reserveAttempt reads, then counts). With
 * the row lock taken by the read, the lock and the count take turns.
 */
/**
 * The row lock a read inside a transaction takes. NO KEY UPDATE, not
 * UPDATE: it does not block the FOR KEY SHARE lock a foreign key check
 * takes, so codes, sessions and replies of the link are inserted meanwhile.
 */
const LOCK = ' FOR NO KEY UPDATE';

export class PgLinkStore implements LinkRepository {
  readonly #pool: PgPool;
  readonly #key: StorageKey;

  constructor(pool: PgPool, storageKey: StorageKey) {
    this.#pool = pool;
    this.#key = storageKey;
  }

  /** Records the links of a new secure message (with the message, in the caller's transaction). */
  async insert(tx: Tx, messageId: string, createdAt: number, links: readonly SecureLinkInsert[]): Promise<void> {
    const db = pgTx(tx);
    for (const link of links) {
      await db.query(
        `INSERT INTO secure_links (id, message_id, recipient_idx, address, method, phone, language, wrap, k_srv, state, created_at, notification_id)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 'active', $10, $11)`,
        [
          link.id,
          messageId,
          link.recipientIdx,
          link.address,
          link.method,
          link.phone ?? null,
          link.language,
          link.wrap,
          sealKsrv(this.#key, linkKsrvContext(link.id), link.kSrv),
          createdAt,
          link.notificationId,
        ],
      );
    }
  }

  async get(id: string, tx?: Tx): Promise<SecureLinkRow | undefined> {
    const { rows } = await reader(this.#pool, tx).query<SecureLinkRow>(`SELECT * FROM secure_links WHERE id = $1${tx ? LOCK : ''}`, [id]);
    return rows[0] && this.#open(rows[0]);
  }

  /** Every link of a secure message (resent ones included), by recipient then age. */
  async ofMessage(messageId: string, tx?: Tx): Promise<SecureLinkRow[]> {
    const { rows } = await reader(this.#pool, tx).query<SecureLinkRow>(
      `SELECT * FROM secure_links WHERE message_id = $1 ORDER BY recipient_idx, created_at, id${tx ? LOCK : ''}`,
      [messageId],
    );
    return rows.map((row) => this.#open(row));
  }

  /** Counts one check attempt atomically; resolves to the attempts since the last lock or success (an unknown link: more than any limit). */
  async addFailure(tx: Tx, linkId: string): Promise<number> {
    const { rows } = await pgTx(tx).query<{ failures: number }>('UPDATE secure_links SET failures = failures + 1 WHERE id = $1 RETURNING failures', [linkId]);
    return rows[0]?.failures ?? Number.MAX_SAFE_INTEGER;
  }

  async lock(tx: Tx, linkId: string, until: number): Promise<void> {
    await pgTx(tx).query('UPDATE secure_links SET failures = 0, locked_until = $1 WHERE id = $2', [until, linkId]);
  }

  async opened(tx: Tx, linkId: string, now: number): Promise<void> {
    await pgTx(tx).query('UPDATE secure_links SET failures = 0, first_opened_at = COALESCE(first_opened_at, $1), last_opened_at = $1 WHERE id = $2', [now, linkId]);
  }

  async touch(tx: Tx, linkId: string, now: number): Promise<void> {
    await pgTx(tx).query('UPDATE secure_links SET last_opened_at = $1 WHERE id = $2', [now, linkId]);
  }

  /** A resent link (see LinkStore.replace); false when the old link is not an active link of that message. */
  async replace(tx: Tx, link: ReplacementLink): Promise<boolean> {
    const db = pgTx(tx);
    // the old link's row lock first: a second node resending the same link waits, then finds it replaced
    const old = await db.query(`SELECT 1 FROM secure_links WHERE id = $1 AND message_id = $2 AND state = 'active'${LOCK}`, [link.oldLinkId, link.messageId]);
    if (old.rowCount !== 1) return false;
    const inserted = await db.query(
      `INSERT INTO secure_links (id, message_id, recipient_idx, address, method, phone, language, wrap, k_srv, state, created_at, notification_id)
       SELECT $1, message_id, recipient_idx, address, method, phone, language, $2, $3, 'active', $4, $5
       FROM secure_links WHERE id = $6 AND message_id = $7 AND state = 'active'`,
      [link.id, link.wrap, sealKsrv(this.#key, linkKsrvContext(link.id), link.kSrv), link.createdAt, link.notificationId, link.oldLinkId, link.messageId],
    );
    if (inserted.rowCount !== 1) return false;
    await db.query(`UPDATE secure_links SET state = 'replaced', replaced_by = $1, wrap = NULL, k_srv = NULL WHERE id = $2 AND message_id = $3 AND state = 'active'`, [
      link.id,
      link.oldLinkId,
      link.messageId,
    ]);
    return true;
  }

  async openedBefore(messageId: string, recipientIdx: number, linkId: string): Promise<boolean> {
    const { rows } = await this.#pool.query<{ n: number }>(
      'SELECT COUNT(*) AS n FROM secure_links WHERE message_id = $1 AND recipient_idx = $2 AND id <> $3 AND first_opened_at IS NOT NULL',
      [messageId, recipientIdx, linkId],
    );
    return rows[0]!.n > 0;
  }

  async shred(tx: Tx, linkId: string, state: 'revoked' | 'expired'): Promise<boolean> {
    const result = await pgTx(tx).query(`UPDATE secure_links SET wrap = NULL, k_srv = NULL, state = $1, revoke_at = NULL WHERE id = $2 AND state = 'active'`, [state, linkId]);
    return (result.rowCount ?? 0) > 0;
  }

  /**
   * Active links of a message that still hold both a wrap and K_srv. Inside
   * a transaction it first takes the message's row lock: two nodes revoking
   * a message's last two links at once would otherwise each count the
   * other's link (not yet committed) as left, and neither would purge the
   * message. With the lock the second counts after the first's commit.
   * Lock order: links (read or shredded before), then the message.
   */
  async wrapsLeft(messageId: string, tx?: Tx): Promise<number> {
    const db = reader(this.#pool, tx);
    if (tx) await db.query(`SELECT 1 FROM secure_messages WHERE id = $1${LOCK}`, [messageId]);
    return this.#count(db, `SELECT COUNT(*) AS n FROM secure_links WHERE message_id = $1 AND state = 'active' AND wrap IS NOT NULL AND k_srv IS NOT NULL`, messageId);
  }

  /** Whether an active link of the message still holds a wrap (inside a transaction: after the message's row lock, as wrapsLeft). */
  async hasWrap(messageId: string, tx?: Tx): Promise<boolean> {
    const db = reader(this.#pool, tx);
    if (tx) await db.query(`SELECT 1 FROM secure_messages WHERE id = $1${LOCK}`, [messageId]);
    return (await this.#count(db, `SELECT COUNT(*) AS n FROM secure_links WHERE message_id = $1 AND state = 'active' AND wrap IS NOT NULL`, messageId)) > 0;
  }

  async shredAll(tx: Tx, messageId: string): Promise<void> {
    await pgTx(tx).query('UPDATE secure_links SET wrap = NULL, k_srv = NULL, revoke_at = NULL WHERE message_id = $1', [messageId]);
  }

  async scheduleRevoke(tx: Tx, linkId: string, at: number | null): Promise<boolean> {
    const result = await pgTx(tx).query(`UPDATE secure_links SET revoke_at = $1 WHERE id = $2 AND state = 'active'`, [at, linkId]);
    return (result.rowCount ?? 0) > 0;
  }

  async dueRevocations(now: number, limit: number): Promise<string[]> {
    const { rows } = await this.#pool.query<{ id: string }>(
      `SELECT id FROM secure_links WHERE revoke_at IS NOT NULL AND revoke_at <= $1 AND state = 'active' ORDER BY revoke_at, id LIMIT $2`,
      [now, limit],
    );
    return rows.map((r) => r.id);
  }

  async #count(db: PgRunner, sql: string, messageId: string): Promise<number> {
    const { rows } = await db.query<{ n: number }>(sql, [messageId]);
    return rows[0]!.n;
  }

  #open(row: SecureLinkRow): SecureLinkRow {
    return { ...row, k_srv: openKsrv(this.#key, linkKsrvContext(row.id), row.k_srv) };
  }
}
