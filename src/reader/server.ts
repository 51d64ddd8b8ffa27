import fastifyCookie from '@fastify/cookie';
import Fastify, { type FastifyError, type FastifyInstance, type FastifyReply } from 'fastify';
import type { Clock } from '../clock.js';
import type { Config } from '../config/schema.js';
import type { Logger } from '../log.js';
import type { BlobRepository } from '../store/blobs.js';
import { LinkAccess } from '../secure/access.js';
import type { SecureReader } from '../secure/index.js';
import type { LinkView } from '../secure/links.js';
import { Refusal } from '../secure/refusal.js';
import { ReplyDesk } from '../secure/reply-desk.js';
import type { ReplyMailer } from '../secure/reply-mail.js';
import { ReaderSessions } from '../secure/sessions.js';
import type { SmsDriver } from '../secure/sms.js';
import { StatusPage } from '../secure/status-page.js';
import type { StatusService } from '../secure/status.js';
import type { ApiError, Organisation } from './api.js';
import { apiRoutes } from './routes/api.js';
import { ApiFailure, refusalAnswer } from './routes/errors.js';
import { pageRoutes } from './routes/pages.js';
import { replyRoutes, uploadsDir } from './routes/reply.js';
import { statusRoutes } from './routes/status.js';
import { SessionCookie } from './session-cookie.js';
import { RATE_LIMIT_PAGE_CSP, rateLimitPage } from './rate-limit-page.js';
import { RateLimited, registerRateLimits, type RateLimitStore } from './rate-limit.js';

/** The link as the reader sees it (src/secure/links.ts). */
export type LinkRow = LinkView;
export type { SmsDriver } from '../secure/sms.js';

export interface ReaderDeps {
  /** Its slice of the configuration. */
  config: Pick<Config, 'data' | 'organisation' | 'reader' | 'verification'>;
  /** The secure-delivery domain (src/secure/): links, sessions, codes, replies, and the reader's events. */
  secure: SecureReader;
  clock: Clock;
  log: Logger;
  /** The relay secret: key of the one-time code HMACs. */
  secret: Buffer;
  blobs: BlobRepository;
  mailer: {
    sendCode(link: LinkRow, code: string, expiresAt: number): Promise<void>;
    notifyForgot(link: LinkRow, sender: string): Promise<void>;
  };
  sms: SmsDriver;
  /** argon2id hashes for the recipient: the address's first, then its @domain's. */
  accessCodes: (address: string) => Promise<string[]>;
  /** The sender's status page (/s/:id and /api/status/…); absent: not served. */
  status?: StatusService | undefined;
  /** After a passed check, before the link's open times are set (first-open mail to the sender). */
  onVerified?: ((link: LinkRow) => Promise<void>) | undefined;
  /** The built page bundle (dist/reader): index.html, reader.js, reader.css … */
  assetsDir: string;
  /** Queues a recipient's reply to the sender (src/secure/reply-mail.ts); without it replies answer 503. */
  replyMailer?: ReplyMailer;
  /** The rate limits' store (the @fastify/rate-limit store contract); absent: the plugin's in-memory store. */
  rateLimitStore?: RateLimitStore;
}

export interface RunningReader {
  url: string;
  close(): Promise<void>;
  app: FastifyInstance;
}

/** JSON bodies of the API are small: a code at most. */
const BODY_LIMIT = 4096;

/**
 * Content-Security-Policy of every answer. The page renders sanitised HTML
 * bodies in a sandboxed iframe (srcdoc or a blob: URL), hence frame-src and
 * child-src blob:/data:; images may come from https (remote images in mail
 * bodies are the page's decision) and blob:/data: (inline parts).
 */
export const CONTENT_SECURITY_POLICY =
  "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data: blob: https:; connect-src 'self'; " +
  "frame-src 'self' blob: data:; child-src blob: data:; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/** HSTS of every answer when publicUrl is https: one year. */
