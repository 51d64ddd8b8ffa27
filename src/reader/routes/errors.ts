import type { ApiError } from '../api.js';
import type { Refusal, RefusalCode } from '../../secure/refusal.js';

/** An answer of the API that is not 2xx: thrown by handlers, sent by the server's error handler. */
export class ApiFailure extends Error {
  readonly status: number;
  readonly body: ApiError;

  constructor(status: number, body: ApiError) {
    super(body.error);
    this.name = 'ApiFailure';
    this.status = status;
    this.body = body;
  }
}

export const unknownLink = (): ApiFailure => new ApiFailure(404, { error: 'unknown-link' });
export const badRequest = (): ApiFailure => new ApiFailure(400, { error: 'bad-request' });

/** The HTTP status of each refusal of the secure-delivery domain (src/secure/refusal.ts). */
const STATUS: Record<RefusalCode, number> = {
  'unknown-link': 404,
  revoked: 410,
  expired: 410,
  'not-active': 410,
  locked: 423,
  'not-verified': 403,
  'wrong-code': 401,
  'no-code': 400,
  'bad-request': 400,
  'too-many-codes': 429,
  'too-many-replies': 429,
  unavailable: 503,
};

/**
 * The answer to a refusal: its status and `{ error, …detail }`. `unavailable`
 * (a code or notice could not be handed to the mailer or the SMS gateway) has
 * no error code in api.ts: it answers 503 with `bad-request` (the page shows
 * a generic "try again later").
 */
export function refusalAnswer(refusal: Refusal): ApiFailure {
  const { code, detail } = refusal;
  const body = { error: code === 'unavailable' ? 'bad-request' : code } as ApiError;
  if (detail.attemptsLeft !== undefined) body.attemptsLeft = detail.attemptsLeft;
  if (detail.lockedUntil !== undefined) body.lockedUntil = new Date(detail.lockedUntil).toISOString();
  if (detail.retryAfter !== undefined) body.retryAfter = detail.retryAfter;
  return new ApiFailure(STATUS[code], body);
}
