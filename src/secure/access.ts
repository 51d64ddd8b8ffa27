import type { Readable } from 'node:stream';
import type { Clock } from '../clock.js';
import type { Config } from '../config/schema.js';
import type { Logger } from '../log.js';
import type { BlobRepository } from '../store/blobs.js';
import type { EventType } from '../store/events.js';
import {
  accessCodeMatches,
  CODE_WINDOW_MS,
  codeMatches,
  codeHash,
  codeRetryAfter,
  FORGOT_INTERVAL_MS,
  linkStatus,
  maskEmail,
  newCode,
  normaliseCode,
} from './checks.js';
import type { LinkService, LinkView } from './links.js';
import { Refusal } from './refusal.js';
import type { ReaderSession, ReaderSessions } from './sessions.js';
import { maskPhone, smsText, type SmsDriver } from './sms.js';

/**
 * A recipient's way to the message, as domain logic: the link's state, the
 * visitor's session, one-time codes (made, sent, voided when they cannot be
 * sent), access codes, attempt counting and locks, forgot-code notices, and
 * the blobs a verified session may read. Every refusal is a Refusal with a
 * stable code; the reader's HTTP layer (src/reader/routes/api.ts) turns
 * requests into these calls and results into answers. Events carry the queue
 * id, recipient, link id and client address; never codes, keys or content.
 */

/** Who asks: the session value the browser presented, and where from. */
export interface Visitor {
  session: string | undefined;
  /** The client address (reader.trustedProxies applied): recorded on events. */
  clientIp: string;
  /** Hands a new session value to the browser; called as soon as it exists, also before a refusal. */
  issue(value: string): void;
}

export interface LinkAccessDeps {
  links: LinkService;
  sessions: ReaderSessions;
  clock: Clock;
  /** verification (ttl, maxAttempts, lockFor) and organisation.name (the SMS text). */
  config: Pick<Config, 'verification' | 'organisation'>;
  log: Logger;
  /** The relay secret: key of the one-time code HMACs. */
  secret: Buffer;
  blobs: BlobRepository;
  mailer: {
    sendCode(link: LinkView, code: string, expiresAt: number): Promise<void>;
    notifyForgot(link: LinkView, sender: string): Promise<void>;
  };
  sms: SmsDriver;
  /** argon2id hashes for the recipient: the address's first, then its @domain's. */
  accessCodes: (address: string) => Promise<string[]>;
  /** After a passed check, before the link's open times are set (first-open mail to the sender). */
  onVerified?: ((link: LinkView) => Promise<void>) | undefined;
}

/** A usable link, and its lock when others' tries locked it. */
export interface LoadedLink {
  link: LinkView;
  lockedUntil: number | undefined;
}

export type OpenState = 'verified' | 'locked' | 'pending-check';

export class LinkAccess {
  readonly #d: LinkAccessDeps;
  /** Forgot-code notices sent by this process (the event table covers restarts). */
  readonly #forgotSent = new Map<string, number>();

  constructor(deps: LinkAccessDeps) {
    this.#d = deps;
  }

  /** The link, or the refusal unknown-link, revoked or expired; a lock is left to the caller. */
  async load(linkId: string): Promise<LoadedLink> {
    const link = await this.#d.links.link(linkId);
    const status = linkStatus(link, this.#d.clock.now());
    if (!link || status.status === 'unknown') throw new Refusal('unknown-link');
    if (status.status === 'revoked' || status.status === 'expired') throw new Refusal(status.status);
    return { link, lockedUntil: status.status === 'locked' ? status.until : undefined };
  }

  /** The link of a verified session, or the refusal (also not-verified). A lock from others' tries does not stop a verified session. */
  async verifiedLink(linkId: string, session: string | undefined): Promise<LinkView> {
    const { link } = await this.load(linkId);
    const s = await this.#d.sessions.find(session, link.id);
    if (!s || s.verifiedAt === undefined) throw new Refusal('not-verified');
    return link;
  }

  /** Where a code goes, masked; undefined for checks without one. */
  destination(link: LinkView): string | undefined {
    if (link.method === 'email-code') return maskEmail(link.address);
    if (link.method === 'sms-code') return link.phone ? maskPhone(link.phone) : undefined;
    return undefined;
  }

  /** The visitor's session for this link, or a new pre-session (issued): nothing is written for either. */
  async #session(visitor: Visitor, link: LinkView): Promise<ReaderSession> {
    const s = await this.#d.sessions.findOrStart(visitor.session, link.id);
    if (s.fresh) visitor.issue(s.fresh);
    return s;
  }

