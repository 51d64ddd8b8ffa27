import crypto from 'node:crypto';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { Clock } from '../clock.js';
import type { LinkService } from '../secure/links.js';
import type { SessionRow } from '../store/sessions.js';

/**
 * Browser sessions of the reader, in two stages.
 *
 * - Before a check passes the cookie is a *pre-session*: stateless, nothing is
 *   written for it. Its value is `p.<r>.<expires>.<mac>`: 32 random bytes r,
 *   the expiry, and an HMAC-SHA256 (keyed from the relay secret) over r, the
 *   link id and the expiry, so it is bound to one link and lapses after 12
 *   hours. One-time codes are bound to SHA-256(r).
 * - When the check passes a new random value (32 bytes, base64url) becomes
 *   the cookie and only its SHA-256 (hex) is stored in reader_sessions: the
 *   session id rotates, and a copy of the database cannot be replayed as a
 *   cookie. A session belongs to exactly one link: the cookie of link A gives
 *   nothing on link B.
 *
 * With an https publicUrl the cookie is `__Host-zegel_rs` (Secure, Path=/,
 * no Domain), otherwise `zegel_rs`.
 */

export const SESSION_COOKIE = 'zegel_rs';
export const HOST_SESSION_COOKIE = `__Host-${SESSION_COOKIE}`;
/** How long a browser session lasts (absolute): a pre-session from its start, a stored one from the passed check. */
export const SESSION_TTL_MS = 12 * 3600e3;

const STORED_VALUE = /^[A-Za-z0-9_-]{43}$/;
const PRE_VALUE = /^p\.([A-Za-z0-9_-]{43})\.([0-9a-z]{1,12})\.([A-Za-z0-9_-]{43})$/;

export function hashSessionId(value: string): string {
  return crypto.createHash('sha256').update(value, 'utf8').digest('hex');
}

export interface ReaderSession {
  /** SHA-256 (hex) of the session's random part: what one-time codes are bound to. */
  idHash: string;
  linkId: string;
  verifiedAt: number | undefined;
  expiresAt: number;
  /** A row in reader_sessions (a verified session, or an unverified one from before pre-sessions). */
  stored: boolean;
  /** The cookie value to set: only for a pre-session made by this request. */
  fresh?: string;
}

export class Sessions {
  readonly #links: LinkService;
  readonly #clock: Clock;
  readonly #key: Buffer;
  readonly #secure: boolean;
  readonly cookieName: string;

  constructor(links: LinkService, clock: Clock, secret: Buffer, secure: boolean) {
    this.#links = links;
    this.#clock = clock;
    this.#key = crypto.createHmac('sha256', secret).update('zegel/v1/reader-presession').digest();
    this.#secure = secure;
    this.cookieName = secure ? HOST_SESSION_COOKIE : SESSION_COOKIE;
  }

  cookie(request: FastifyRequest): string | undefined {
    return request.cookies[this.cookieName];
  }

  #mac(r: string, linkId: string, expires: string): string {
    return crypto.createHmac('sha256', this.#key).update(`${r}.${linkId}.${expires}`).digest('base64url');
  }

  /** The live session (stored or pre-session) the cookie names for this link, or undefined. Writes nothing. */
  async find(cookie: string | undefined, linkId: string): Promise<ReaderSession | undefined> {
    if (!cookie) return undefined;
    const now = this.#clock.now();
    if (STORED_VALUE.test(cookie)) {
      const row: SessionRow | undefined = await this.#links.session(hashSessionId(cookie));
      if (!row || row.linkId !== linkId || row.expiresAt <= now) return undefined;
      return { idHash: row.idHash, linkId: row.linkId, verifiedAt: row.verifiedAt, expiresAt: row.expiresAt, stored: true };
    }
    const m = PRE_VALUE.exec(cookie);
    if (!m) return undefined;
    const [, r, expires, mac] = m as unknown as [string, string, string, string];
    const expected = Buffer.from(this.#mac(r, linkId, expires));
    if (!crypto.timingSafeEqual(expected, Buffer.from(mac))) return undefined;
    const expiresAt = parseInt(expires, 36);
    if (!(expiresAt > now) || expiresAt > now + SESSION_TTL_MS) return undefined;
    return { idHash: hashSessionId(r), linkId, verifiedAt: undefined, expiresAt, stored: false };
  }

  /** The cookie's session for this link, or a new pre-session (whose value the caller sets). Writes nothing. */
  async findOrStart(cookie: string | undefined, linkId: string): Promise<ReaderSession> {
    const existing = await this.find(cookie, linkId);
    if (existing) return existing;
    const r = crypto.randomBytes(32).toString('base64url');
    const expiresAt = this.#clock.now() + SESSION_TTL_MS;
    const expires = expiresAt.toString(36);
    return { idHash: hashSessionId(r), linkId, verifiedAt: undefined, expiresAt, stored: false, fresh: `p.${r}.${expires}.${this.#mac(r, linkId, expires)}` };
  }

  /**
   * The check passed: a new session id is stored as verified (the previous
   * one, stored or not, is gone) and the link's open times are set. Returns
   * the new cookie value.
   */
  async verified(previous: ReaderSession): Promise<string> {
    const value = crypto.randomBytes(32).toString('base64url');
    const now = this.#clock.now();
    await this.#links.storeVerifiedSession({
      idHash: hashSessionId(value),
      linkId: previous.linkId,
      now,
      expiresAt: now + SESSION_TTL_MS,
      replaces: previous.stored ? previous.idHash : undefined,
    });
    return value;
  }

  setCookie(reply: FastifyReply, value: string): void {
    reply.setCookie(this.cookieName, value, { httpOnly: true, sameSite: 'strict', path: '/', secure: this.#secure });
  }
}
