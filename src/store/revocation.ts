import type { Clock } from '../clock.js';
import { ZegelError } from '../errors.js';
import type { Logger } from '../log.js';
import type { BlobStore } from './blobs.js';
import type { Db } from './db.js';
import { canonicalJson, type EventType } from './messages.js';
import { shredderFor, type WalShredder } from './shred.js';

/**
 * Revocation, expiry and purge of secure messages (DESIGN "Key schedule":
 * revocation is crypto-shredding).
 *
 * Revoking a link deletes what opens the message for that recipient (its wrap
 * W_r and K_srv_r) and ends its reader sessions and live one-time codes. Once
 * no link of a message keeps a wrap, the message is purged: its ciphertext
 * blobs (body, attachments, reply copies), the sender's status keys and the
 * reply blob ids go, and only the metadata the audit trail needs stays.
 *
 * Every change is one SQLite transaction (synchronous, so atomic with respect
 * to the reader and the queue on the same connection, and safe against another
 * process such as the admin CLI). Blob files are removed after the commit; a
 * crash in between is repaired by the next `purgeDue` (it removes the blob
 * directory of every purged message that still has one), and start-up
 * recovery removes blob directories of ids it does not know.
 *
 * Shredding is byte-level: the connection runs with secure_delete (openDb), so
 * the cells that held a wrap and K_srv are overwritten with zeros, and after
 * each revoking, expiring or purging change the WAL is checkpointed and
 * truncated (WalShredder), so no old page image keeps them in the `-wal` or
 * the database file. A busy reader delays that checkpoint, never skips it:
 * the shredder retries, and every purge run checkpoints again.
 *
 * Events carry the queue id, the recipient address, the link id and the
 * actor; never keys, codes or content.
 */

/** Who revoked: the sender (status page), an operator (CLI) or the clock (expiry, scheduled revocation). */
export type RevokeActor = 'sender' | 'admin' | 'expiry';

export interface RevokedLink {
  linkId: string;
  address: string;
}

export interface RevokeResult {
  secureId: string;
  queueId: string;
  /** Links that changed in this call (already revoked or expired links are not listed again). */
  revoked: RevokedLink[];
  /** secure_messages.state after the call: active | revoked | expired. */
  state: string;
  /** The ciphertext is gone (now or earlier): no link keeps a wrap. */
  purged: boolean;
}

export interface PurgeReport {
  expired: number;
  revoked: number;
  purged: number;
  /** Blob directories of purged messages removed again (a crash after a commit). */
  repaired: number;
  sessions: number;
  codes: number;
}

interface MessageRow {
  id: string;
  queue_id: string;
  state: string;
  expires_at: number;
  purged_at: number | null;
  blobs: string;
}

interface LinkRow {
  id: string;
  message_id: string;
  address: string;
  state: string;
}

/** One-time code rows are kept this long after they expire: the reader's rate limits count them (CODE_WINDOW_MS is one hour). */
const CODE_KEEP_MS = 24 * 3600e3;

export class Revocations {
  readonly #db: Db;
  readonly #clock: Clock;
  readonly #blobs: BlobStore;
  readonly #log: Logger | undefined;
  readonly #shredder: WalShredder;
  readonly #stmt;

