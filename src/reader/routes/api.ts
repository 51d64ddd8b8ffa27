import type { FastifyPluginAsync, FastifyRequest } from 'fastify';
import { z } from 'zod';
import type { LinkAccess } from '../../secure/access.js';
import type { LinkView } from '../../secure/links.js';
import type { CodeSentResponse, ForgotResponse, OpenResponse, Organisation, VerifyResponse } from '../api.js';
import type { RateLimits } from '../rate-limit.js';
import type { SessionCookie } from '../session-cookie.js';
import { badRequest, unknownLink } from './errors.js';
import { idParams, malformed } from './schemas.js';

/**
 * The recipient's link API (contract: src/reader/api.ts): open, code,
 * verify, forgot and the message's blobs. HTTP only: ids are checked by the
 * params schema, the verify body by zod, and everything else is
 * src/secure/access.ts.
 */

export interface ApiPluginOptions {
  access: LinkAccess;
  cookie: SessionCookie;
  limits: RateLimits;
  organisation: Organisation;
}

/** The verify body: `{ code? }` or none. zod, not a JSON schema: Ajv would coerce `{"code": 123}` where zod refuses it. */
const verifyBody = z
  .object({ code: z.string().max(256).optional() })
  .optional()
  .transform((body) => body ?? {});

type LinkParams = { linkId: string };

function keyResponse(link: LinkView): VerifyResponse {
  // linkStatus refused links without wrap, K_srv or body before this point
  return {
    state: 'verified',
    key: { secureId: link.secureId, linkId: link.id, wrap: link.wrap!.toString('base64url'), kSrv: link.kSrv!.toString('base64url') },
    body: link.bodyBlob!,
  };
}

export const apiRoutes: FastifyPluginAsync<ApiPluginOptions> = async (app, { access, cookie, limits, organisation }) => {
  // a malformed id is an unknown one
  app.setSchemaErrorFormatter(() => unknownLink());
  const params = idParams('linkId');
  const api = { schema: { params }, onRequest: limits.hook('api', 'linkId') };
  const check = { schema: { params }, onRequest: limits.hook('checks', 'linkId') };

  app.post<{ Params: LinkParams }>('/api/links/:linkId/open', api, async (request, reply): Promise<OpenResponse> => {
    const { link, lockedUntil, state } = await access.open(request.params.linkId, cookie.visitor(request, reply));
    const response: OpenResponse = { state, method: link.method, language: link.language, organisation };
    const dest = access.destination(link);
    if (dest) response.destination = dest;
    if (state === 'locked' && lockedUntil !== undefined) response.lockedUntil = new Date(lockedUntil).toISOString();
    return response;
  });

  app.post<{ Params: LinkParams }>('/api/links/:linkId/code', check, async (request, reply): Promise<CodeSentResponse> => {
    const sent = await access.sendCode(request.params.linkId, cookie.visitor(request, reply));
    return { sent: true, destination: sent.destination, expiresAt: new Date(sent.expiresAt).toISOString() };
  });

  // the body is checked before the id (preValidation runs before the params schema), as it always was
  const verified = new WeakMap<FastifyRequest, { code?: string | undefined }>();
  app.post<{ Params: LinkParams }>(
    '/api/links/:linkId/verify',
    {
      ...check,
      preValidation: async (request) => {
        const parsed = verifyBody.safeParse(request.body);
        if (!parsed.success) throw badRequest();
        verified.set(request, parsed.data);
      },
    },
    async (request, reply): Promise<VerifyResponse> => {
      const link = await access.verify(request.params.linkId, verified.get(request)?.code, cookie.visitor(request, reply));
      return keyResponse(link);
    },
  );

  app.post<{ Params: LinkParams }>('/api/links/:linkId/forgot', check, async (request, reply): Promise<ForgotResponse> => {
    await access.forgot(request.params.linkId, cookie.visitor(request, reply));
    return { notified: true };
  });

  // no automatic HEAD route: a HEAD would record an opened/downloaded event without a download.
  // attachValidation: a malformed blob id answers 404 only after the link and session checks, as it always did
  app.get<{ Params: LinkParams & { blobId: string } }>(
    '/api/links/:linkId/blobs/:blobId',
    { exposeHeadRoute: false, attachValidation: true, schema: { params: idParams('linkId', 'blobId') }, onRequest: limits.hook('api', 'linkId') },
    async (request, reply) => {
      if (malformed(request, 'linkId')) throw unknownLink();
      const { linkId, blobId } = request.params;
      const blob = await access.blob(linkId, blobId, !malformed(request, 'blobId'), cookie.visitor(request, reply));
      return reply.type('application/octet-stream').header('content-length', blob.size).send(blob.stream);
    },
  );
};
