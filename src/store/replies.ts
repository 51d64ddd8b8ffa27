import type { Db } from './db.js';
import { sqliteTx, type Tx } from './tx.js';

/**
 * The `secure_replies` table: a recipient's replies from the reader, per
 * link, with the blob id of the recipient's own copy (encrypted in the
 * browser; NULL once purged) and the queue id of the mail to the sender. No
 * content. The only module that holds SQL for this table.
 */

export interface ReplyRow {
  id: string;
  createdAt: number;
  blob: string;
}

export interface NewReply {
  id: string;
  messageId: string;
  linkId: string;
  createdAt: number;
  blob: string;
  queueId: string;
}

export interface ReplyCounts {
  /** Every reply of the link, also one whose copy was purged since. */
  total: number;
  /** Replies after `since`. */
  recent: number;
  /** The oldest of those, if any. */
  oldestRecent: number | undefined;
}

export class ReplyStore {
  readonly #stmt;

  constructor(db: Db) {
    this.#stmt = {
      insert: db.prepare('INSERT INTO secure_replies (id, message_id, link_id, created_at, blob, queue_id) VALUES (?, ?, ?, ?, ?, ?)'),
      ofLink: db.prepare('SELECT id, created_at, blob FROM secure_replies WHERE link_id = ? AND blob IS NOT NULL ORDER BY created_at, rowid'),
      one: db.prepare('SELECT id, created_at, blob FROM secure_replies WHERE id = ? AND link_id = ? AND blob IS NOT NULL'),
      counts: db.prepare(
        'SELECT COUNT(*) AS total, COUNT(CASE WHEN created_at > ? THEN 1 END) AS day, MIN(CASE WHEN created_at > ? THEN created_at END) AS oldest FROM secure_replies WHERE link_id = ?',
      ),
      perLink: db.prepare('SELECT link_id, COUNT(*) AS n, MAX(created_at) AS last FROM secure_replies WHERE message_id = ? GROUP BY link_id'),
      messageOf: db.prepare('SELECT message_id FROM secure_replies WHERE id = ?'),
      dropBlobs: db.prepare('UPDATE secure_replies SET blob = NULL WHERE message_id = ? AND blob IS NOT NULL'),
    };
  }

  async insert(tx: Tx, reply: NewReply): Promise<void> {
    sqliteTx(tx);
    this.#stmt.insert.run(reply.id, reply.messageId, reply.linkId, reply.createdAt, reply.blob, reply.queueId);
  }

  /** The link's replies that still have their copy, oldest first. */
  async ofLink(linkId: string): Promise<ReplyRow[]> {
    return (this.#stmt.ofLink.all(linkId) as Array<{ id: string; created_at: number; blob: string }>).map(toReply);
  }

  /** One reply of a link, while its copy exists. */
  async get(id: string, linkId: string): Promise<ReplyRow | undefined> {
    const row = this.#stmt.one.get(id, linkId) as { id: string; created_at: number; blob: string } | undefined;
    return row ? toReply(row) : undefined;
  }

  /** How many replies a link sent, in all and after `since` (reader.replyLimit). */
  async counts(linkId: string, since: number): Promise<ReplyCounts> {
    const row = this.#stmt.counts.get(since, since, linkId) as { total: number; day: number; oldest: number | null };
    return { total: row.total, recent: row.day, oldestRecent: row.oldest ?? undefined };
  }

  /** Replies per link id of a secure message: how many, and the last one's time. */
  async perLink(messageId: string): Promise<Map<string, { count: number; last: number }>> {
    const rows = this.#stmt.perLink.all(messageId) as Array<{ link_id: string; n: number; last: number }>;
    return new Map(rows.map((r) => [r.link_id, { count: r.n, last: r.last }]));
  }

  /** The secure message a reply answered, or undefined. */
  async messageOf(replyId: string): Promise<string | undefined> {
    return (this.#stmt.messageOf.get(replyId) as { message_id: string } | undefined)?.message_id;
  }

  /** Forgets the copies' blob ids of a purged message; resolves to how many replies had one. */
  async dropBlobs(tx: Tx, messageId: string): Promise<number> {
    sqliteTx(tx);
    return this.#stmt.dropBlobs.run(messageId).changes;
  }
}

function toReply(row: { id: string; created_at: number; blob: string }): ReplyRow {
  return { id: row.id, createdAt: row.created_at, blob: row.blob };
}