  constructor(deps: { db: Db; clock: Clock; blobs: BlobStore; log?: Logger | undefined; shredder?: WalShredder | undefined }) {
    this.#db = deps.db;
    this.#clock = deps.clock;
    this.#blobs = deps.blobs;
    this.#log = deps.log;
    this.#shredder = deps.shredder ?? shredderFor(deps.db, deps.log);
    const db = deps.db;
    this.#stmt = {
      message: db.prepare('SELECT id, queue_id, state, expires_at, purged_at, blobs FROM secure_messages WHERE id = ?'),
      link: db.prepare('SELECT id, message_id, address, state FROM secure_links WHERE id = ?'),
      links: db.prepare('SELECT id, message_id, address, state FROM secure_links WHERE message_id = ? ORDER BY recipient_idx, created_at'),
      shred: db.prepare(`UPDATE secure_links SET wrap = NULL, k_srv = NULL, state = ?, revoke_at = NULL WHERE id = ? AND state = 'active'`),
      endSessions: db.prepare('DELETE FROM reader_sessions WHERE link_id = ?'),
      endCodes: db.prepare(`DELETE FROM one_time_codes WHERE link_id = ? AND state = 'live'`),
      wrapsLeft: db.prepare(`SELECT COUNT(*) AS n FROM secure_links WHERE message_id = ? AND state = 'active' AND wrap IS NOT NULL AND k_srv IS NOT NULL`),
      shredAll: db.prepare('UPDATE secure_links SET wrap = NULL, k_srv = NULL, revoke_at = NULL WHERE message_id = ?'),
      replies: db.prepare('UPDATE secure_replies SET blob = NULL WHERE message_id = ? AND blob IS NOT NULL'),
      purge: db.prepare(
        `UPDATE secure_messages SET state = ?, body_blob = NULL, purged_at = ?, sender_wrap = NULL, sender_k_srv = NULL, revoke_at = NULL
         WHERE id = ? AND purged_at IS NULL`,
      ),
      setState: db.prepare(`UPDATE secure_messages SET state = ? WHERE id = ? AND state = 'active'`),
      scheduleLink: db.prepare(`UPDATE secure_links SET revoke_at = ? WHERE id = ? AND state = 'active'`),
      scheduleMessage: db.prepare('UPDATE secure_messages SET revoke_at = ? WHERE id = ? AND purged_at IS NULL'),
      dueExpiry: db.prepare(`SELECT id FROM secure_messages WHERE state = 'active' AND expires_at <= ? ORDER BY expires_at LIMIT ?`),
      dueMessages: db.prepare('SELECT id FROM secure_messages WHERE revoke_at IS NOT NULL AND revoke_at <= ? AND purged_at IS NULL LIMIT ?'),
      dueLinks: db.prepare(`SELECT id FROM secure_links WHERE revoke_at IS NOT NULL AND revoke_at <= ? AND state = 'active' LIMIT ?`),
      // a message that lost its last wrap some other way (e.g. a replaced link) but was never purged
      orphaned: db.prepare(
        `SELECT m.id FROM secure_messages m WHERE m.purged_at IS NULL AND m.state <> 'active'
         AND NOT EXISTS (SELECT 1 FROM secure_links l WHERE l.message_id = m.id AND l.state = 'active' AND l.wrap IS NOT NULL) LIMIT ?`,
      ),
      oldSessions: db.prepare('DELETE FROM reader_sessions WHERE expires_at <= ?'),
      oldCodes: db.prepare('DELETE FROM one_time_codes WHERE expires_at <= ?'),
      scheduledBy: db.prepare(
        `SELECT detail FROM events WHERE message_id = ? AND type = 'revoke-scheduled' ORDER BY seq DESC LIMIT 1`,
      ),
      event: db.prepare('INSERT INTO events (at, message_id, recipient, type, detail) VALUES (?, ?, ?, ?, ?)'),
    };
  }

  /** Revokes one recipient's link now. Idempotent: an already revoked link changes nothing. */
  async revokeLink(linkId: string, actor: RevokeActor): Promise<RevokeResult> {
    const result = this.#db.transaction(() => {
      const link = this.#stmt.link.get(linkId) as LinkRow | undefined;
      if (!link) throw new ZegelError('ZEGEL_LINK_NOT_FOUND', `no link ${linkId}`);
      return this.#revokeSync(this.#message(link.message_id), [link], actor);
    })();
    await this.#finish(result);
    return result;
  }

  /**
   * Revokes every link of a secure message now, or with `recipient` only the
   * links of that address (case-insensitive). The ciphertext goes once no link
   * keeps a wrap.
   */
  async revokeMessage(secureId: string, actor: RevokeActor, options: { recipient?: string | undefined } = {}): Promise<RevokeResult> {
    const result = this.#db.transaction(() => {
      const message = this.#message(secureId);
      let links = this.#stmt.links.all(secureId) as LinkRow[];
      if (options.recipient !== undefined) {
        const wanted = options.recipient.trim().toLowerCase();
        links = links.filter((l) => l.address.toLowerCase() === wanted);
        if (!links.length) throw new ZegelError('ZEGEL_RECIPIENT_NOT_FOUND', `${options.recipient} is not a recipient of ${secureId}`);
      }
      return this.#revokeSync(message, links, actor, options.recipient === undefined);
    })();
    await this.#finish(result);
    return result;
  }

  /**
   * Sets (or with `at = null` clears) the moment a link is revoked; the purge
   * job applies it when due (within its interval). A moment not after now revokes at once.
   */
  async scheduleLinkRevoke(linkId: string, at: number | null, actor: RevokeActor): Promise<RevokeResult | undefined> {
    if (at !== null && at <= this.#clock.now()) return this.revokeLink(linkId, actor);
    this.#db.transaction(() => {
      const link = this.#stmt.link.get(linkId) as LinkRow | undefined;
      if (!link) throw new ZegelError('ZEGEL_LINK_NOT_FOUND', `no link ${linkId}`);
      const message = this.#message(link.message_id);
      if (this.#stmt.scheduleLink.run(at, linkId).changes === 0) return;
      this.#event(message.queue_id, link.address, 'revoke-scheduled', { actor, linkId, at: at === null ? null : new Date(at).toISOString() });
    })();
    return undefined;
  }

  /** Sets (or clears) the moment every link of a message is revoked; see scheduleLinkRevoke. */
  async scheduleMessageRevoke(secureId: string, at: number | null, actor: RevokeActor): Promise<RevokeResult | undefined> {
    if (at !== null && at <= this.#clock.now()) return this.revokeMessage(secureId, actor);
    this.#db.transaction(() => {
      const message = this.#message(secureId);
      if (this.#stmt.scheduleMessage.run(at, secureId).changes === 0) return;
      this.#event(message.queue_id, undefined, 'revoke-scheduled', { actor, at: at === null ? null : new Date(at).toISOString() });
    })();
    return undefined;
  }

  /**
   * One purge run (the purge job calls it): expires due messages, applies due
   * scheduled revocations, purges messages left without a wrap, removes blob
   * directories of purged messages (again, after a crash), and deletes reader
   * sessions and one-time codes past their expiry. Idempotent; each message is
   * its own transaction, so a crash loses at most the file removals, which the next run repeats.
   */
  async purgeDue(batch = 500): Promise<PurgeReport> {
    const report: PurgeReport = { expired: 0, revoked: 0, purged: 0, repaired: 0, sessions: 0, codes: 0 };
    // every message these queries select was not purged before
    const count = (result: RevokeResult) => {
      if (result.purged) report.purged++;
    };
    for (;;) {
      const now = this.#clock.now();
      const ids = (this.#stmt.dueExpiry.all(now, batch) as Array<{ id: string }>).map((r) => r.id);
      for (const id of ids) {
        const result = this.#db.transaction(() => this.#expireSync(this.#message(id)))();
        report.expired++;
        count(result);
        await this.#removeBlobs(result);
      }
      if (ids.length < batch) break;
    }
    for (;;) {
      const now = this.#clock.now();
      const ids = (this.#stmt.dueMessages.all(now, batch) as Array<{ id: string }>).map((r) => r.id);
      for (const id of ids) {
        const result = this.#db.transaction(() => {
          const message = this.#message(id);
          return this.#revokeSync(message, this.#stmt.links.all(id) as LinkRow[], this.#scheduledActor(message.queue_id), true);
        })();
        report.revoked += result.revoked.length;
        count(result);
        await this.#removeBlobs(result);
      }
      if (ids.length < batch) break;
    }
    for (;;) {
      const now = this.#clock.now();
      const ids = (this.#stmt.dueLinks.all(now, batch) as Array<{ id: string }>).map((r) => r.id);
      for (const id of ids) {
        const result = this.#db.transaction(() => {
          const link = this.#stmt.link.get(id) as LinkRow;
          const message = this.#message(link.message_id);
          return this.#revokeSync(message, [link], this.#scheduledActor(message.queue_id));
        })();
        report.revoked += result.revoked.length;
        count(result);
        await this.#removeBlobs(result);
      }
      if (ids.length < batch) break;
    }
    for (const { id } of this.#stmt.orphaned.all(batch) as Array<{ id: string }>) {
      const result = this.#db.transaction(() => {
        const message = this.#message(id);
        const purged = this.#purgeIfNoWrapSync(message, message.state === 'expired' ? 'expired' : 'revoked');
        return { secureId: id, queueId: message.queue_id, revoked: [], state: message.state, purged } satisfies RevokeResult;
      })();
      count(result);
      await this.#removeBlobs(result);
    }
    // blob directories of purged messages: a crash between a commit and its file removal
    for (const dir of await this.#blobs.list()) {
      const row = this.#stmt.message.get(dir) as MessageRow | undefined;
      if (row && row.purged_at !== null) {
        await this.#blobs.remove(dir);
        report.repaired++;
      }
    }
    const now = this.#clock.now();
    this.#db.transaction(() => {
      report.sessions = this.#stmt.oldSessions.run(now).changes;
      report.codes = this.#stmt.oldCodes.run(now - CODE_KEEP_MS).changes;
    })();
    if (report.expired || report.revoked || report.purged || report.repaired) this.#log?.info({ ...report }, 'purge run');
    // every run ends with a truncated WAL: it completes a shred another process (the CLI) or a crash left
    // waiting, and a link replaced on the status page; a busy reader leaves it to the shredder's follow-up
    await this.#shredder.shred();
    return report;
  }

  #message(secureId: string): MessageRow {
    const message = this.#stmt.message.get(secureId) as MessageRow | undefined;
    if (!message) throw new ZegelError('ZEGEL_MESSAGE_NOT_FOUND', `no secure message ${secureId}`);
    return message;
  }

  /** The actor of the last scheduling event of a message (the sender unless an operator scheduled it). */
  #scheduledActor(queueId: string): RevokeActor {
    const row = this.#stmt.scheduledBy.get(queueId) as { detail: string } | undefined;
    try {
      const actor = row ? (JSON.parse(row.detail) as { actor?: unknown }).actor : undefined;
      return actor === 'admin' ? 'admin' : 'sender';
    } catch {
      return 'sender';
    }
  }

  #event(queueId: string, recipient: string | undefined, type: EventType, detail: Record<string, unknown>): void {
    this.#stmt.event.run(this.#clock.now(), queueId, recipient ?? null, type, canonicalJson(detail));
  }

  /** Shreds the given active links; purges the message when no wrap is left (or `all`, revoking the whole message). */
  #revokeSync(message: MessageRow, links: LinkRow[], actor: RevokeActor, all = false): RevokeResult {
    const revoked: RevokedLink[] = [];
    const type: EventType = actor === 'expiry' ? 'expired' : 'revoked';
    for (const link of links) {
      if (link.state !== 'active') continue;
      if (this.#stmt.shred.run(type, link.id).changes === 0) continue;
      this.#stmt.endSessions.run(link.id);
      this.#stmt.endCodes.run(link.id);
      this.#event(message.queue_id, link.address, type, { actor, linkId: link.id });
      revoked.push({ linkId: link.id, address: link.address });
    }
    const expired = actor === 'expiry' || message.expires_at <= this.#clock.now();
    let purged = message.purged_at !== null;
    if (!purged) purged = this.#purgeIfNoWrapSync(message, expired ? 'expired' : 'revoked', all);
    const state = (this.#stmt.message.get(message.id) as MessageRow).state;
    return { secureId: message.id, queueId: message.queue_id, revoked, state, purged };
  }

  #expireSync(message: MessageRow): RevokeResult {
    const result = this.#revokeSync(message, this.#stmt.links.all(message.id) as LinkRow[], 'expiry', true);
    if (!result.purged) {
      // cannot happen (every link was shredded), but a message past expiry must never keep its state
      this.#stmt.setState.run('expired', message.id);
    }
    return result;
  }

  /** Purges the message if no link keeps a wrap; `force` purges regardless (every link was just revoked). */
  #purgeIfNoWrapSync(message: MessageRow, state: 'revoked' | 'expired', force = false): boolean {
    if (message.purged_at !== null) return true;
    const left = (this.#stmt.wrapsLeft.get(message.id) as { n: number }).n;
    if (left > 0 && !force) return false;
    for (const link of this.#stmt.links.all(message.id) as LinkRow[]) {
      this.#stmt.endSessions.run(link.id);
      this.#stmt.endCodes.run(link.id);
    }
    this.#stmt.shredAll.run(message.id);
    const replies = this.#stmt.replies.run(message.id).changes;
    // a message the sender revoked keeps 'revoked' even when its expiry passes before the purge
    const finalState = message.state === 'active' ? state : message.state;
    this.#stmt.purge.run(finalState, this.#clock.now(), message.id);
    this.#event(message.queue_id, undefined, 'purged', { reason: state, blobs: blobCount(message.blobs), replies });
    return true;
  }

  /** After a revoking commit: the WAL truncated when a key was shredded, then the blob files removed. */
  async #finish(result: RevokeResult): Promise<void> {
    if (result.revoked.length || result.purged) await this.#shredder.shred();
    await this.#removeBlobs(result);
  }

  async #removeBlobs(result: RevokeResult): Promise<void> {
    if (!result.purged) return;
    try {
      await this.#blobs.remove(result.secureId);
    } catch (err) {
      // the next purge run removes them again
      this.#log?.warn({ secureId: result.secureId, err: { message: (err as Error).message } }, 'could not remove the blobs of a purged message yet');
    }
  }
}

function blobCount(json: string): number {
  try {
    const parsed: unknown = JSON.parse(json);
    return Array.isArray(parsed) ? parsed.length : 0;
  } catch {
    return 0;
  }
}