export const STRICT_TRANSPORT_SECURITY = 'max-age=31536000';

/** The headers every answer of the reader carries, also the router's own refusals. */
function securityHeaders(reply: FastifyReply, https: boolean, url: string): void {
  reply.header('content-security-policy', CONTENT_SECURITY_POLICY);
  reply.header('referrer-policy', 'no-referrer');
  reply.header('x-content-type-options', 'nosniff');
  reply.header('x-frame-options', 'DENY');
  reply.header('cross-origin-opener-policy', 'same-origin');
  if (https) reply.header('strict-transport-security', STRICT_TRANSPORT_SECURITY);
  if (url.startsWith('/api/')) reply.header('cache-control', 'no-store');
}

/** True for localhost, 127.0.0.0/8 and ::1 (URL.hostname form). */
export function isLoopbackHost(hostname: string): boolean {
  const host = hostname.replace(/^\[|\]$/g, '').toLowerCase();
  return host === 'localhost' || host.endsWith('.localhost') || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host) || host === '::1';
}

/**
 * The reader's HTTP server (contract: src/reader/api.ts). Fastify's own
 * logger is off; the reader logs through `deps.log` without codes or keys.
 * The client address is the socket's peer, or what X-Forwarded-For says when
 * the peer is one of `reader.trustedProxies`.
 */
