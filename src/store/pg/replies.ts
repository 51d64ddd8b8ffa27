import type { NewReply, ReplyCounts, ReplyRow, ReplyStore } from '../replies.js';
import type { Public } from '../store.js';
import type { Tx } from '../tx.js';
import type { PgPool } from './connect.js';
import { pgTx } from './tx.js';

/**
 * `secure_replies` on PostgreSQL, the same calls and rows as
 * src/store/replies.ts. One difference: PostgreSQL has no rowid, so replies
 * of one link with the same millisecond are ordered by id, not by insertion.
 */
export class PgReplyStore implements Public<ReplyStore> {
  readonly #pool: PgPool;

  constructor(pool: PgPool) {
    this.#pool = pool;
  }

  async insert(tx: Tx, reply: NewReply): Promise<void> {
    await pgTx(tx).query('INSERT INTO secure_replies (id, message_id, link_id, created_at, blob, queue_id) VALUES ($1, $2, $3, $4, $5, $6)', [
      reply.id,
      reply.messageId,
      reply.linkId,
      reply.createdAt,
      reply.blob,
      reply.queueId,
    ]);
  }

  async ofLink(linkId: string): Promise<ReplyRow[]> {
    const { rows } = await this.#pool.query<{ id: string; created_at: number; blob: string }>(
      'SELECT id, created_at, blob FROM secure_replies WHERE link_id = $1 AND blob IS NOT NULL ORDER BY created_at, id',
      [linkId],
    );
    return rows.map(toReply);
  }

  async get(id: string, linkId: string): Promise<ReplyRow | undefined> {
    const { rows } = await this.#pool.query<{ id: string; created_at: number; blob: string }>(
      'SELECT id, created_at, blob FROM secure_replies WHERE id = $1 AND link_id = $2 AND blob IS NOT NULL',
      [id, linkId],
    );
    return rows[0] && toReply(rows[0]);
  }

  async counts(linkId: string, since: number): Promise<ReplyCounts> {
    const { rows } = await this.#pool.query<{ total: number; day: number; oldest: number | null }>(
      'SELECT COUNT(*) AS total, COUNT(*) FILTER (WHERE created_at > $2) AS day, MIN(created_at) FILTER (WHERE created_at > $2) AS oldest FROM secure_replies WHERE link_id = $1',
      [linkId, since],
    );
    const row = rows[0]!;
    return { total: row.total, recent: row.day, oldestRecent: row.oldest ?? undefined };
  }

  async perLink(messageId: string): Promise<Map<string, { count: number; last: number }>> {
    const { rows } = await this.#pool.query<{ link_id: string; n: number; last: number }>(
      'SELECT link_id, COUNT(*) AS n, MAX(created_at) AS last FROM secure_replies WHERE message_id = $1 GROUP BY link_id',
      [messageId],
    );
    return new Map(rows.map((r) => [r.link_id, { count: r.n, last: r.last }]));
  }

  async messageOf(replyId: string): Promise<string | undefined> {
    const { rows } = await this.#pool.query<{ message_id: string }>('SELECT message_id FROM secure_replies WHERE id = $1', [replyId]);
    return rows[0]?.message_id;
  }

  async dropBlobs(tx: Tx, messageId: string): Promise<number> {
    return (await pgTx(tx).query('UPDATE secure_replies SET blob = NULL WHERE message_id = $1 AND blob IS NOT NULL', [messageId])).rowCount ?? 0;
  }
}

function toReply(row: { id: string; created_at: number; blob: string }): ReplyRow {
  return { id: row.id, createdAt: row.created_at, blob: row.blob };
}
