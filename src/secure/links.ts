import type { Language, Method } from '../reader/api.js';
import type { CodeRow, NewCode } from '../store/codes.js';
import type { SessionRow } from '../store/sessions.js';
import { recordEvent, type SecureContext } from './context.js';
import type { EventInput } from '../store/events.js';

/**
 * A recipient's link as the reader sees it: the secure_links row with the
 * state, expiry, sender and blobs of its secure message, and what the reader
 * does with it (attempt counting, locks, one-time codes, sessions, open
 * times). Each write is one transaction through the group commit; counters
 * and limits live in the store and survive restarts.
 */

/** One link joined with its secure message's state, expiry and sender. */
export interface LinkView {
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
  /** secure_messages.state: active | revoked | expired */
  messageState: string;
  messageExpiresAt: number;
  /** Envelope sender of the secure message. */
  sender: string;
  bodyBlob: string | undefined;
  /** Every ciphertext blob id of the message (secure_messages.blobs). */
  blobIds: string[];
  /** Message-ID of the original, for a reply's In-Reply-To. */
  originMessageId: string | undefined;
}

const METHODS: readonly Method[] = ['none', 'access-code', 'email-code', 'sms-code'];

export function blobIds(json: string): string[] {
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

export class LinkService {
  readonly #ctx: SecureContext;

  constructor(ctx: SecureContext) {
    this.#ctx = ctx;
  }

  async link(id: string): Promise<LinkView | undefined> {
    const { links, secure } = this.#ctx.repos;
    const row = await links.get(id);
    if (!row) return undefined;
    const message = await secure.get(row.message_id);
    if (!message) return undefined;
    return {
      id: row.id,
      secureId: row.message_id,
      queueId: message.queue_id,
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
      messageState: message.state,
      messageExpiresAt: message.expires_at,
      sender: message.sender,
      bodyBlob: message.body_blob ?? undefined,
      blobIds: blobIds(message.blobs),
      originMessageId: message.origin_message_id?.trim() || undefined,
    };
  }

  session(idHash: string): Promise<SessionRow | undefined> {
    return this.#ctx.repos.sessions.get(idHash);
  }

  /**
   * Counts one attempt against the link before it is checked, so that
   * concurrent attempts can never test more than maxAttempts codes between
   * locks. Resolves to the number of attempts counted so far, or to the lock
   * another request's tries set since this one read the link: a lock resets
   * the count to 0, and a request that read the link before the lock must
   * not get a fresh allowance from that (with the group commit, its
   * reservation can be committed after the lock).
   */
  reserveAttempt(linkId: string): Promise<{ attempt: number } | { lockedUntil: number }> {
    const { links } = this.#ctx.repos;
    return this.#ctx.store.transaction(async (tx) => {
      const row = await links.get(linkId, tx);
      if (row?.locked_until != null && row.locked_until > this.#ctx.clock.now()) return { lockedUntil: row.locked_until };
      return { attempt: await links.addFailure(tx, linkId) };
    });
  }

  /** Locks a link: failures reset, every live one-time code of the link void. */
  lock(linkId: string, until: number): Promise<void> {
    const { links, codes } = this.#ctx.repos;
    return this.#ctx.store.transaction(async (tx) => {
      await links.lock(tx, linkId, until);
      await codes.voidLive(tx, linkId);
    });
  }

  /**
   * A passed check, in one transaction: the new (rotated) session id is
   * stored as verified, the session it replaces and the link's expired
   * sessions go, failures reset, open times set.
   */
  storeVerifiedSession(s: { idHash: string; linkId: string; now: number; expiresAt: number; replaces: string | undefined }): Promise<void> {
    const { links, sessions } = this.#ctx.repos;
    return this.#ctx.store.transaction(async (tx) => {
      await sessions.insertVerified(tx, s, s.replaces);
      await links.opened(tx, s.linkId, s.now);
    });
  }

  touch(linkId: string, now: number): Promise<void> {
    return this.#ctx.store.transaction((tx) => this.#ctx.repos.links.touch(tx, linkId, now));
  }

  /**
   * Stores a new one-time code after `allowed` (given the creation times of
   * the link's codes since `since`, read in the same transaction) agreed;
   * every earlier live code of the link becomes void. Resolves to the new
   * row id, or the refusal `allowed` returned.
   */
  insertCode<R>(code: NewCode, since: number, allowed: (recent: number[]) => R | undefined): Promise<{ id: number } | { refused: R }> {
    const { codes } = this.#ctx.repos;
    return this.#ctx.store.transaction(async (tx) => {
      const refused = allowed(await codes.createdSince(code.linkId, since, tx));
      if (refused !== undefined) return { refused };
      await codes.voidLive(tx, code.linkId);
      return { id: await codes.insert(tx, code) };
    });
  }

  liveCodes(linkId: string, sessionHash: string, now: number): Promise<CodeRow[]> {
    return this.#ctx.repos.codes.live(linkId, sessionHash, now);
  }

  /** Marks a live code used; false when another request used or voided it first. */
  useCode(id: number): Promise<boolean> {
    return this.#ctx.store.transaction((tx) => this.#ctx.repos.codes.use(tx, id));
  }

  voidCode(id: number): Promise<void> {
    return this.#ctx.store.transaction((tx) => this.#ctx.repos.codes.void(tx, id));
  }

  /** Time of the last forgot-code event of a link (the event table is the record), or undefined. */
  lastForgot(queueId: string, linkId: string): Promise<number | undefined> {
    return this.#ctx.events.lastAt(queueId, 'forgot-code', 'linkId', linkId);
  }

  /** Records a reader event (its own transaction). */
  record(event: EventInput): Promise<void> {
    return recordEvent(this.#ctx, event);
  }
}