export async function startReader(deps: ReaderDeps): Promise<RunningReader> {
  const log = deps.log.child({ component: 'reader' });
  const { trustedProxies, publicUrl } = deps.config.reader;
  const publicURL = new URL(publicUrl);
  const https = publicURL.protocol === 'https:';
  const app = Fastify({
    logger: false,
    bodyLimit: BODY_LIMIT,
    trustProxy: trustedProxies.length ? trustedProxies : false,
    return503OnClosing: true,
    // a URL the router cannot take (bad percent-encoding, a parameter over
    // maxParamLength) is answered before any hook runs: give it the same
    // headers as every other answer, and do not echo the path back
    frameworkErrors: (err, request, raw) => {
      const reply = raw as FastifyReply;
      securityHeaders(reply, https, request.url);
      const status = err.statusCode === 414 ? 414 : 400;
      if (request.url.startsWith('/api/')) return reply.code(status).send({ error: 'bad-request' } satisfies ApiError);
      return reply.code(status).type('text/plain; charset=utf-8').send(status === 414 ? 'Address too long / Adres te lang\n' : 'Bad address / Ongeldig adres\n');
    },
  });
  await app.register(fastifyCookie);
  if (!https && !isLoopbackHost(publicURL.hostname)) {
    log.warn({ publicUrl }, 'reader: publicUrl is plain http on a non-loopback address: links, codes and cookies travel unencrypted and browsers refuse WebCrypto; use https');
  }

  // JSON only, and an empty body counts as {} (POST /open and /code carry none)
  app.removeContentTypeParser(['application/json', 'text/plain']);
  app.addContentTypeParser('application/json', { parseAs: 'string', bodyLimit: BODY_LIMIT }, (_request, body, done) => {
    const text = (body as string).trim();
    if (!text) return done(null, undefined);
    try {
      done(null, JSON.parse(text));
    } catch {
      done(new ApiFailure(400, { error: 'bad-request' }), undefined);
    }
  });

  app.addHook('onRequest', async (request, reply) => {
    securityHeaders(reply, https, request.url);
    // one CSRF rule for the reader and the status page: every write carries the header a
    // cross-site form cannot set, and a browser that says the call is cross-site is refused
    if (request.method !== 'GET' && request.method !== 'HEAD') {
      if (request.headers['x-zegel-reader'] !== '1' || request.headers['sec-fetch-site'] === 'cross-site') {
        throw new ApiFailure(403, { error: 'csrf' });
      }
    }
  });

  app.setErrorHandler((thrown: FastifyError | ApiFailure | RateLimited | Refusal, request, reply) => {
    // the secure domain's refusals get their HTTP answer here (src/reader/routes/errors.ts)
    const err = thrown instanceof Refusal ? refusalAnswer(thrown) : thrown;
    if (err instanceof RateLimited) {
      reply.code(429).header('retry-after', String(err.retryAfter)).header('cache-control', 'no-store');
      if (request.url.startsWith('/api/')) return reply.send({ error: 'rate-limited', retryAfter: err.retryAfter } satisfies ApiError);
      return reply
        .header('content-security-policy', RATE_LIMIT_PAGE_CSP)
        .type('text/html; charset=utf-8')
        .send(rateLimitPage(err.retryAfter, request.headers['accept-language']));
    }
    if (err instanceof ApiFailure) return reply.code(err.status).send(err.body);
    const status = typeof err.statusCode === 'number' && err.statusCode >= 400 && err.statusCode < 500 ? err.statusCode : 500;
    if (status === 500) log.error({ err: { name: err.name, code: err.code }, method: request.method, route: request.routeOptions.url }, 'reader: request failed');
    const body: ApiError = { error: 'bad-request' };
    return reply.code(status).send(body);
  });

  app.setNotFoundHandler((request, reply) => {
    if (request.url.startsWith('/api/')) return reply.code(404).send({ error: 'unknown-link' } satisfies ApiError);
    return reply.code(404).type('text/plain; charset=utf-8').send('Not found\n');
  });

  // the domain objects the route plugins call (src/secure/); the plugins share only what is registered
  // above on this root instance: the cookie parser, the JSON parser, the headers and CSRF hook, the error
  // and not-found handlers, and the rate-limit plugin whose per-route hooks they get as `limits`
  const { config, clock } = deps;
  const links = deps.secure.links;
  const cookie = new SessionCookie(https);
  const access = new LinkAccess({
    links,
    sessions: new ReaderSessions(links, clock, deps.secret),
    clock,
    config,
    log,
    secret: deps.secret,
    blobs: deps.blobs,
    mailer: deps.mailer,
    sms: deps.sms,
    accessCodes: deps.accessCodes,
    onVerified: deps.onVerified,
  });
  const org = config.organisation;
  const organisation: Organisation = {
    name: org.name,
    ...(org.logoUrl ? { logoUrl: org.logoUrl } : {}),
    ...(org.colour ? { colour: org.colour } : {}),
    ...(org.helpText ? { helpText: org.helpText } : {}),
  };
  const limits = await registerRateLimits(app, config, log, deps.rateLimitStore);
  await app.register(apiRoutes, { access, cookie, limits, organisation });
  const desk = new ReplyDesk({ links, replies: deps.secure.replies, blobs: deps.blobs, clock, log, limit: config.reader.replyLimit, mailer: deps.replyMailer });
  await app.register(replyRoutes, { access, desk, cookie, limits, log, maxBytes: config.reader.replyMaxSize, uploads: uploadsDir(config.data.dir) });
  await app.register(pageRoutes, { assetsDir: deps.assetsDir, limits });
  if (deps.status) await app.register(statusRoutes, { page: new StatusPage(deps.status, clock, organisation), limits });

  const { host, port } = deps.config.reader.listen;
  await app.listen({ host, port });
  const address = app.server.address();
  const bound = address && typeof address === 'object' ? address.port : port;
  const url = `http://${host.includes(':') ? `[${host}]` : host}:${bound}`;
  log.info({ url, publicUrl: deps.config.reader.publicUrl }, 'reader: listening');
  return {
    url,
    app,
    close: async () => {
      // a connection whose response (a blob stream) was still finishing when close began is not
      // closed as idle by Fastify and would wait out keepAliveTimeout; close those once idle
      const idle = setInterval(() => app.server.closeIdleConnections(), 50);
      try {
        await app.close();
      } finally {
        clearInterval(idle);
      }
    },
  };
}
