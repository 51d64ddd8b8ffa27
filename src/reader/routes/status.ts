import type { FastifyInstance, FastifyRequest } from 'fastify';
import { z } from 'zod';
import type { Logger } from '../../log.js';
import type { ApiError, Method, StatusApiError, StatusKeyResponse, StatusRecipient, StatusResendResponse, StatusResponse } from '../api.js';
import { STATUS_TOKEN_HEADER } from '../api.js';
import type { ReaderDeps } from '../server.js';
import { STATUS_ID, statusTokenMatches } from '../status-keys.js';
import type { StatusMessageRow, StatusService } from '../../secure/status.js';
import type { RateLimits } from '../rate-limit.js';
import { ApiFailure } from './errors.js';

/**
 * The sender's status page API (contract: src/reader/api.ts, "status page").
 * Every request proves possession of the status link with its token
 * (header X-Zegel-Status); the server compares SHA-256(token) with the
 * stored hash. An unknown id and a wrong token are the same 404, and a token
 * only ever reaches the one secure message its status id names: every link
 * id a request names must belong to that message.
 */

const LINK_ID = /^[A-Za-z0-9_-]{22}$/;
const KEY = /^[A-Za-z0-9_-]{43}$/;
const WRAP = /^[A-Za-z0-9_-]{80}$/;
const METHODS: readonly Method[] = ['none', 'access-code', 'email-code', 'sms-code'];
/** A scheduled revocation lies at most this far ahead (longer than any retention anyway). */
const MAX_SCHEDULE_MS = 10 * 365 * 86400e3;

const revokeBody = z.object({ linkId: z.string().regex(LINK_ID).optional(), at: z.string().max(64).optional() }).strict();
const resendBody = z
  .object({ linkId: z.string().regex(LINK_ID), newLinkId: z.string().regex(LINK_ID), wrap: z.string().regex(WRAP), kSrv: z.string().regex(KEY), kLink: z.string().regex(KEY) })
  .strict();

const fail = (status: number, error: StatusApiError['error']) => new ApiFailure(status, { error } as unknown as ApiError);
const unknown = () => fail(404, 'unknown-link');
const bad = () => fail(400, 'bad-request');
const iso = (ms: number | undefined) => (ms === undefined ? undefined : new Date(ms).toISOString());

