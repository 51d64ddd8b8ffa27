/**
 * The reader's HTTP API: the contract between the server (src/reader/server.ts)
 * and the page code (web/). JSON in and out; every POST must carry
 * the header `X-Zegel-Reader: 1` (CSRF: a cross-site form cannot set it, and
 * the session cookie is SameSite=Strict); a request whose Sec-Fetch-Site is
 * `cross-site` is refused too. The same rule covers the status page's calls. The browser session is the cookie
 * `zegel_rs` (HttpOnly, SameSite=Strict, Path=/, Secure when publicUrl is
 * https). The link's #fragment (K_link) is never sent to the server.
 *
 * Routes
 * - `GET  /m/:linkId`                the page shell (the same bytes for every id,
 *                                    known or not); `<noscript>` explains that
 *                                    JavaScript is needed.
 * - `GET  /assets/*`                 bundled page code and styles (no third-party hosts).
 * - `POST /api/links/:linkId/open`   starts or resumes the browser session → OpenResponse
 * - `POST /api/links/:linkId/code`   mails or texts a fresh one-time code → CodeSentResponse
 * - `POST /api/links/:linkId/verify` VerifyRequest → VerifyResponse (releases W and K_srv)
 * - `POST /api/links/:linkId/forgot` access code forgotten: tells the sender → ForgotResponse
 * - `GET  /api/links/:linkId/blobs/:blobId` ciphertext (application/octet-stream),
 *                                    only for a verified session of that link
 *
 * - `GET  /api/links/:linkId/replies`  the recipient's own replies on this link → RepliesResponse
 *                                    (verified session only; src/reader/routes/reply.ts)
 * - `POST /api/links/:linkId/replies`  multipart/form-data (streamed): fields `subject`
 *                                    (the original's, as the page decrypted it) and `text`,
 *                                    file parts `copy` (the reply as ReplyCopy, encrypted
 *                                    in the browser under K like every blob) and
 *                                    `attachment` (0..n, plaintext, for the mail to the
 *                                    sender) → ReplySentResponse. Verified session only;
 *                                    413 too-large (with `limit`), 415 blocked-type
 *                                    (with `name`).
 * - `GET  /api/links/:linkId/replies/:replyId` the ciphertext of one reply copy.
 *
 * Errors are `ApiError` with these statuses: 404 unknown-link (also for a link
 * id that never existed: the same answer), 401 wrong-code, 400 no-code /
 * bad-request, 403 not-verified / csrf, 410 revoked / expired, 423 locked,
 * 429 too-many-codes / too-many-replies / rate-limited (with `retryAfter` and
 * the header Retry-After; a page load that is rate-limited gets a 429 page in
 * Dutch and English instead).
 *
 * Sessions: `POST /open` and `/code` write no session row. Before a check
 * passes the cookie is a stateless pre-session (signed with the relay secret,
 * bound to the link, 12 hours); when the check passes the server stores a new
 * session under a new cookie value (the id rotates). With an https publicUrl
 * the cookie is `__Host-zegel_rs` and answers carry Strict-Transport-Security.
 */

import type { Language, VerificationMethod } from '../vocabulary.js';

export type { Language };
/** A link's verification method: the vocabulary's list (src/vocabulary.ts). */
export type Method = VerificationMethod;
export type LinkState = 'pending-check' | 'verified' | 'locked' | 'revoked' | 'expired';

export interface Organisation {
  name: string;
  logoUrl?: string;
  colour?: string;
  helpText?: { nl?: string; en?: string };
}

export interface OpenResponse {
  state: LinkState;
  method: Method;
  /** Where a one-time code goes, masked: `j•••@voorbeeld.nl`, `+31 6 •••• ••78`. */
  destination?: string;
  /** ISO time; with state `locked`. */
  lockedUntil?: string;
  /** The recipient's language from the directory or notification settings. */
  language: Language;
  organisation: Organisation;
}

export interface CodeSentResponse {
  sent: true;
  destination: string;
  /** ISO time the code stops working. */
  expiresAt: string;
}

export interface VerifyRequest {
  /** The one-time code or access code; omitted for method `none` or an already verified session. */
  code?: string;
}

export interface VerifyResponse {
  state: 'verified';
  /** Everything the browser needs besides the fragment, all base64url. */
  key: { secureId: string; linkId: string; wrap: string; kSrv: string };
  /** Blob id of the encrypted SecureContent (src/crypto/content.ts). */
  body: string;
}

export interface ForgotResponse {
  notified: true;
}

export type ApiErrorCode =
  | 'unknown-link'
  | 'wrong-code'
  | 'no-code'
  | 'bad-request'
  | 'not-verified'
  | 'csrf'
  | 'revoked'
  | 'expired'
  | 'locked'
  | 'too-many-codes'
  // replies (POST /api/links/:linkId/replies)
  | 'too-large'
  | 'blocked-type'
  | 'too-many-replies'
  // every route: reader.rateLimit (with retryAfter and the header Retry-After)
  | 'rate-limited';

