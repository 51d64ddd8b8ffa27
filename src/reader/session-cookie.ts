import type { FastifyReply, FastifyRequest } from 'fastify';
import type { Visitor } from '../secure/access.js';

/**
 * The cookie that carries a reader session (the session itself is
 * src/secure/sessions.ts): `__Host-zegel_rs` (Secure, Path=/, no Domain)
 * with an https publicUrl, otherwise `zegel_rs`; always HttpOnly and
 * SameSite=Strict.
 */

export const SESSION_COOKIE = 'zegel_rs';
export const HOST_SESSION_COOKIE = `__Host-${SESSION_COOKIE}`;

export class SessionCookie {
  readonly name: string;
  readonly #secure: boolean;

  constructor(secure: boolean) {
    this.#secure = secure;
    this.name = secure ? HOST_SESSION_COOKIE : SESSION_COOKIE;
  }

  read(request: FastifyRequest): string | undefined {
    return request.cookies[this.name];
  }

  set(reply: FastifyReply, value: string): void {
    reply.setCookie(this.name, value, { httpOnly: true, sameSite: 'strict', path: '/', secure: this.#secure });
  }

  /** The request as the secure domain sees its visitor: the session value, the client address, and how a new value reaches the browser. */
  visitor(request: FastifyRequest, reply: FastifyReply): Visitor {
    return { session: this.read(request), clientIp: request.ip, issue: (value) => this.set(reply, value) };
  }
}
