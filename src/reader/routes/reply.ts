import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { once } from 'node:events';
import fastifyMultipart from '@fastify/multipart';
import type { FastifyPluginAsync, FastifyRequest } from 'fastify';
import { newSecureId } from '../../crypto/key-schedule.js';
import type { Logger } from '../../log.js';
import type { LinkAccess } from '../../secure/access.js';
import { Refusal } from '../../secure/refusal.js';
import type { ReplyDesk } from '../../secure/reply-desk.js';
import type { ReplyAttachmentFile } from '../../secure/reply-mail.js';
import { BLOCKED_EXTENSIONS, blockedByContent, blockedByName, CONTENT_HEAD_BYTES, cleanFileName, isEncryptedCopy } from '../../secure/reply-policy.js';
import type { RepliesResponse, ReplyEntry, ReplySentResponse } from '../api.js';
import type { RateLimits } from '../rate-limit.js';
import type { SessionCookie } from '../session-cookie.js';
import { ApiFailure, badRequest, unknownLink } from './errors.js';
import { idParams, malformed } from './schemas.js';

/**
 * The recipient's secure reply (contract: src/reader/api.ts):
 *
 * - `GET  /api/links/:linkId/replies`           the link's replies (ids and times) and the limits
 * - `POST /api/links/:linkId/replies`           multipart, streamed: the reply
 * - `GET  /api/links/:linkId/replies/:replyId`  the ciphertext of one reply copy
 *
 * Only for a verified session of the link (the cookie is SameSite=Strict and
 * every POST needs `X-Zegel-Reader: 1`, checked by the server's onRequest
 * hook). Attachments stream to files under `<data.dir>/uploads/`
 * and from there into the composed mail in the spool (never held whole); the
 * upload files go as soon as the mail is spooled (or the request fails).
 * The recipient's copy arrives encrypted under K (the page did it) and is
 * kept as a blob of the secure message; the server never sees it in clear.
 * HTTP only: what a reply may carry is src/secure/reply-policy.ts, the
 * limits, the stored copy and the mail are src/secure/reply-desk.ts.
 */

/** The reply text (a form field, which busboy buffers): 1 MiB at most. */
const TEXT_LIMIT = 1024 * 1024;
/** The copy is the text and attachment names, encrypted: a little over the text. */
const COPY_LIMIT = 4 * 1024 * 1024;
const MAX_ATTACHMENTS = 20;

export interface ReplyPluginOptions {
  access: LinkAccess;
  desk: ReplyDesk;
  cookie: SessionCookie;
  limits: RateLimits;
  log: Logger;
  /** reader.replyMaxSize: text and attachments together. */
  maxBytes: number;
  /** `<data.dir>/uploads`: emptied when the plugin starts (what a crash left of an upload). */
  uploads: string;
}

export function uploadsDir(dataDir: string): string {
  return path.join(dataDir, 'uploads');
}

/** Reads a part's stream to its end, discarding it (the parser needs every part consumed). */
async function drain(stream: AsyncIterable<unknown>): Promise<void> {
  for await (const _chunk of stream) {
    // discarded
  }
}

interface Upload {
  subject: string | undefined;
  text: string | undefined;
  copy: boolean;
  attachments: ReplyAttachmentFile[];
  failure: ApiFailure | undefined;
}

/**
 * Streams the multipart reply into `dir`: the fields subject and text, the
 * encrypted copy (copy.pgp) and the attachments (0.bin, 1.bin …), each part
 * checked while it streams. The first refusal is kept in `failure`; the rest
 * of the request is read and dropped.
 */
async function receive(request: FastifyRequest, dir: string, copyPath: string, maxBytes: number, log: Logger, linkId: string): Promise<Upload> {
  let subject: string | undefined;
  let text: string | undefined;
  let copy = false;
  const attachments: ReplyAttachmentFile[] = [];
  let total = 0;
  let failure: ApiFailure | undefined;
  const tooLarge = (): ApiFailure => new ApiFailure(413, { error: 'too-large', limit: maxBytes });
  try {
    const parts = request.parts({
      limits: { fields: 4, fieldSize: TEXT_LIMIT, files: MAX_ATTACHMENTS + 1, parts: MAX_ATTACHMENTS + 6, fileSize: Math.max(maxBytes, COPY_LIMIT) + 1 },
    });
    for await (const part of parts) {
      if (part.type === 'field') {
        if (failure) continue;
        if (part.valueTruncated) {
          failure = tooLarge();
          continue;
        }
        const value = typeof part.value === 'string' ? part.value : '';
        if (part.fieldname === 'subject' && subject === undefined) subject = value;
        else if (part.fieldname === 'text' && text === undefined) {
          text = value;
          total += Buffer.byteLength(value, 'utf8');
          if (total > maxBytes) failure = tooLarge();
        } else failure = badRequest();
        continue;
      }
      if (failure) {
        await drain(part.file);
        continue;
      }
      if (part.fieldname === 'copy' && !copy) {
        copy = true;
        let size = 0;
        let first: number | undefined;
        const out = fs.createWriteStream(copyPath, { mode: 0o600 });
        for await (const chunk of part.file as AsyncIterable<Buffer>) {
          if (failure) continue;
          first ??= chunk[0];
          size += chunk.length;
          if (size > COPY_LIMIT) {
            failure = tooLarge();
            continue;
          }
          if (!out.write(chunk)) await once(out, 'drain');
        }
        out.end();
        await once(out, 'close');
        // the copy must be ciphertext: never store what the page might have sent in clear
        if (!failure && !isEncryptedCopy(first)) failure = badRequest();
        continue;
      }
      if (part.fieldname !== 'attachment' || attachments.length >= MAX_ATTACHMENTS) {
        failure = badRequest();
        await drain(part.file);
        continue;
      }
      const name = cleanFileName(part.filename);
      const contentType = /^[\w.+-]+\/[\w.+-]+$/.test(part.mimetype) ? part.mimetype.toLowerCase() : 'application/octet-stream';
      if (blockedByName(name, contentType)) {
        failure = new ApiFailure(415, { error: 'blocked-type', name });
        await drain(part.file);
        continue;
      }
      const file = path.join(dir, `${attachments.length}.bin`);
      const out = fs.createWriteStream(file, { mode: 0o600 });
      let size = 0;
      let head: Buffer | undefined;
      let headChecked = false;
      for await (const chunk of part.file as AsyncIterable<Buffer>) {
        if (failure) continue;
        if (!headChecked) {
          // the first bytes, however the upload was cut into chunks
          head = head ? Buffer.concat([head, chunk.subarray(0, CONTENT_HEAD_BYTES - head.length)]) : chunk.subarray(0, CONTENT_HEAD_BYTES);
          if (head.length >= CONTENT_HEAD_BYTES) {
            headChecked = true;
            if (blockedByContent(head)) {
              failure = new ApiFailure(415, { error: 'blocked-type', name });
              continue;
            }
          }
        }
        size += chunk.length;
        total += chunk.length;
        if (total > maxBytes) {
          failure = tooLarge();
          continue;
        }
        if (!out.write(chunk)) await once(out, 'drain');
      }
      out.end();
      await once(out, 'close');
      if (!failure && !headChecked && head && blockedByContent(head)) failure = new ApiFailure(415, { error: 'blocked-type', name });
      attachments.push({ name, contentType, path: file, size });
    }
  } catch (err) {
    if (err instanceof ApiFailure) throw err;
    const code = (err as { code?: unknown }).code;
    log.info({ linkId, reason: String(code ?? (err as Error).name) }, 'reader: reply upload refused');
    throw /LIMIT/.test(String(code)) ? tooLarge() : badRequest();
  }
  return { subject, text, copy, attachments, failure };
}

