import fastifyCookie from '@fastify/cookie';
import Fastify, { type FastifyError, type FastifyInstance } from 'fastify';
import type { Clock } from '../clock.js';
import type { Config } from '../config/schema.js';
import type { Logger } from '../log.js';
import type { BlobStore } from '../store/blobs.js';
import type { Db } from '../store/db.js';
import type { EventInput } from '../store/messages.js';
import type { ApiError } from './api.js';
import { LinkStore, type LinkRow } from './links.js';
import { registerApi } from './routes/api.js';
import { ApiFailure } from './routes/errors.js';
import { registerPages } from './routes/pages.js';
import { registerStatus } from './routes/status.js';
import type { StatusService } from './status-service.js';
import { registerReply } from './routes/reply.js';
import type { ReplyMailer } from './reply-mail.js';
import { Sessions } from './sessions.js';
import type { SmsDriver } from './sms.js';

export type { LinkRow } from './links.js';
export type { SmsDriver } from './sms.js';

export interface ReaderDeps {
  config: Config;
  db: Db;
  clock: Clock;
  log: Logger;
  /** The relay secret: key of the one-time code HMACs. */
  secret: Buffer;
  blobs: BlobStore;
  /** Appends to the append-only event table. */
  events: (e: EventInput) => Promise<void>;
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
  /** Queues a recipient's reply to the sender (src/reader/reply-mail.ts); without it replies answer 503. */
  replyMailer?: ReplyMailer;
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

/**
 * The reader's HTTP server (contract: src/reader/api.ts). Fastify's own
 * logger is off; the reader logs through `deps.log` without codes or keys.
 * Client IPs are the socket's peer (no proxy headers are trusted).
 */
export async function startReader(deps: ReaderDeps): Promise<RunningReader> {
  const log = deps.log.child({ component: 'reader' });
  const app = Fastify({ logger: false, bodyLimit: BODY_LIMIT, trustProxy: false, return503OnClosing: true });
  await app.register(fastifyCookie);

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
    reply.header('content-security-policy', CONTENT_SECURITY_POLICY);
    reply.header('referrer-policy', 'no-referrer');
    reply.header('x-content-type-options', 'nosniff');
    reply.header('x-frame-options', 'DENY');
    reply.header('cross-origin-opener-policy', 'same-origin');
    if (request.url.startsWith('/api/')) reply.header('cache-control', 'no-store');
    if (request.method !== 'GET' && request.method !== 'HEAD' && request.headers['x-zegel-reader'] !== '1') {
      throw new ApiFailure(403, { error: 'csrf' });
    }
  });

  app.setErrorHandler((err: FastifyError | ApiFailure, request, reply) => {
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

  const links = new LinkStore(deps.db);
  registerApi(app, {
    deps,
    log,
    links,
    sessions: new Sessions(links, deps.clock),
    secureCookies: new URL(deps.config.reader.publicUrl).protocol === 'https:',
  });
  await registerReply(app, { deps, log });
  registerPages(app, deps.assetsDir);
  if (deps.status) registerStatus(app, { deps, log, status: deps.status });

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
