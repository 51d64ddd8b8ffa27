import type { Db } from '../store/db.js';
import type { SecureLinkRow } from '../store/secure.js';
import type { Method, Language } from './api.js';

/**
 * Data access for the reader: secure_links (with the state of their
 * secure_messages), reader_sessions and one_time_codes. Every statement is
 * synchronous (better-sqlite3), so each method is atomic with respect to the
 * other requests of this process; counters and limits live in SQLite and
 * survive restarts.
 */

/** One row of secure_links joined with its secure_messages state, expiry and sender. */
export interface LinkRow {
  id: string;
  /** secure_messages.id: part of the HKDF info. */
  secureId: string;
  /** secure_messages.queue_id: the message id events are recorded under. */
  queueId: string;
  recipientIdx: number;
  address: string;
  method: Method;
  phone: string | undefined;
  language: Language;
  wrap: Buffer | undefined;
  kSrv: Buffer | undefined;
  /** active | revoked | expired | replaced */
  state: string;
  createdAt: number;
  firstOpenedAt: number | undefined;
  lastOpenedAt: number | undefined;
  failures: number;
  lockedUntil: number | undefined;
  /** secure_messages.state: active | revoked | expired | purged */
  messageState: string;
  messageExpiresAt: number;
  /** Envelope sender of the secure message. */
  sender: string;
  bodyBlob: string | undefined;
  /** Every ciphertext blob id of the message (secure_messages.blobs). */
  blobIds: string[];
}

export interface SessionRow {
  idHash: string;
  linkId: string;
  createdAt: number;
  verifiedAt: number | undefined;
  expiresAt: number;
}

export interface CodeRow {
  id: number;
  codeHash: string;
  expiresAt: number;
}

/** A secure_links row joined with the state of its secure message. */
interface RawLink extends SecureLinkRow {
  queue_id: string;
  created_at: number;
  first_opened_at: number | null;
  last_opened_at: number | null;
  failures: number;
  locked_until: number | null;
  message_state: string;
  message_expires_at: number;
  sender: string;
  body_blob: string | null;
  blobs: string;
}

const METHODS: readonly Method[] = ['none', 'access-code', 'email-code', 'sms-code'];

function blobIds(json: string): string[] {
  try {
    const parsed: unknown = JSON.parse(json);
    if (!Array.isArray(parsed)) return [];
    return parsed.flatMap((entry: unknown) => {
      const id = entry && typeof entry === 'object' ? (entry as { id?: unknown }).id : undefined;
      return typeof id === 'string' ? [id] : [];
    });
  } catch {
    return [];
  }
}

function toLink(row: RawLink): LinkRow {
  return {
    id: row.id,
    secureId: row.message_id,
    queueId: row.queue_id,
    recipientIdx: row.recipient_idx,
    address: row.address,
    // an unknown method in the table fails closed: the strictest check we have
    method: (METHODS as readonly string[]).includes(row.method) ? (row.method as Method) : 'email-code',
    phone: row.phone ?? undefined,
    language: row.language === 'en' ? 'en' : 'nl',
    wrap: row.wrap ?? undefined,
    kSrv: row.k_srv ?? undefined,
    state: row.state,
    createdAt: row.created_at,
    firstOpenedAt: row.first_opened_at ?? undefined,
    lastOpenedAt: row.last_opened_at ?? undefined,
    failures: row.failures,
    lockedUntil: row.locked_until ?? undefined,
    messageState: row.message_state,
    messageExpiresAt: row.message_expires_at,
    sender: row.sender,
    bodyBlob: row.body_blob ?? undefined,
    blobIds: blobIds(row.blobs),
  };
}

export class LinkStore {
  readonly #db: Db;
  readonly #stmt;