export function registerStatus(app: FastifyInstance, ctx: { deps: ReaderDeps; log: Logger; status: StatusService; limits: RateLimits }): void {
  const { deps, status, limits } = ctx;
  // the bearer token gets the reader's limits: per client address and per status id
  const api = { onRequest: limits.hook('api', 'statusId') };
  const check = { onRequest: limits.hook('checks', 'statusId') };
  const { clock, config } = deps;

  async function load(request: FastifyRequest): Promise<StatusMessageRow> {
    const { statusId } = request.params as { statusId: string };
    if (!STATUS_ID.test(statusId)) throw unknown();
    const header = request.headers[STATUS_TOKEN_HEADER];
    const token = typeof header === 'string' ? header.trim() : '';
    const message = await status.store.byStatusId(statusId);
    if (!message || !statusTokenMatches(token, message.statusTokenHash)) throw unknown();
    return message;
  }

  async function overview(message: StatusMessageRow): Promise<StatusResponse> {
    const now = clock.now();
    const links = await status.store.links(message.id);
    const downloads = await status.store.downloads(message.queueId);
    const replies = await status.store.replies(message.id);
    const byRecipient = new Map<number, typeof links>();
    for (const l of links) byRecipient.set(l.recipientIdx, [...(byRecipient.get(l.recipientIdx) ?? []), l]);
    const recipients: StatusRecipient[] = [];
    for (const all of byRecipient.values()) {
      const current = all.find((l) => l.state !== 'replaced') ?? all[all.length - 1]!;
      const opened = all.flatMap((l) => (l.firstOpenedAt !== undefined ? [l.firstOpenedAt] : []));
      const lastOpened = all.flatMap((l) => (l.lastOpenedAt !== undefined ? [l.lastOpenedAt] : []));
      const dl = all.flatMap((l) => (downloads.has(l.id) ? [downloads.get(l.id)!] : []));
      const rp = all.flatMap((l) => (replies.has(l.id) ? [replies.get(l.id)!] : []));
      const expired = message.state === 'expired' || message.expiresAt <= now || current.state === 'expired';
      const revoked = message.state === 'revoked' || current.state === 'revoked';
      const r: StatusRecipient = {
        linkId: current.id,
        address: current.address,
        method: (METHODS as readonly string[]).includes(current.method) ? (current.method as Method) : 'email-code',
        language: current.language === 'en' ? 'en' : 'nl',
        state: revoked ? 'revoked' : expired || current.state !== 'active' || !current.hasWrap ? 'expired' : 'active',
        notification: current.notificationState === 'delivered' ? 'delivered' : current.notificationState === 'bounced' ? 'failed' : 'pending',
        downloads: dl.reduce((n, d) => n + d.count, 0),
        replies: rp.reduce((n, d) => n + d.count, 0),
        resent: all.length - 1,
      };
      if (opened.length) r.firstOpenedAt = iso(Math.min(...opened))!;
      if (lastOpened.length) r.lastOpenedAt = iso(Math.max(...lastOpened))!;
      if (dl.length) r.lastDownloadAt = iso(Math.max(...dl.map((d) => d.last)))!;
      if (rp.length) r.lastReplyAt = iso(Math.max(...rp.map((d) => d.last)))!;
      if (current.revokeAt !== undefined && r.state === 'active') r.revokeAt = iso(current.revokeAt)!;
      recipients.push(r);
    }
    const org = config.organisation;
    const response: StatusResponse = {
      secureId: message.id,
      sentAt: iso(message.createdAt)!,
      expiresAt: iso(message.expiresAt)!,
      state: message.state === 'active' && message.expiresAt <= now ? 'expired' : message.state,
      language: status.language,
      organisation: {
        name: org.name,
        ...(org.logoUrl ? { logoUrl: org.logoUrl } : {}),
        ...(org.colour ? { colour: org.colour } : {}),
        ...(org.helpText ? { helpText: org.helpText } : {}),
      },
      recipients,
    };
    if (message.revokeAt !== undefined && message.state === 'active') response.revokeAt = iso(message.revokeAt)!;
    return response;
  }

  /** The link a request names, only when it belongs to this message: a token never reaches another message. */
  async function ownLink(message: StatusMessageRow, linkId: string) {
    const link = (await status.store.links(message.id)).find((l) => l.id === linkId);
    if (!link) throw unknown();
    return link;
  }

  app.post('/api/status/:statusId', api, async (request): Promise<StatusResponse> => overview(await load(request)));

  app.post('/api/status/:statusId/key', check, async (request): Promise<StatusKeyResponse> => {
    const message = await load(request);
    if (message.state !== 'active' || !message.senderWrap || !message.senderKSrv || message.expiresAt <= clock.now()) throw fail(410, 'not-active');
    const { statusId } = request.params as { statusId: string };
    return { secureId: message.id, statusId, wrap: message.senderWrap.toString('base64url'), kSrv: message.senderKSrv.toString('base64url') };
  });

  app.post('/api/status/:statusId/revoke', check, async (request): Promise<StatusResponse> => {
    const message = await load(request);
    const parsed = revokeBody.safeParse(request.body ?? {});
    if (!parsed.success) throw bad();
    const { linkId } = parsed.data;
    if (linkId) await ownLink(message, linkId);
    let at: number | undefined;
    if (parsed.data.at !== undefined) {
      at = Date.parse(parsed.data.at);
      const now = clock.now();
      if (!Number.isFinite(at) || at > now + MAX_SCHEDULE_MS) throw bad();
      if (at <= now) at = undefined;
    }
    await status.revoke(message, linkId, at);
    return overview(await load(request));
  });

  app.post('/api/status/:statusId/resend', check, async (request): Promise<StatusResendResponse> => {
    const message = await load(request);
    const parsed = resendBody.safeParse(request.body ?? {});
    if (!parsed.success) throw bad();
    const body = parsed.data;
    const old = await ownLink(message, body.linkId);
    const now = clock.now();
    if (message.state !== 'active' || message.expiresAt <= now || old.state !== 'active' || !old.hasWrap) throw fail(410, 'not-active');
    const ok = await status.resend({
      message,
      old,
      newLinkId: body.newLinkId,
      wrap: Buffer.from(body.wrap, 'base64url'),
      kSrv: Buffer.from(body.kSrv, 'base64url'),
      kLink: Buffer.from(body.kLink, 'base64url'),
      clientIp: request.ip,
    });
    if (!ok) throw fail(410, 'not-active');
    return { linkId: body.newLinkId };
  });
}
