/**
 * The relay's shared vocabulary: the words that the configuration (zod
 * schema), the CLI's choices, the recipient directory, the pipeline and the
 * reader's JSON contract must spell the same way. Each list is the one source
 * of its type; add a word here and every consumer's checks follow.
 *
 * No imports and no Node APIs: the browser code (web/) reaches these types
 * through src/reader/api.ts.
 */

/** How a recipient proves who they are before a secure message opens (DESIGN.md, "Verification"). */
export const VERIFICATION_METHODS = ['none', 'access-code', 'email-code', 'sms-code'] as const;
export type VerificationMethod = (typeof VERIFICATION_METHODS)[number];

/** Languages of notifications, receipts, code mails and the reader (templates/*.{nl,en}.*, templates/reader/). */
export const LANGUAGES = ['nl', 'en'] as const;
export type Language = (typeof LANGUAGES)[number];

/**
 * Which transport a deliver job sends spooled bytes by (src/deliver/deliver-job.ts):
 * `target` is `delivery.target`, the next hop for mail leaving the organisation
 * (plain mail, notifications, code mails); `internal` is `delivery.internalTarget`
 * (default: the same as `target`), for mail back to the organisation's own
 * people (receipts, replies, DSNs, postmaster notices).
 */
export const ROUTES = ['target', 'internal'] as const;
export type Route = (typeof ROUTES)[number];

export function isVerificationMethod(value: unknown): value is VerificationMethod {
  return typeof value === 'string' && (VERIFICATION_METHODS as readonly string[]).includes(value);
}

export function isLanguage(value: unknown): value is Language {
  return typeof value === 'string' && (LANGUAGES as readonly string[]).includes(value);
}

export function isRoute(value: unknown): value is Route {
  return typeof value === 'string' && (ROUTES as readonly string[]).includes(value);
}