  constructor(db: Db) {
    this.#db = db;
    this.#stmt = {
      link: db.prepare(
        `SELECT l.*, m.queue_id, m.state AS message_state, m.expires_at AS message_expires_at, m.sender, m.body_blob, m.blobs
         FROM secure_links l JOIN secure_messages m ON m.id = l.message_id WHERE l.id = ?`,
      ),
      session: db.prepare('SELECT * FROM reader_sessions WHERE id_hash = ?'),
      insertVerifiedSession: db.prepare('INSERT INTO reader_sessions (id_hash, link_id, created_at, verified_at, expires_at) VALUES (?, ?, ?, ?, ?)'),
      purgeSessions: db.prepare('DELETE FROM reader_sessions WHERE link_id = ? AND expires_at <= ?'),
      deleteSession: db.prepare('DELETE FROM reader_sessions WHERE id_hash = ? AND link_id = ?'),
      addFailure: db.prepare('UPDATE secure_links SET failures = failures + 1 WHERE id = ? RETURNING failures'),
      lock: db.prepare('UPDATE secure_links SET failures = 0, locked_until = ? WHERE id = ?'),
      opened: db.prepare(
        'UPDATE secure_links SET failures = 0, first_opened_at = COALESCE(first_opened_at, ?), last_opened_at = ? WHERE id = ?',
      ),
      touch: db.prepare('UPDATE secure_links SET last_opened_at = ? WHERE id = ?'),
      voidLive: db.prepare(`UPDATE one_time_codes SET state = 'void' WHERE link_id = ? AND state = 'live'`),
      insertCode: db.prepare(
        `INSERT INTO one_time_codes (link_id, session_hash, channel, code_hash, created_at, expires_at, state)
         VALUES (?, ?, ?, ?, ?, ?, 'live')`,
      ),
      codesSince: db.prepare('SELECT created_at FROM one_time_codes WHERE link_id = ? AND created_at > ? ORDER BY created_at'),
      liveCodes: db.prepare(
        `SELECT id, code_hash, expires_at FROM one_time_codes
         WHERE link_id = ? AND session_hash = ? AND state = 'live' AND expires_at > ?`,
      ),
      useCode: db.prepare(`UPDATE one_time_codes SET state = 'used' WHERE id = ? AND state = 'live'`),
      voidCode: db.prepare(`UPDATE one_time_codes SET state = 'void' WHERE id = ? AND state = 'live'`),
      lastForgot: db.prepare(
        `SELECT MAX(at) AS at FROM events WHERE message_id = ? AND type = 'forgot-code' AND json_extract(detail, '$.linkId') = ?`,
      ),
    };
  }

  link(id: string): LinkRow | undefined {
    const row = this.#stmt.link.get(id) as RawLink | undefined;
    return row ? toLink(row) : undefined;
  }

  session(idHash: string): SessionRow | undefined {
    const row = this.#stmt.session.get(idHash) as
      | { id_hash: string; link_id: string; created_at: number; verified_at: number | null; expires_at: number }
      | undefined;
    if (!row) return undefined;
    return { idHash: row.id_hash, linkId: row.link_id, createdAt: row.created_at, verifiedAt: row.verified_at ?? undefined, expiresAt: row.expires_at };
  }


  /**
   * Counts one attempt against the link before it is checked, so that
   * concurrent attempts can never test more than maxAttempts codes between
   * locks. Resolves to the number of attempts counted so far.
   */
  reserveAttempt(linkId: string): number {
    const row = this.#stmt.addFailure.get(linkId) as { failures: number } | undefined;
    return row?.failures ?? Number.MAX_SAFE_INTEGER;
  }

  /** Locks a link: failures reset, every live one-time code of the link void. */
  lock(linkId: string, until: number): void {
    this.#db.transaction(() => {
      this.#stmt.lock.run(until, linkId);
      this.#stmt.voidLive.run(linkId);
    })();
  }

  /**
   * A passed check, in one transaction: the new (rotated) session id is
   * stored as verified, the session it replaces and the link's expired
   * sessions go, failures reset, open times set.
   */
  storeVerifiedSession(s: { idHash: string; linkId: string; now: number; expiresAt: number; replaces: string | undefined }): void {
    this.#db.transaction(() => {
      if (s.replaces) this.#stmt.deleteSession.run(s.replaces, s.linkId);
      this.#stmt.purgeSessions.run(s.linkId, s.now);
      this.#stmt.insertVerifiedSession.run(s.idHash, s.linkId, s.now, s.now, s.expiresAt);
      this.#stmt.opened.run(s.now, s.now, s.linkId);
    })();
  }

  touch(linkId: string, now: number): void {
    this.#stmt.touch.run(now, linkId);
  }

  /** Creation times of the link's codes newer than `since`, oldest first (rate limits). */
  codesSince(linkId: string, since: number): number[] {
    return (this.#stmt.codesSince.all(linkId, since) as Array<{ created_at: number }>).map((r) => r.created_at);
  }

  /**
   * Stores a new one-time code after `allowed` (run inside the same
   * transaction) agreed; every earlier live code of the link becomes void.
   * Returns the new row id, or the refusal `allowed` returned.
   */
  insertCode<R>(
    code: { linkId: string; sessionHash: string; channel: 'email' | 'sms'; codeHash: string; createdAt: number; expiresAt: number },
    allowed: () => R | undefined,
  ): { id: number } | { refused: R } {
    return this.#db.transaction(() => {
      const refused = allowed();
      if (refused !== undefined) return { refused };
      this.#stmt.voidLive.run(code.linkId);
      const info = this.#stmt.insertCode.run(code.linkId, code.sessionHash, code.channel, code.codeHash, code.createdAt, code.expiresAt);
      return { id: Number(info.lastInsertRowid) };
    })();
  }

  liveCodes(linkId: string, sessionHash: string, now: number): CodeRow[] {
    return (this.#stmt.liveCodes.all(linkId, sessionHash, now) as Array<{ id: number; code_hash: string; expires_at: number }>).map((r) => ({
      id: r.id,
      codeHash: r.code_hash,
      expiresAt: r.expires_at,
    }));
  }

  /** Marks a live code used; false when another request used or voided it first. */
  useCode(id: number): boolean {
    return this.#stmt.useCode.run(id).changes === 1;
  }

  voidCode(id: number): void {
    this.#stmt.voidCode.run(id);
  }

  /** Time of the last forgot-code event of a link (the event table is the record), or undefined. */
  lastForgot(queueId: string, linkId: string): number | undefined {
    const row = this.#stmt.lastForgot.get(queueId, linkId) as { at: number | null } | undefined;
    return row?.at ?? undefined;
  }
}
