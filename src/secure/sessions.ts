import crypto from 'node:crypto';
import type { Clock } from '../clock.js';
import type { SessionRow } from '../store/sessions.js';
import type { LinkService } from './links.js';

/**
 * Reader sessions, in two stages (the cookie that carries them is HTTP:
 * src/reader/session-cookie.ts).
 *
 * - Before a check passes the session is a *pre-session*: stateless, nothing
 *   is written for it. Its value is `p.<r>.<expires>.<mac>`: 32 random bytes
 *   r, the expiry, and an HMAC-SHA256 (keyed from the relay secret) over r,
 *   the link id and the expiry, so it is bound to one link and lapses after
 *   12 hours. One-time codes are bound to SHA-256(r).
 * - When the check passes a new random value (32 bytes, base64url) becomes
 *   the session and only its SHA-256 (hex) is stored in reader_sessions: the
 *   session id rotates, and a copy of the database cannot be replayed as a
 *   cookie. A session belongs to exactly one link: the value of link A gives
 *   nothing on link B.
 */

/** How long a session lasts (absolute): a pre-session from its start, a stored one from the passed check. */
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
  /** The value to hand to the browser: only for a pre-session made just now. */
  fresh?: string;
}

export class ReaderSessions {
  readonly #links: LinkService;
  readonly #clock: Clock;
  readonly #key: Buffer;

  constructor(links: LinkService, clock: Clock, secret: Buffer) {
    this.#links = links;
    this.#clock = clock;
    this.#key = crypto.createHmac('sha256', secret).update('zegel/v1/reader-presession').digest();
  }

  #mac(r: string, linkId: string, expires: string): string {
    return crypto.createHmac('sha256', this.#key).update(`${r}.${linkId}.${expires}`).digest('base64url');
  }

  /** The live session (stored or pre-session) the value names for this link, or undefined. Writes nothing. */
  async find(value: string | undefined, linkId: string): Promise<ReaderSession | undefined> {
    if (!value) return undefined;
    const now = this.#clock.now();
    if (STORED_VALUE.test(value)) {
      const row: SessionRow | undefined = await this.#links.session(hashSessionId(value));
      if (!row || row.linkId !== linkId || row.expiresAt <= now) return undefined;
      return { idHash: row.idHash, linkId: row.linkId, verifiedAt: row.verifiedAt, expiresAt: row.expiresAt, stored: true };
    }
    const m = PRE_VALUE.exec(value);
    if (!m) return undefined;
    const [, r, expires, mac] = m as unknown as [string, string, string, string];
    const expected = Buffer.from(this.#mac(r, linkId, expires));
    if (!crypto.timingSafeEqual(expected, Buffer.from(mac))) return undefined;
    const expiresAt = parseInt(expires, 36);
    if (!(expiresAt > now) || expiresAt > now + SESSION_TTL_MS) return undefined;
    return { idHash: hashSessionId(r), linkId, verifiedAt: undefined, expiresAt, stored: false };
  }

  /** The value's session for this link, or a new pre-session (whose value the caller hands out). Writes nothing. */
  async findOrStart(value: string | undefined, linkId: string): Promise<ReaderSession> {
    const existing = await this.find(value, linkId);
    if (existing) return existing;
    const r = crypto.randomBytes(32).toString('base64url');
    const expiresAt = this.#clock.now() + SESSION_TTL_MS;
    const expires = expiresAt.toString(36);
    return { idHash: hashSessionId(r), linkId, verifiedAt: undefined, expiresAt, stored: false, fresh: `p.${r}.${expires}.${this.#mac(r, linkId, expires)}` };
  }

  /**
   * The check passed: a new session id is stored as verified (the previous
   * one, stored or not, is gone) and the link's open times are set. Returns
   * the new session value.
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
}
