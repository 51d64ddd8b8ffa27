import type { ApiError } from '../api.js';

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
/**
 * A code could not be handed to the mailer or the SMS gateway. api.ts has no
 * error code for that; the answer is 503 with `bad-request` (the page shows a
 * generic "try again later"), and the code that was made is void.
 */
export const unavailable = (): ApiFailure => new ApiFailure(503, { error: 'bad-request' });
