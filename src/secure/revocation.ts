import { ZegelError } from '../errors.js';
import type { Logger } from '../log.js';
import type { BlobRepository } from '../store/blobs.js';
import type { EventType } from '../store/events.js';
import type { SecureLinkRow } from '../store/links.js';
import { blobCount, type SecureMessageRow } from '../store/secure.js';
import type { Tx } from '../store/tx.js';
import type { SecureContext } from './context.js';

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
 * Every change is one transaction of the store (on SQLite a group commit,
 * BEGIN IMMEDIATE: atomic with respect to the reader and the queue, and safe
 * against another process such as the admin CLI). Blob files are removed
 * after the commit; a crash in between is repaired by the next `purgeDue`
 * (it removes the blob directory of every purged message that still has
 * one), and start-up recovery removes blob directories of ids it does not know.
 *
 * Shredding is byte-level: the connection runs with secure_delete (openDb), so
 * the cells that held a wrap and K_srv are overwritten with zeros, and after
 * each revoking, expiring or purging change the WAL is checkpointed and
 * truncated (the `shred` dependency, src/store/shred.ts), so no old page
 * image keeps them in the `-wal` or the database file. A busy reader delays
 * that checkpoint, never skips it: the shredder retries, and every purge run
 * checkpoints again.
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

/** Truncates the WAL after a shred (src/store/shred.ts WalShredder). */
export interface Shredder {
  shred(): Promise<unknown>;
}

export interface RevocationDeps extends SecureContext {
  blobs: BlobRepository;
  shredder: Shredder;
  /**
   * Queues a one-off purge run at `at`, in the transaction that schedules a
   * revocation, so it applies at that moment rather than at the next periodic
   * run (the relay passes its job queue; without it, the periodic run applies it).
   */
  schedulePurgeRun?: ((tx: Tx, at: number) => Promise<void>) | undefined;
  log?: Logger | undefined;
}

/** One-time code rows are kept this long after they expire: the reader's rate limits count them (CODE_WINDOW_MS is one hour). */
const CODE_KEEP_MS = 24 * 3600e3;

export class Revocations {
  readonly #ctx: RevocationDeps;

  constructor(deps: RevocationDeps) {
    this.#ctx = deps;
  }

