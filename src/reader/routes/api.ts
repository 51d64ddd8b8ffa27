import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { z } from 'zod';
import type { Logger } from '../../log.js';
import type { EventInput, EventType } from '../../store/events.js';
import type { CodeSentResponse, ForgotResponse, OpenResponse, VerifyResponse } from '../api.js';
import {
  accessCodeMatches,
  CODE_WINDOW_MS,
  codeMatches,
  codeHash,
  codeRetryAfter,
  FORGOT_INTERVAL_MS,
  linkStatus,
  maskEmail,
  newCode,
  normaliseCode,
} from '../../secure/checks.js';
import type { LinkService, LinkView as LinkRow } from '../../secure/links.js';
import type { ReaderDeps } from '../server.js';
import type { RateLimits } from '../rate-limit.js';
import type { ReaderSession, Sessions } from '../sessions.js';
import { maskPhone, smsText } from '../sms.js';
import { ApiFailure, badRequest, unavailable, unknownLink } from './errors.js';

/** Link and secure-message ids: 128 bits as base64url. */
const LINK_ID = /^[A-Za-z0-9_-]{22}$/;
const BLOB_ID = /^[A-Za-z0-9_-]{1,64}$/;

const verifyBody = z
  .object({ code: z.string().max(256).optional() })
  .optional()
  .transform((body) => body ?? {});

export interface ApiContext {
  deps: ReaderDeps;
  log: Logger;
  links: LinkService;
  sessions: Sessions;
  limits: RateLimits;
}

