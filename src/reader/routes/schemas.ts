import type { FastifyRequest } from 'fastify';

/**
 * JSON schemas of the reader's route parameters, checked by Fastify before
 * any handler runs. Link, status and reply ids are `newSecureId()`
 * (src/crypto/key-schedule.ts): 128 random bits as base64url, 22 characters.
 * Blob ids are checked more loosely (1 to 64 base64url characters): the
 * server only serves those the secure message lists.
 *
 * A malformed id is answered like an id that names nothing (404
 * `unknown-link`): each plugin's schema error formatter makes that answer
 * (the routes have no other schemas; JSON bodies are checked with zod, which
 * does not coerce types the way Fastify's Ajv does).
 */

export const SECURE_ID = '^[A-Za-z0-9_-]{22}$';
export const BLOB_ID = '^[A-Za-z0-9_-]{1,64}$';

type IdParam = 'linkId' | 'statusId' | 'replyId' | 'blobId';
const PATTERN: Record<IdParam, string> = { linkId: SECURE_ID, statusId: SECURE_ID, replyId: SECURE_ID, blobId: BLOB_ID };

/** The params schema for these ids, checked in this order (Ajv stops at the first error). */
export function idParams(...names: IdParam[]) {
  return {
    type: 'object',
    required: names,
    properties: Object.fromEntries(names.map((name) => [name, { type: 'string', pattern: PATTERN[name] }])),
  } as const;
}

/**
 * For routes with `attachValidation` (a second id whose refusal comes after
 * the link's checks, as it always did): whether this parameter failed.
 */
export function malformed(request: FastifyRequest, name: IdParam): boolean {
  const error = request.validationError as { validation?: { instancePath?: string }[] } | undefined;
  return error?.validation?.some((e) => e.instancePath === `/${name}`) ?? false;
}