  /** Revokes one recipient's link now. Idempotent: an already revoked link changes nothing. */
  async revokeLink(linkId: string, actor: RevokeActor): Promise<RevokeResult> {
    const result = await this.#ctx.store.transaction(async (tx) => {
      const link = await this.#ctx.repos.links.get(linkId, tx);
      if (!link) throw new ZegelError('ZEGEL_LINK_NOT_FOUND', `no link ${linkId}`);
      return this.#revoke(tx, await this.#message(link.message_id, tx), [link], actor);
    });
    await this.#finish(result);
    return result;
  }

  /**
   * Revokes every link of a secure message now, or with `recipient` only the
   * links of that address (case-insensitive). The ciphertext goes once no link
   * keeps a wrap.
   */
  async revokeMessage(secureId: string, actor: RevokeActor, options: { recipient?: string | undefined } = {}): Promise<RevokeResult> {
    const result = await this.#ctx.store.transaction(async (tx) => {
      const message = await this.#message(secureId, tx);
      let links = await this.#ctx.repos.links.ofMessage(secureId, tx);
      if (options.recipient !== undefined) {
        const wanted = options.recipient.trim().toLowerCase();
        links = links.filter((l) => l.address.toLowerCase() === wanted);
        if (!links.length) throw new ZegelError('ZEGEL_RECIPIENT_NOT_FOUND', `${options.recipient} is not a recipient of ${secureId}`);
      }
      return this.#revoke(tx, message, links, actor, options.recipient === undefined);
    });
    await this.#finish(result);
    return result;
  }

  /**
   * Sets (or with `at = null` clears) the moment a link is revoked; the purge
   * job applies it when due (within its interval). A moment not after now revokes at once.
   */
  async scheduleLinkRevoke(linkId: string, at: number | null, actor: RevokeActor): Promise<RevokeResult | undefined> {
    if (at !== null && at <= this.#ctx.clock.now()) return this.revokeLink(linkId, actor);
    await this.#ctx.store.transaction(async (tx) => {
      const link = await this.#ctx.repos.links.get(linkId, tx);
      if (!link) throw new ZegelError('ZEGEL_LINK_NOT_FOUND', `no link ${linkId}`);
      const message = await this.#message(link.message_id, tx);
      if (!(await this.#ctx.repos.links.scheduleRevoke(tx, linkId, at))) return;
      await this.#event(tx, message.queue_id, link.address, 'revoke-scheduled', { actor, linkId, at: at === null ? null : new Date(at).toISOString() });
      if (at !== null) await this.#ctx.schedulePurgeRun?.(tx, at);
    });
    return undefined;
  }

  /** Sets (or clears) the moment every link of a message is revoked; see scheduleLinkRevoke. */
  async scheduleMessageRevoke(secureId: string, at: number | null, actor: RevokeActor): Promise<RevokeResult | undefined> {
    if (at !== null && at <= this.#ctx.clock.now()) return this.revokeMessage(secureId, actor);
    await this.#ctx.store.transaction(async (tx) => {
      const message = await this.#message(secureId, tx);
      if (!(await this.#ctx.repos.secure.scheduleRevoke(tx, secureId, at))) return;
      await this.#event(tx, message.queue_id, undefined, 'revoke-scheduled', { actor, at: at === null ? null : new Date(at).toISOString() });
      if (at !== null) await this.#ctx.schedulePurgeRun?.(tx, at);
    });
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
    const { store, repos, clock } = this.#ctx;
    const report: PurgeReport = { expired: 0, revoked: 0, purged: 0, repaired: 0, sessions: 0, codes: 0 };
    // every message these queries select was not purged before
    const count = (result: RevokeResult) => {
      if (result.purged) report.purged++;
    };
    for (;;) {
      const ids = await repos.secure.dueExpiry(clock.now(), batch);
      for (const id of ids) {
        const result = await store.transaction(async (tx) => this.#expire(tx, await this.#message(id, tx)));
        report.expired++;
        count(result);
        await this.#removeBlobs(result);
      }
      if (ids.length < batch) break;
    }
    for (;;) {
      const ids = await repos.secure.dueRevocations(clock.now(), batch);
      for (const id of ids) {
        const result = await store.transaction(async (tx) => {
          const message = await this.#message(id, tx);
          const actor = await this.#scheduledActor(message.queue_id);
          return this.#revoke(tx, message, await repos.links.ofMessage(id, tx), actor, true);
        });
        report.revoked += result.revoked.length;
        count(result);
        await this.#removeBlobs(result);
      }
      if (ids.length < batch) break;
    }
    for (;;) {
      const ids = await repos.links.dueRevocations(clock.now(), batch);
      for (const id of ids) {
        const result = await store.transaction(async (tx) => {
          const link = (await repos.links.get(id, tx))!;
          const message = await this.#message(link.message_id, tx);
          return this.#revoke(tx, message, [link], await this.#scheduledActor(message.queue_id));
        });
        report.revoked += result.revoked.length;
        count(result);
        await this.#removeBlobs(result);
      }
      if (ids.length < batch) break;
    }
    // a message that lost its last wrap some other way (e.g. a replaced link) but was never purged
    let orphans = 0;
    for (const id of await repos.secure.unpurgedInactive()) {
      if (orphans >= batch) break;
      if (await repos.links.hasWrap(id)) continue;
      orphans++;
      const result = await store.transaction(async (tx) => {
        const message = await this.#message(id, tx);
        const purged = await this.#purgeIfNoWrap(tx, message, message.state === 'expired' ? 'expired' : 'revoked');
        return { secureId: id, queueId: message.queue_id, revoked: [], state: message.state, purged } satisfies RevokeResult;
      });
      count(result);
      await this.#removeBlobs(result);
    }
    // blob directories of purged messages: a crash between a commit and its file removal
    for (const dir of await this.#ctx.blobs.list()) {
      const row = await repos.secure.get(dir);
      if (row && row.purged_at !== null) {
        await this.#ctx.blobs.remove(dir);
        report.repaired++;
      }
    }
    const now = clock.now();
    await store.transaction(async (tx) => {
      report.sessions = await repos.sessions.deleteExpired(tx, now);
      report.codes = await repos.codes.deleteExpired(tx, now - CODE_KEEP_MS);
    });
    if (report.expired || report.revoked || report.purged || report.repaired) this.#ctx.log?.info({ ...report }, 'purge run');
    // every run ends with a truncated WAL: it completes a shred another process (the CLI) or a crash left
    // waiting, and a link replaced on the status page; a busy reader leaves it to the shredder's follow-up
    await this.#ctx.shredder.shred();
    return report;
  }

  async #message(secureId: string, tx: Tx): Promise<SecureMessageRow> {
    const message = await this.#ctx.repos.secure.get(secureId, tx);
    if (!message) throw new ZegelError('ZEGEL_MESSAGE_NOT_FOUND', `no secure message ${secureId}`);
    return message;
  }

  /** The actor of the last scheduling event of a message (the sender unless an operator scheduled it). */
  async #scheduledActor(queueId: string): Promise<RevokeActor> {
    const last = (await this.#ctx.events.forMessage(queueId)).filter((e) => e.type === 'revoke-scheduled').at(-1);
    return last?.detail.actor === 'admin' ? 'admin' : 'sender';
  }

  /** Appends one event in `tx`, in the order of the writes around it (awaited: on PostgreSQL it is a statement). */
  async #event(tx: Tx, queueId: string, recipient: string | undefined, type: EventType, detail: Record<string, unknown>): Promise<void> {
    await this.#ctx.events.append(tx, { messageId: queueId, recipient, type, detail });
  }

  /** Shreds the given active links; purges the message when no wrap is left (or `all`, revoking the whole message). */
  async #revoke(tx: Tx, message: SecureMessageRow, links: SecureLinkRow[], actor: RevokeActor, all = false): Promise<RevokeResult> {
    const { repos, clock } = this.#ctx;
    const revoked: RevokedLink[] = [];
    const type = actor === 'expiry' ? 'expired' : 'revoked';
    for (const link of links) {
      if (link.state !== 'active') continue;
      if (!(await repos.links.shred(tx, link.id, type))) continue;
      await repos.sessions.endForLink(tx, link.id);
      await repos.codes.deleteLive(tx, link.id);
      await this.#event(tx, message.queue_id, link.address, type, { actor, linkId: link.id });
      revoked.push({ linkId: link.id, address: link.address });
    }
    const expired = actor === 'expiry' || message.expires_at <= clock.now();
    let purged = message.purged_at !== null;
    if (!purged) purged = await this.#purgeIfNoWrap(tx, message, expired ? 'expired' : 'revoked', all);
    const state = (await this.#message(message.id, tx)).state;
    return { secureId: message.id, queueId: message.queue_id, revoked, state, purged };
  }

  async #expire(tx: Tx, message: SecureMessageRow): Promise<RevokeResult> {
    const result = await this.#revoke(tx, message, await this.#ctx.repos.links.ofMessage(message.id, tx), 'expiry', true);
    if (!result.purged) {
      // cannot happen (every link was shredded), but a message past expiry must never keep its state
      await this.#ctx.repos.secure.setState(tx, message.id, 'expired');
    }
    return result;
  }

  /** Purges the message if no link keeps a wrap; `force` purges regardless (every link was just revoked). */
  async #purgeIfNoWrap(tx: Tx, message: SecureMessageRow, state: 'revoked' | 'expired', force = false): Promise<boolean> {
    const { repos, clock } = this.#ctx;
    if (message.purged_at !== null) return true;
    const left = await repos.links.wrapsLeft(message.id, tx);
    if (left > 0 && !force) return false;
    for (const link of await repos.links.ofMessage(message.id, tx)) {
      await repos.sessions.endForLink(tx, link.id);
      await repos.codes.deleteLive(tx, link.id);
    }
    await repos.links.shredAll(tx, message.id);
    const replies = await repos.replies.dropBlobs(tx, message.id);
    // a message the sender revoked keeps 'revoked' even when its expiry passes before the purge
    const finalState = message.state === 'active' ? state : message.state;
    await repos.secure.purge(tx, message.id, finalState, clock.now());
    await this.#event(tx, message.queue_id, undefined, 'purged', { reason: state, blobs: blobCount(message), replies });
    return true;
  }

  /** After a revoking commit: the WAL truncated when a key was shredded, then the blob files removed. */
  async #finish(result: RevokeResult): Promise<void> {
    if (result.revoked.length || result.purged) await this.#ctx.shredder.shred();
    await this.#removeBlobs(result);
  }

  async #removeBlobs(result: RevokeResult): Promise<void> {
    if (!result.purged) return;
    try {
      await this.#ctx.blobs.remove(result.secureId);
    } catch (err) {
      // the next purge run removes them again
      this.#ctx.log?.warn({ secureId: result.secureId, err: { message: (err as Error).message } }, 'could not remove the blobs of a purged message yet');
    }
  }
}