  #event(link: LinkView, visitor: Visitor, type: EventType, detail: Record<string, unknown> = {}): Promise<void> {
    return this.#d.links.record({ messageId: link.queueId, recipient: link.address, type, detail: { linkId: link.id, clientIp: visitor.clientIp, ...detail } });
  }

  /** The page opens a link: its state for this visitor. */
  async open(linkId: string, visitor: Visitor): Promise<LoadedLink & { state: OpenState }> {
    const loaded = await this.load(linkId);
    const s = await this.#session(visitor, loaded.link);
    const state: OpenState = s.verifiedAt !== undefined ? 'verified' : loaded.lockedUntil !== undefined ? 'locked' : 'pending-check';
    return { ...loaded, state };
  }

  /** Makes a one-time code for the visitor's session and sends it (e-mail or SMS); a code that could not be sent is void. */
  async sendCode(linkId: string, visitor: Visitor): Promise<{ link: LinkView; destination: string; expiresAt: number }> {
    const { links, clock, config, log, secret } = this.#d;
    const ttl = config.verification.ttl;
    const { link, lockedUntil } = await this.load(linkId);
    if (link.method !== 'email-code' && link.method !== 'sms-code') throw new Refusal('bad-request');
    if (lockedUntil !== undefined) throw new Refusal('locked', { lockedUntil });
    const s = await this.#session(visitor, link);
    const channel = link.method === 'sms-code' ? 'sms' : 'email';
    if (channel === 'sms' && !link.phone) {
      log.error({ linkId: link.id }, 'reader: sms-code link without a phone number; no code sent');
      throw new Refusal('unavailable');
    }
    const now = clock.now();
    const code = newCode();
    const expiresAt = now + (channel === 'sms' ? ttl.sms : ttl.email);
    const stored = await links.insertCode(
      { linkId: link.id, sessionHash: s.idHash, channel, codeHash: codeHash(secret, link.id, s.idHash, code), createdAt: now, expiresAt },
      now - CODE_WINDOW_MS,
      (recent) => codeRetryAfter(recent, now),
    );
    if ('refused' in stored) throw new Refusal('too-many-codes', { retryAfter: stored.refused });
    try {
      if (channel === 'sms') await this.#d.sms.send(link.phone!, smsText(link.language, config.organisation.name, code, ttl.sms));
      else await this.#d.mailer.sendCode(link, code, expiresAt);
    } catch (err) {
      await links.voidCode(stored.id);
      // the error text is not logged as is: a gateway or mailer might quote what it was given
      const reason = (err as { code?: unknown }).code ?? (err as Error).name;
      log.warn({ linkId: link.id, channel, reason: String(reason) }, 'reader: code could not be sent; voided');
      throw new Refusal('unavailable');
    }
    await this.#event(link, visitor, 'code-sent', { channel });
    log.info({ linkId: link.id, channel }, 'reader: code sent');
    return { link, destination: this.destination(link)!, expiresAt };
  }

  /**
   * The check: a verified session keeps its key; otherwise the code (none for
   * method `none`) is counted before it is checked, so concurrent tries never
   * test more than maxAttempts codes, and the last wrong one locks the link.
   * A passed check rotates the session id. Resolves to the link, whose wrap
   * and K_srv the visitor may now have.
   */
  async verify(linkId: string, typedCode: string | undefined, visitor: Visitor): Promise<LinkView> {
    const { links, clock, config, log, secret } = this.#d;
    const ttl = config.verification.ttl;
    const { link, lockedUntil } = await this.load(linkId);
    const s = await this.#session(visitor, link);
    const now = clock.now();
    if (s.verifiedAt !== undefined) {
      // a verified session keeps its key, also while someone else's tries lock the link
      await links.touch(link.id, now);
      return link;
    }
    if (lockedUntil !== undefined) throw new Refusal('locked', { lockedUntil });

    if (link.method !== 'none') {
      const code = typedCode?.trim() ?? '';
      if (!code) throw new Refusal('no-code');
      // counted before it is checked: concurrent tries never test more than maxAttempts codes
      const reserved = await links.reserveAttempt(link.id);
      // others' tries locked the link since it was read: the same answer as a lock seen at the start
      if ('lockedUntil' in reserved) throw new Refusal('locked', { lockedUntil: reserved.lockedUntil });
      const { attempt } = reserved;
      if (attempt > ttl.maxAttempts) return this.#lock(link, visitor, now);
      let passed: boolean;
      if (link.method === 'access-code') {
        passed = await accessCodeMatches(await this.#d.accessCodes(link.address), code);
      } else {
        const typed = normaliseCode(code);
        const match = (await links.liveCodes(link.id, s.idHash, clock.now())).find((c) => codeMatches(c.codeHash, secret, link.id, s.idHash, typed));
        passed = match !== undefined && (await links.useCode(match.id));
      }
      if (!passed) {
        if (attempt >= ttl.maxAttempts) {
          await this.#event(link, visitor, 'check-failed', { method: link.method, attemptsLeft: 0 });
          return this.#lock(link, visitor, clock.now());
        }
        const attemptsLeft = ttl.maxAttempts - attempt;
        await this.#event(link, visitor, 'check-failed', { method: link.method, attemptsLeft });
        log.info({ linkId: link.id, attemptsLeft }, 'reader: check failed');
        throw new Refusal('wrong-code', { attemptsLeft });
      }
    }
    await this.#d.onVerified?.(link);
    // the session id rotates: a value planted or seen before the check is worth nothing after it
    visitor.issue(await this.#d.sessions.verified(s));
    await this.#event(link, visitor, 'check-passed', { method: link.method });
    log.info({ linkId: link.id, method: link.method }, 'reader: check passed');
    return link;
  }

  async #lock(link: LinkView, visitor: Visitor, now: number): Promise<never> {
    const until = now + this.#d.config.verification.ttl.lockFor;
    await this.#d.links.lock(link.id, until);
    await this.#event(link, visitor, 'locked', { lockedUntil: new Date(until).toISOString() });
    this.#d.log.warn({ linkId: link.id, lockedUntil: new Date(until).toISOString() }, 'reader: link locked after too many wrong tries');
    throw new Refusal('locked', { lockedUntil: until });
  }

  /** Tells the sender that the recipient forgot the access code: at most once per FORGOT_INTERVAL_MS per link. */
  async forgot(linkId: string, visitor: Visitor): Promise<void> {
    const { links, clock, log } = this.#d;
    const { link } = await this.load(linkId);
    if (link.method !== 'access-code') throw new Refusal('bad-request');
    const now = clock.now();
    const last = Math.max(this.#forgotSent.get(link.id) ?? -Infinity, (await links.lastForgot(link.queueId, link.id)) ?? -Infinity);
    if (now - last < FORGOT_INTERVAL_MS) return;
    this.#forgotSent.set(link.id, now);
    try {
      await this.#d.mailer.notifyForgot(link, link.sender);
    } catch (err) {
      this.#forgotSent.delete(link.id);
      log.warn({ linkId: link.id, reason: String((err as { code?: unknown }).code ?? (err as Error).name) }, 'reader: forgot-code notice could not be sent');
      throw new Refusal('unavailable');
    }
    await this.#event(link, visitor, 'forgot-code');
    log.info({ linkId: link.id }, 'reader: sender told about a forgotten access code');
  }

  /**
   * One ciphertext blob of the message for a verified session, recorded as
   * `opened` (the body) or `downloaded`. `blobIdValid` false: the id was
   * malformed, which answers like an unknown blob, after the link and session
   * checks as always.
   */
  async blob(linkId: string, blobId: string, blobIdValid: boolean, visitor: Visitor): Promise<{ size: number; stream: Readable }> {
    const { links, clock, log, blobs } = this.#d;
    const link = await this.verifiedLink(linkId, visitor.session);
    if (!blobIdValid || !link.blobIds.includes(blobId)) throw new Refusal('unknown-link');
    const size = await blobs.size(link.secureId, blobId);
    if (size === undefined) {
      log.error({ linkId: link.id, blobId }, 'reader: blob listed but missing');
      throw new Refusal('unknown-link');
    }
    await this.#event(link, visitor, blobId === link.bodyBlob ? 'opened' : 'downloaded', { blobId, bytes: size });
    await links.touch(link.id, clock.now());
    return { size, stream: blobs.open(link.secureId, blobId) };
  }
}
