import type { FastifyPluginAsync, FastifyRequest } from 'fastify';
import { z } from 'zod';
import type { StatusPage } from '../../secure/status-page.js';
import type { StatusKeyResponse, StatusResendResponse, StatusResponse } from '../api.js';
import { STATUS_TOKEN_HEADER } from '../api.js';
import type { RateLimits } from '../rate-limit.js';
import { badRequest, unknownLink } from './errors.js';
import { idParams } from './schemas.js';

/**
 * The sender's status page API (contract: src/reader/api.ts, "status page").
 * HTTP only: the status id is checked by the params schema, the token is the
 * header X-Zegel-Status, bodies are checked by zod; what the page may see and
 * do is src/secure/status-page.ts.
 */

export interface StatusPluginOptions {
  page: StatusPage;
  limits: RateLimits;
}

const LINK_ID = /^[A-Za-z0-9_-]{22}$/;
const KEY = /^[A-Za-z0-9_-]{43}$/;
const WRAP = /^[A-Za-z0-9_-]{80}$/;

// zod, not JSON schemas: the bodies are checked after the token (a wrong token is 404 whatever the body), and
// .strict() refuses unknown keys where Fastify's Ajv would silently remove them
const revokeBody = z.object({ linkId: z.string().regex(LINK_ID).optional(), at: z.string().max(64).optional() }).strict();
const resendBody = z
  .object({ linkId: z.string().regex(LINK_ID), newLinkId: z.string().regex(LINK_ID), wrap: z.string().regex(WRAP), kSrv: z.string().regex(KEY), kLink: z.string().regex(KEY) })
  .strict();

type StatusParams = { statusId: string };

function token(request: FastifyRequest): string {
  const header = request.headers[STATUS_TOKEN_HEADER];
  return typeof header === 'string' ? header.trim() : '';
}

export const statusRoutes: FastifyPluginAsync<StatusPluginOptions> = async (app, { page, limits }) => {
  // a malformed status id is an unknown one, the same answer as a wrong token
  app.setSchemaErrorFormatter(() => unknownLink());
  const params = idParams('statusId');
  // the bearer token gets the reader's limits: per client address and per status id
  const api = { schema: { params }, onRequest: limits.hook('api', 'statusId') };
  const check = { schema: { params }, onRequest: limits.hook('checks', 'statusId') };
  const load = (request: FastifyRequest<{ Params: StatusParams }>) => page.authorise(request.params.statusId, token(request));

  app.post<{ Params: StatusParams }>('/api/status/:statusId', api, async (request): Promise<StatusResponse> => page.overview(await load(request)));

  app.post<{ Params: StatusParams }>('/api/status/:statusId/key', check, async (request): Promise<StatusKeyResponse> => {
    return page.key(await load(request), request.params.statusId);
  });

  app.post<{ Params: StatusParams }>('/api/status/:statusId/revoke', check, async (request): Promise<StatusResponse> => {
    const message = await load(request);
    const parsed = revokeBody.safeParse(request.body ?? {});
    if (!parsed.success) throw badRequest();
    await page.revoke(message, parsed.data);
    return page.overview(await load(request));
  });

  app.post<{ Params: StatusParams }>('/api/status/:statusId/resend', check, async (request): Promise<StatusResendResponse> => {
    const message = await load(request);
    const parsed = resendBody.safeParse(request.body ?? {});
    if (!parsed.success) throw badRequest();
    const body = parsed.data;
    const linkId = await page.resend(
      message,
      { linkId: body.linkId, newLinkId: body.newLinkId, wrap: Buffer.from(body.wrap, 'base64url'), kSrv: Buffer.from(body.kSrv, 'base64url'), kLink: Buffer.from(body.kLink, 'base64url') },
      request.ip,
    );
    return { linkId };
  });
};
