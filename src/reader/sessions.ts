import crypto from 'node:crypto';
import type { Clock } from '../clock.js';
import type { LinkStore, SessionRow } from './links.js';

/**
 * Browser sessions of the reader. The cookie `zegel_rs` holds 32 random bytes
 * (base64url); the database only holds their SHA-256 (hex), so a copy of the
 * database cannot be replayed as a cookie. A session belongs to exactly one
 * link: the cookie of link A gives nothing on link B, and opening link B
 * starts a new session (replacing the cookie).
 */

export const SESSION_COOKIE = 'zegel_rs';
/** How long a browser session lasts (absolute, from its start). */
export const SESSION_TTL_MS = 12 * 3600e3;

const COOKIE_VALUE = /^[A-Za-z0-9_-]{43}$/;

export function hashSessionId(value: string): string {
  return crypto.createHash('sha256').update(value, 'utf8').digest('hex');
}

export interface ReaderSession extends SessionRow {
  /** The cookie value; only set for a session made by this request. */
  fresh?: string;
}

export class Sessions {
  readonly #links: LinkStore;
  readonly #clock: Clock;

  constructor(links: LinkStore, clock: Clock) {
    this.#links = links;
    this.#clock = clock;
  }

  /** The live session the cookie names for this link, or undefined. */
  find(cookie: string | undefined, linkId: string): SessionRow | undefined {
    if (!cookie || !COOKIE_VALUE.test(cookie)) return undefined;
    const row = this.#links.session(hashSessionId(cookie));
    if (!row || row.linkId !== linkId || row.expiresAt <= this.#clock.now()) return undefined;
    return row;
  }

  /** The cookie's session for this link, or a new one (whose value the caller sets as the cookie). */
  findOrCreate(cookie: string | undefined, linkId: string): ReaderSession {
    const existing = this.find(cookie, linkId);
    if (existing) return existing;
    const value = crypto.randomBytes(32).toString('base64url');
    const now = this.#clock.now();
    const idHash = hashSessionId(value);
    this.#links.createSession(idHash, linkId, now, now + SESSION_TTL_MS);
    return { idHash, linkId, createdAt: now, verifiedAt: undefined, expiresAt: now + SESSION_TTL_MS, fresh: value };
  }
}
