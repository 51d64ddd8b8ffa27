import type { StorageKey } from '../../crypto/storage-key.js';
import type { SecureLinkInsert, SecureLinkRow } from '../links.js';
import type { SecureMessageInsert, SecureMessageRow, SecureStore, StatusLinkSecrets } from '../secure.js';
import type { Public } from '../store.js';
import type { Tx } from '../tx.js';
import type { PgPool } from './connect.js';
import { PgLinkStore } from './links.js';
import { reader } from './runner.js';
import { openKsrv, sealKsrv, statusKsrvContext } from './server-keys.js';
import { pgTx } from './tx.js';

/** The public face of SecureStore, which this class gives whole (every call of both drivers is async; faces.ts checks it). */
export type SecureMessageRepository = Public<SecureStore>;

/**
 * `secure_messages` on PostgreSQL, the same calls and rows as
 * src/store/secure.ts. The sender's K_srv_s is sealed under the storage key
 * (`ksrv-status:<secure id>`, server-keys.ts) and opened when read.
 */
export class PgSecureStore implements SecureMessageRepository {
  readonly #pool: PgPool;
  readonly #key: StorageKey;
  readonly #links: PgLinkStore;

  constructor(pool: PgPool, storageKey: StorageKey, links: PgLinkStore = new PgLinkStore(pool, storageKey)) {
    this.#pool = pool;
    this.#key = storageKey;
    this.#links = links;
  }

  /** Records a secure message and its links, in the caller's transaction. */
  async insert(tx: Tx, message: SecureMessageInsert, links: readonly SecureLinkInsert[]): Promise<void> {
    await pgTx(tx).query(
      `INSERT INTO secure_messages (id, queue_id, sender, created_at, expires_at, state, body_blob, blobs, origin_message_id, thread_id)
       VALUES ($1, $2, $3, $4, $5, 'active', $6, $7, $8, $9)`,
      [message.id, message.queueId, message.sender, message.createdAt, message.expiresAt, message.bodyBlob, JSON.stringify(message.blobs), message.originMessageId ?? null, message.threadId],
    );
    await this.#links.insert(tx, message.id, message.createdAt, links);
  }

  async setStatus(tx: Tx, secureId: string, status: StatusLinkSecrets): Promise<void> {
    await pgTx(tx).query('UPDATE secure_messages SET status_id = $1, status_token_hash = $2, sender_wrap = $3, sender_k_srv = $4 WHERE id = $5', [
      status.statusId,
      status.tokenHash,
      status.wrap,
      sealKsrv(this.#key, statusKsrvContext(secureId), status.kSrv),
      secureId,
    ]);
  }

  async get(id: string, tx?: Tx): Promise<SecureMessageRow | undefined> {
    return this.#one(reader(this.#pool, tx).query<SecureMessageRow>('SELECT * FROM secure_messages WHERE id = $1', [id]));
  }

  async byQueueId(queueId: string): Promise<SecureMessageRow | undefined> {
    return this.#one(this.#pool.query<SecureMessageRow>('SELECT * FROM secure_messages WHERE queue_id = $1', [queueId]));
  }

  async byStatusId(statusId: string): Promise<SecureMessageRow | undefined> {
    return this.#one(this.#pool.query<SecureMessageRow>('SELECT * FROM secure_messages WHERE status_id = $1', [statusId]));
  }

  links(secureId: string): Promise<SecureLinkRow[]> {
    return this.#links.ofMessage(secureId);
  }

  async idsWithBlobs(): Promise<Set<string>> {
    return new Set(await this.#ids('SELECT id FROM secure_messages WHERE body_blob IS NOT NULL', []));
  }

  async threadOfOrigin(messageId: string): Promise<string | undefined> {
    const { rows } = await this.#pool.query<{ thread_id: string | null; id: string }>(
      'SELECT thread_id, id FROM secure_messages WHERE origin_message_id = $1 ORDER BY created_at, id LIMIT 1',
      [messageId],
    );
    const row = rows[0];
    return row ? (row.thread_id ?? row.id) : undefined;
  }

  async purge(tx: Tx, secureId: string, state: string, now: number): Promise<void> {
    await pgTx(tx).query(
      `UPDATE secure_messages SET state = $1, body_blob = NULL, purged_at = $2, sender_wrap = NULL, sender_k_srv = NULL, revoke_at = NULL
       WHERE id = $3 AND purged_at IS NULL`,
      [state, now, secureId],
    );
  }

  async setState(tx: Tx, secureId: string, state: 'revoked' | 'expired'): Promise<void> {
    await pgTx(tx).query(`UPDATE secure_messages SET state = $1 WHERE id = $2 AND state = 'active'`, [state, secureId]);
  }

  async scheduleRevoke(tx: Tx, secureId: string, at: number | null): Promise<boolean> {
    const result = await pgTx(tx).query('UPDATE secure_messages SET revoke_at = $1 WHERE id = $2 AND purged_at IS NULL', [at, secureId]);
    return (result.rowCount ?? 0) > 0;
  }

  dueExpiry(now: number, limit: number): Promise<string[]> {
    return this.#ids(`SELECT id FROM secure_messages WHERE state = 'active' AND expires_at <= $1 ORDER BY expires_at, id LIMIT $2`, [now, limit]);
  }

  dueRevocations(now: number, limit: number): Promise<string[]> {
    return this.#ids('SELECT id FROM secure_messages WHERE revoke_at IS NOT NULL AND revoke_at <= $1 AND purged_at IS NULL ORDER BY revoke_at, id LIMIT $2', [now, limit]);
  }

  unpurgedInactive(): Promise<string[]> {
    return this.#ids(`SELECT id FROM secure_messages WHERE purged_at IS NULL AND state <> 'active'`, []);
  }

  /** Secure messages created at or after `since`, newest first; with `sender` only that envelope sender (case-insensitive). */
  async list(filter: { sender?: string | undefined; since: number }): Promise<SecureMessageRow[]> {
    const sender = filter.sender?.trim().toLowerCase() ?? null;
    const { rows } = await this.#pool.query<SecureMessageRow>(
      'SELECT * FROM secure_messages WHERE ($1::text IS NULL OR lower(sender) = $1) AND created_at >= $2 ORDER BY created_at DESC, id',
      [sender, filter.since],
    );
    return rows.map((row) => this.#open(row));
  }

  async #one(query: Promise<{ rows: SecureMessageRow[] }>): Promise<SecureMessageRow | undefined> {
    const row = (await query).rows[0];
    return row && this.#open(row);
  }

  async #ids(sql: string, params: unknown[]): Promise<string[]> {
    return (await this.#pool.query<{ id: string }>(sql, params)).rows.map((r) => r.id);
  }

  #open(row: SecureMessageRow): SecureMessageRow {
    return { ...row, sender_k_srv: openKsrv(this.#key, statusKsrvContext(row.id), row.sender_k_srv) };
  }
}