export const replyRoutes: FastifyPluginAsync<ReplyPluginOptions> = async (app, { access, desk, cookie, limits, log, maxBytes, uploads }) => {
  // what a crash left of an upload: nothing refers to it
  await fsp.rm(uploads, { recursive: true, force: true });
  await fsp.mkdir(uploads, { recursive: true, mode: 0o700 });
  // multipart only here (this plugin's encapsulation context)
  await app.register(fastifyMultipart, { throwFileSizeLimit: false });
  // a malformed id is an unknown one
  app.setSchemaErrorFormatter(() => unknownLink());

  const params = idParams('linkId');
  const entry = (row: { id: string; createdAt: number }): ReplyEntry => ({ id: row.id, createdAt: new Date(row.createdAt).toISOString() });

  app.get<{ Params: { linkId: string } }>(
    '/api/links/:linkId/replies',
    { exposeHeadRoute: false, schema: { params }, onRequest: limits.hook('api', 'linkId') },
    async (request): Promise<RepliesResponse> => {
      const link = await access.verifiedLink(request.params.linkId, cookie.read(request));
      return { maxBytes, blockedExtensions: [...BLOCKED_EXTENSIONS], replies: (await desk.list(link)).map(entry) };
    },
  );

  // attachValidation: a malformed reply id answers 404 only after the link and session checks, as it always did
  app.get<{ Params: { linkId: string; replyId: string } }>(
    '/api/links/:linkId/replies/:replyId',
    { exposeHeadRoute: false, attachValidation: true, schema: { params: idParams('linkId', 'replyId') }, onRequest: limits.hook('api', 'linkId') },
    async (request, reply) => {
      if (malformed(request, 'linkId')) throw unknownLink();
      const link = await access.verifiedLink(request.params.linkId, cookie.read(request));
      if (malformed(request, 'replyId')) throw unknownLink();
      const copy = await desk.copy(link, request.params.replyId);
      return reply.type('application/octet-stream').header('content-length', copy.size).send(copy.stream);
    },
  );

  app.post<{ Params: { linkId: string } }>(
    '/api/links/:linkId/replies',
    { schema: { params }, onRequest: limits.hook('checks', 'linkId') },
    async (request, reply): Promise<ReplySentResponse> => {
      const link = await access.verifiedLink(request.params.linkId, cookie.read(request));
      const mailer = desk.ready(link);
      if (!request.isMultipart()) throw badRequest();
      let admitted: { release(): void };
      try {
        admitted = await desk.admit(link);
      } catch (err) {
        if (err instanceof Refusal && err.detail.retryAfter !== undefined) reply.header('retry-after', String(err.detail.retryAfter));
        throw err;
      }

      const replyId = newSecureId();
      const dir = path.join(uploads, replyId);
      const copyPath = path.join(dir, 'copy.pgp');
      try {
        await fsp.mkdir(dir, { recursive: true, mode: 0o700 });
        const { subject, text, copy, attachments, failure } = await receive(request, dir, copyPath, maxBytes, log, link.id);
        if (failure) {
          log.info({ linkId: link.id, error: failure.body.error }, 'reader: reply refused');
          throw failure;
        }
        if (!copy || text === undefined || subject === undefined) throw badRequest();
        if (text.trim() === '' && attachments.length === 0) throw badRequest();
        const sent = await desk.send(link, mailer, { replyId, subject, text, attachments, copyPath });
        reply.code(201);
        return { reply: { id: replyId, createdAt: new Date(sent.createdAt).toISOString() } };
      } finally {
        admitted.release();
        await fsp.rm(dir, { recursive: true, force: true });
      }
    },
  );
};
