/**
 * Fetch wrappers for the reader API (src/reader/api.ts). Every request carries
 * `X-Zegel-Reader: 1` and only same-origin credentials (the session cookie).
 * Nothing here ever sees the link's fragment.
 */
import type {
  ApiError,
  ApiErrorCode,
  CodeSentResponse,
  ForgotResponse,
  OpenResponse,
  RepliesResponse,
  ReplySentResponse,
  VerifyRequest,
  VerifyResponse,
} from '../src/reader/api.js';

/** A failed call: `code` is the API's error code, or `network`/`server` when there was none. */
export class ApiFailure extends Error {
  constructor(
    readonly status: number,
    readonly code: ApiErrorCode | 'network' | 'server',
    readonly detail: ApiError | null,
  ) {
    super(`reader API: ${status} ${code}`);
  }
}

const HEADERS = { 'X-Zegel-Reader': '1' };

function linkPath(linkId: string, rest: string): string {
  return `/api/links/${encodeURIComponent(linkId)}/${rest}`;
}

async function failure(res: Response): Promise<ApiFailure> {
  let detail: ApiError | null = null;
  try {
    const body: unknown = await res.json();
    if (body && typeof body === 'object' && typeof (body as ApiError).error === 'string') detail = body as ApiError;
  } catch {
    // not JSON: a proxy's error page
  }
  return new ApiFailure(res.status, detail?.error ?? 'server', detail);
}

async function request(path: string, init: RequestInit): Promise<Response> {
  let res: Response;
  try {
    res = await fetch(path, {
      ...init,
      credentials: 'same-origin',
      cache: 'no-store',
      redirect: 'error',
      referrerPolicy: 'no-referrer',
    });
  } catch {
    throw new ApiFailure(0, 'network', null);
  }
  if (!res.ok) throw await failure(res);
  return res;
}

async function post<T>(linkId: string, rest: string, body: unknown = {}): Promise<T> {
  const res = await request(linkPath(linkId, rest), {
    method: 'POST',
    headers: { ...HEADERS, 'Content-Type': 'application/json', Accept: 'application/json' },
    body: JSON.stringify(body),
  });
  try {
    return (await res.json()) as T;
  } catch {
    throw new ApiFailure(res.status, 'server', null);
  }
}

export function open(linkId: string): Promise<OpenResponse> {
  return post<OpenResponse>(linkId, 'open');
}

export function sendCode(linkId: string): Promise<CodeSentResponse> {
  return post<CodeSentResponse>(linkId, 'code');
}

export function verify(linkId: string, code?: string): Promise<VerifyResponse> {
  const body: VerifyRequest = code === undefined ? {} : { code };
  return post<VerifyResponse>(linkId, 'verify', body);
}

export function forgot(linkId: string): Promise<ForgotResponse> {
  return post<ForgotResponse>(linkId, 'forgot');
}

/** The ciphertext of one blob (only for a verified session of this link). */
export async function blob(linkId: string, blobId: string): Promise<Uint8Array> {
  const res = await request(linkPath(linkId, `blobs/${encodeURIComponent(blobId)}`), {
    method: 'GET',
    headers: { ...HEADERS, Accept: 'application/octet-stream' },
  });
  try {
    return new Uint8Array(await res.arrayBuffer());
  } catch {
    throw new ApiFailure(0, 'network', null);
  }
}

/** The recipient's own replies on this link and the reply limits (verified session only). */
export async function replies(linkId: string): Promise<RepliesResponse> {
  const res = await request(linkPath(linkId, 'replies'), { method: 'GET', headers: { ...HEADERS, Accept: 'application/json' } });
  try {
    return (await res.json()) as RepliesResponse;
  } catch {
    throw new ApiFailure(res.status, 'server', null);
  }
}

/** The ciphertext of one reply copy. */
export async function replyBlob(linkId: string, replyId: string): Promise<Uint8Array> {
  const res = await request(linkPath(linkId, `replies/${encodeURIComponent(replyId)}`), {
    method: 'GET',
    headers: { ...HEADERS, Accept: 'application/octet-stream' },
  });
  try {
    return new Uint8Array(await res.arrayBuffer());
  } catch {
    throw new ApiFailure(0, 'network', null);
  }
}

/**
 * Sends a reply: multipart/form-data with `subject`, `text`, the encrypted
 * `copy` and the `attachment` files, in that order (the server streams them).
 */
export async function sendReply(
  linkId: string,
  reply: { subject: string; text: string; copy: Uint8Array; attachments: File[] },
): Promise<ReplySentResponse> {
  const form = new FormData();
  form.append('subject', reply.subject);
  form.append('text', reply.text);
  form.append('copy', new Blob([new Uint8Array(reply.copy)], { type: 'application/octet-stream' }), 'copy.pgp');
  for (const file of reply.attachments) form.append('attachment', file, file.name);
  const res = await request(linkPath(linkId, 'replies'), { method: 'POST', headers: { ...HEADERS, Accept: 'application/json' }, body: form });
  try {
    return (await res.json()) as ReplySentResponse;
  } catch {
    throw new ApiFailure(res.status, 'server', null);
  }
}