export interface ApiError {
  error: ApiErrorCode;
  /** wrong-code: tries left before the link locks. */
  attemptsLeft?: number;
  /** locked: ISO time the lock ends. */
  lockedUntil?: string;
  /** too-many-codes, too-many-replies, rate-limited: seconds until a new try may succeed. */
  retryAfter?: number;
  /** too-large: the reply limit in bytes (text and attachments together). */
  limit?: number;
  /** blocked-type: the file name that was refused. */
  name?: string;
}

/** One reply the recipient sent on this link; its content is the blob (a ReplyCopy encrypted under K). */
export interface ReplyEntry {
  id: string;
  /** ISO time. */
  createdAt: string;
}

export interface RepliesResponse {
  /** reader.replyMaxSize: text and attachments together, in bytes. */
  maxBytes: number;
  /** File name extensions the server refuses (lower case, with the dot). */
  blockedExtensions: string[];
  /** Oldest first. */
  replies: ReplyEntry[];
}

export interface ReplySentResponse {
  reply: ReplyEntry;
}

/**
 * The recipient's own copy of a reply, as the page encrypts it under K
 * (JSON, UTF-8; the blob format of src/crypto/payload.ts). Attachments are
 * listed by name and size; their bytes went to the sender only.
 */
export interface ReplyCopy {
  v: 1;
  subject: string;
  text: string;
  /** ISO time the page sent it. */
  date: string;
  attachments: Array<{ name: string; contentType: string; size: number }>;
}

/*
 * The sender's status page (src/reader/routes/status.ts, web/status/).
 *
 * - `GET  /s/:statusId`                      the status page shell (the same bytes for every id)
 * - `POST /api/status/:statusId`             → StatusResponse
 * - `POST /api/status/:statusId/key`         → StatusKeyResponse (W_s and K_srv_s)
 * - `POST /api/status/:statusId/revoke`      StatusRevokeRequest → StatusResponse
 * - `POST /api/status/:statusId/resend`      StatusResendRequest → StatusResendResponse
 *
 * Every request carries `X-Zegel-Reader: 1` and the status token in the header
 * `X-Zegel-Status` (base64url of HKDF-SHA256(K_link_s, "zegel/v1/status" ‖ statusId),
 * src/secure/status-keys.ts); the fragment K_link_s never leaves the browser.
 * An unknown status id and a wrong token get the same 404 `unknown-link`.
 * Errors are `StatusApiError`.
 */

export const STATUS_TOKEN_HEADER = 'x-zegel-status';

export type NotificationState = 'pending' | 'delivered' | 'failed';

export interface StatusRecipient {
  /** The recipient's current link (a resend replaces it). */
  linkId: string;
  address: string;
  method: Method;
  language: Language;
  /** active | revoked | expired */
  state: 'active' | 'revoked' | 'expired';
  notification: NotificationState;
  /** ISO times over all of the recipient's links. */
  firstOpenedAt?: string;
  lastOpenedAt?: string;
  downloads: number;
  lastDownloadAt?: string;
  replies: number;
  lastReplyAt?: string;
  /** ISO: a scheduled revocation of this recipient's link. */
  revokeAt?: string;
  /** How many times a fresh link was sent. */
  resent: number;
}

export interface StatusResponse {
  secureId: string;
  /** ISO */
  sentAt: string;
  expiresAt: string;
  /** active | revoked | expired | purged */
  state: string;
  revokeAt?: string;
  /** The sender's language (notification.language.default). */
  language: Language;
  organisation: Organisation;
  recipients: StatusRecipient[];
}

export interface StatusKeyResponse {
  secureId: string;
  statusId: string;
  /** W_s and K_srv_s, base64url. */
  wrap: string;
  kSrv: string;
}

export interface StatusRevokeRequest {
  /** One recipient's current link; omitted: every recipient. */
  linkId?: string;
  /** ISO moment in the future; omitted: now. */
  at?: string;
}

export interface StatusResendRequest {
  /** The recipient's current link, which the new one replaces. */
  linkId: string;
  /** All base64url: a fresh 128-bit id, W' (60 bytes), K_srv' and K_link' (32 bytes each). */
  newLinkId: string;
  wrap: string;
  kSrv: string;
  kLink: string;
}

export interface StatusResendResponse {
  linkId: string;
}

export type StatusApiErrorCode = 'unknown-link' | 'bad-request' | 'csrf' | 'not-active' | 'unavailable' | 'rate-limited';

export interface StatusApiError {
  error: StatusApiErrorCode;
  /** rate-limited: seconds until a new try may succeed. */
  retryAfter?: number;
}
