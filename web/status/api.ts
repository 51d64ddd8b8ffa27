/**
 * Fetch wrappers for the status API (src/reader/api.ts, "status page"). Every
 * request carries `X-Zegel-Reader: 1` and the status token, never the fragment.
 */
import type { StatusApiError, StatusKeyResponse, StatusResendRequest, StatusResendResponse, StatusResponse, StatusRevokeRequest } from '../../src/reader/api.js';

export class StatusFailure extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    /** rate-limited: seconds to wait. */
    readonly retryAfter?: number,
  ) {
    super(`status API: ${status} ${code}`);
  }
}

export class StatusApi {
  constructor(
    readonly statusId: string,
    readonly token: string,
  ) {}

  async #post<T>(rest: string, body: unknown = {}): Promise<T> {
    let res: Response;
    try {
      res = await fetch(`/api/status/${encodeURIComponent(this.statusId)}${rest}`, {
        method: 'POST',
        headers: { 'X-Zegel-Reader': '1', 'X-Zegel-Status': this.token, 'Content-Type': 'application/json', Accept: 'application/json' },
        body: JSON.stringify(body),
        credentials: 'same-origin',
        cache: 'no-store',
        redirect: 'error',
        referrerPolicy: 'no-referrer',
      });
    } catch {
      throw new StatusFailure(0, 'network');
    }
    let json: unknown = null;
    try {
      json = await res.json();
    } catch {
      // not JSON
    }
    if (!res.ok) {
      const body = json as StatusApiError | null;
      throw new StatusFailure(res.status, body?.error ?? 'server', typeof body?.retryAfter === 'number' ? body.retryAfter : undefined);
    }
    return json as T;
  }

  overview(): Promise<StatusResponse> {
    return this.#post('');
  }

  key(): Promise<StatusKeyResponse> {
    return this.#post('/key');
  }

  revoke(request: StatusRevokeRequest): Promise<StatusResponse> {
    return this.#post('/revoke', request);
  }

  resend(request: StatusResendRequest): Promise<StatusResendResponse> {
    return this.#post('/resend', request);
  }
}