export function registerApi(app: FastifyInstance, ctx: ApiContext): void {
  const { deps, links, sessions, log, limits } = ctx;
  const api = { onRequest: limits.hook('api', 'linkId') };
  const check = { onRequest: limits.hook('checks', 'linkId') };
  const { clock, config } = deps;
  const ttl = config.verification.ttl;
  /** Forgot-code notices sent by this process (the event table covers restarts). */
  const forgotSent = new Map<string, number>();

  /** The link of the request, or the 404/410 answer; `locked` is left to the route. */
  async function load(request: FastifyRequest): Promise<{ link: LinkRow; lockedUntil: number | undefined }> {
    const { linkId } = request.params as { linkId: string };
    if (!LINK_ID.test(linkId)) throw unknownLink();
    const link = await links.link(linkId);
    const status = linkStatus(link, clock.now());
    if (!link || status.status === 'unknown') throw unknownLink();
    if (status.status === 'revoked' || status.status === 'expired') throw new ApiFailure(410, { error: status.status });
    return { link, lockedUntil: status.status === 'locked' ? status.until : undefined };
  }

  const lockedFailure = (until: number) => new ApiFailure(423, { error: 'locked', lockedUntil: new Date(until).toISOString() });

  /** The request's session for this link, or a new pre-session: nothing is written for either. */
  async function session(request: FastifyRequest, reply: FastifyReply, link: LinkRow): Promise<ReaderSession> {
    const s = await sessions.findOrStart(sessions.cookie(request), link.id);
    if (s.fresh) sessions.setCookie(reply, s.fresh);
    return s;
  }

  /** Events carry the queue id, recipient, link id and client IP; never codes, keys or content. */
  function event(link: LinkRow, request: FastifyRequest, type: EventType, detail: Record<string, unknown> = {}): Promise<void> {
    const input: EventInput = { messageId: link.queueId, recipient: link.address, type, detail: { linkId: link.id, clientIp: request.ip, ...detail } };
    return links.record(input);
  }

  function destination(link: LinkRow): string | undefined {
    if (link.method === 'email-code') return maskEmail(link.address);
    if (link.method === 'sms-code') return link.phone ? maskPhone(link.phone) : undefined;
    return undefined;
  }

  function keyResponse(link: LinkRow): VerifyResponse {
    // linkStatus refused links without wrap, K_srv or body before this point
    return {
      state: 'verified',
      key: { secureId: link.secureId, linkId: link.id, wrap: link.wrap!.toString('base64url'), kSrv: link.kSrv!.toString('base64url') },
      body: link.bodyBlob!,
    };
  }

  app.post('/api/links/:linkId/open', api, async (request, reply): Promise<OpenResponse> => {
    const { link, lockedUntil } = await load(request);
    const s = await session(request, reply, link);
    const org = config.organisation;
    const response: OpenResponse = {
      state: s.verifiedAt !== undefined ? 'verified' : lockedUntil !== undefined ? 'locked' : 'pending-check',
      method: link.method,
      language: link.language,
      organisation: {
        name: org.name,
        ...(org.logoUrl ? { logoUrl: org.logoUrl } : {}),
        ...(org.colour ? { colour: org.colour } : {}),
        ...(org.helpText ? { helpText: org.helpText } : {}),
      },
    };
    const dest = destination(link);
    if (dest) response.destination = dest;
    if (response.state === 'locked' && lockedUntil !== undefined) response.lockedUntil = new Date(lockedUntil).toISOString();
    return response;
  });

  app.post('/api/links/:linkId/code', check, async (request, reply): Promise<CodeSentResponse> => {
    const { link, lockedUntil } = await load(request);
    if (link.method !== 'email-code' && link.method !== 'sms-code') throw badRequest();
    if (lockedUntil !== undefined) throw lockedFailure(lockedUntil);
    const s = await session(request, reply, link);
    const channel = link.method === 'sms-code' ? 'sms' : 'email';
    if (channel === 'sms' && !link.phone) {
      log.error({ linkId: link.id }, 'reader: sms-code link without a phone number; no code sent');
      throw unavailable();
    }
    const now = clock.now();
    const code = newCode();
    const expiresAt = now + (channel === 'sms' ? ttl.sms : ttl.email);
    const stored = await links.insertCode(
      { linkId: link.id, sessionHash: s.idHash, channel, codeHash: codeHash(deps.secret, link.id, s.idHash, code), createdAt: now, expiresAt },
      now - CODE_WINDOW_MS,
      (recent) => codeRetryAfter(recent, now),
    );
    if ('refused' in stored) throw new ApiFailure(429, { error: 'too-many-codes', retryAfter: stored.refused });
    try {
      if (channel === 'sms') await deps.sms.send(link.phone!, smsText(link.language, config.organisation.name, code, ttl.sms));
      else await deps.mailer.sendCode(link, code, expiresAt);
    } catch (err) {
      await links.voidCode(stored.id);
      // the error text is not logged as is: a gateway or mailer might quote what it was given
      const reason = (err as { code?: unknown }).code ?? (err as Error).name;
      log.warn({ linkId: link.id, channel, reason: String(reason) }, 'reader: code could not be sent; voided');
      throw unavailable();
    }
    await event(link, request, 'code-sent', { channel });
    log.info({ linkId: link.id, channel }, 'reader: code sent');
    return { sent: true, destination: destination(link)!, expiresAt: new Date(expiresAt).toISOString() };
  });

  app.post('/api/links/:linkId/verify', check, async (request, reply): Promise<VerifyResponse> => {
    const parsed = verifyBody.safeParse(request.body);
    if (!parsed.success) throw badRequest();
    const { link, lockedUntil } = await load(request);
    const s = await session(request, reply, link);
    const now = clock.now();
    if (s.verifiedAt !== undefined) {
      // a verified session keeps its key, also while someone else's tries lock the link
      await links.touch(link.id, now);
      return keyResponse(link);
    }
    if (lockedUntil !== undefined) throw lockedFailure(lockedUntil);

    let passed: boolean;
    if (link.method === 'none') {
      passed = true;
    } else {
      const code = parsed.data.code?.trim() ?? '';
      if (!code) throw new ApiFailure(400, { error: 'no-code' });
      // counted before it is checked: concurrent tries never test more than maxAttempts codes
      const attempt = await links.reserveAttempt(link.id);
      if (attempt > ttl.maxAttempts) return lock(link, request, now);
      if (link.method === 'access-code') {
        passed = await accessCodeMatches(await deps.accessCodes(link.address), code);
      } else {
        const typed = normaliseCode(code);
        const match = (await links.liveCodes(link.id, s.idHash, clock.now())).find((c) => codeMatches(c.codeHash, deps.secret, link.id, s.idHash, typed));
        passed = match !== undefined && (await links.useCode(match.id));
      }
      if (!passed) {
        if (attempt >= ttl.maxAttempts) {
          await event(link, request, 'check-failed', { method: link.method, attemptsLeft: 0 });
          return lock(link, request, clock.now());
        }
        const attemptsLeft = ttl.maxAttempts - attempt;
        await event(link, request, 'check-failed', { method: link.method, attemptsLeft });
        log.info({ linkId: link.id, attemptsLeft }, 'reader: check failed');
        throw new ApiFailure(401, { error: 'wrong-code', attemptsLeft });
      }
    }
    await deps.onVerified?.(link);
    // the session id rotates: a value planted or seen before the check is worth nothing after it
    sessions.setCookie(reply, await sessions.verified(s));
    await event(link, request, 'check-passed', { method: link.method });
    log.info({ linkId: link.id, method: link.method }, 'reader: check passed');
    return keyResponse(link);
  });

  async function lock(link: LinkRow, request: FastifyRequest, now: number): Promise<never> {
    const until = now + ttl.lockFor;
    await links.lock(link.id, until);
    await event(link, request, 'locked', { lockedUntil: new Date(until).toISOString() });
    log.warn({ linkId: link.id, lockedUntil: new Date(until).toISOString() }, 'reader: link locked after too many wrong tries');
    throw lockedFailure(until);
  }

  app.post('/api/links/:linkId/forgot', check, async (request): Promise<ForgotResponse> => {
    const { link } = await load(request);
    if (link.method !== 'access-code') throw badRequest();
    const now = clock.now();
    const last = Math.max(forgotSent.get(link.id) ?? -Infinity, (await links.lastForgot(link.queueId, link.id)) ?? -Infinity);
    if (now - last < FORGOT_INTERVAL_MS) return { notified: true };
    forgotSent.set(link.id, now);
    try {
      await deps.mailer.notifyForgot(link, link.sender);
    } catch (err) {
      forgotSent.delete(link.id);
      log.warn({ linkId: link.id, reason: String((err as { code?: unknown }).code ?? (err as Error).name) }, 'reader: forgot-code notice could not be sent');
      throw unavailable();
    }
    await event(link, request, 'forgot-code');
    log.info({ linkId: link.id }, 'reader: sender told about a forgotten access code');
    return { notified: true };
  });

  // no automatic HEAD route: a HEAD would record an opened/downloaded event without a download
  app.get('/api/links/:linkId/blobs/:blobId', { exposeHeadRoute: false, ...api }, async (request, reply) => {
    const { link } = await load(request);
    const s = await sessions.find(sessions.cookie(request), link.id);
    if (!s || s.verifiedAt === undefined) throw new ApiFailure(403, { error: 'not-verified' });
    const { blobId } = request.params as { blobId: string };
    if (!BLOB_ID.test(blobId) || !link.blobIds.includes(blobId)) throw unknownLink();
    const size = await deps.blobs.size(link.secureId, blobId);
    if (size === undefined) {
      log.error({ linkId: link.id, blobId }, 'reader: blob listed but missing');
      throw unknownLink();
    }
    await event(link, request, blobId === link.bodyBlob ? 'opened' : 'downloaded', { blobId, bytes: size });
    await links.touch(link.id, clock.now());
    return reply.type('application/octet-stream').header('content-length', size).send(deps.blobs.open(link.secureId, blobId));
  });
}
