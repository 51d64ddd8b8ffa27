/**
 * Why the secure-delivery domain refuses what a reader or status-page
 * visitor asked. Stable codes (the reader contract's error codes,
 * src/reader/api.ts); the HTTP layer maps each to its status and body
 * (src/reader/routes/errors.ts). No HTTP here.
 */
export type RefusalCode =
  | 'unknown-link'
  | 'revoked'
  | 'expired'
  | 'locked'
  | 'not-verified'
  | 'wrong-code'
  | 'no-code'
  | 'bad-request'
  | 'too-many-codes'
  | 'too-many-replies'
  | 'not-active'
  /** A code or notice could not be handed to the mailer or the SMS gateway. */
  | 'unavailable';

export interface RefusalDetail {
  /** wrong-code: tries left before the link locks. */
  attemptsLeft?: number;
  /** locked: when the lock ends (ms). */
  lockedUntil?: number;
  /** too-many-codes, too-many-replies: seconds until a new try may succeed. */
  retryAfter?: number;
}

export class Refusal extends Error {
  readonly code: RefusalCode;
  readonly detail: RefusalDetail;

  constructor(code: RefusalCode, detail: RefusalDetail = {}) {
    super(code);
    this.name = 'Refusal';
    this.code = code;
    this.detail = detail;
  }
}
