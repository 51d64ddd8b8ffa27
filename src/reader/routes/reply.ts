import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { once } from 'node:events';
import fastifyMultipart from '@fastify/multipart';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { newSecureId } from '../../crypto/key-schedule.js';
import type { Logger } from '../../log.js';
import type { RepliesResponse, ReplyEntry, ReplySentResponse } from '../api.js';
import { linkStatus } from '../../secure/checks.js';
import type { LinkView as LinkRow } from '../../secure/links.js';
import type { ReplyRow } from '../../store/replies.js';
import { BLOCKED_EXTENSIONS, blockedByContent, CONTENT_HEAD_BYTES, blockedByName, cleanFileName, replySubject } from '../reply-policy.js';
import type { ReplyAttachmentFile } from '../../secure/reply-mail.js';
import type { ReaderDeps } from '../server.js';
import type { RateLimits } from '../rate-limit.js';
import type { Sessions } from '../sessions.js';
import { ApiFailure, badRequest, unavailable, unknownLink } from './errors.js';

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
 */

const LINK_ID = /^[A-Za-z0-9_-]{22}$/;
/** The reply text (a form field, which busboy buffers): 1 MiB at most. */
const TEXT_LIMIT = 1024 * 1024;
/** The copy is the text and attachment names, encrypted: a little over the text. */
const COPY_LIMIT = 4 * 1024 * 1024;
const MAX_ATTACHMENTS = 20;
const MAILBOX = /^[^\s@<>,;:"()[\]\\]+@[^\s@<>,;:"()[\]\\]+$/;
/** First byte of a Zegel blob: a new-format OpenPGP packet, tag 18 (SEIPD). */
const SEIPD_TAG = 0xd2;

export interface ReplyContext {
  deps: ReaderDeps;
  log: Logger;
  sessions: Sessions;
  limits: RateLimits;
}

const DAY_MS = 86400e3;

export function uploadsDir(dataDir: string): string {
  return path.join(dataDir, 'uploads');
}

/** Reads a part's stream to its end, discarding it (the parser needs every part consumed). */
async function drain(stream: AsyncIterable<unknown>): Promise<void> {
  for await (const _chunk of stream) {
    // discarded
  }
}

export async function registerReply(app: FastifyInstance, ctx: ReplyContext): Promise<void> {
  const { deps, log, sessions, limits } = ctx;
  const { clock, config } = deps;
  const { links, replies } = deps.secure;
  const maxBytes = config.reader.replyMaxSize;
  const { perLink, perDay } = config.reader.replyLimit;
  /** Replies of this process still being received, per link: counted with the stored ones. */
  const inFlight = new Map<string, number>();
  const uploads = uploadsDir(config.data.dir);
  // what a crash left of an upload: nothing refers to it
  await fsp.rm(uploads, { recursive: true, force: true });
  await fsp.mkdir(uploads, { recursive: true, mode: 0o700 });

  /**
   * reader.replyLimit: at most `perLink` replies per link, and `perDay` in any
   * 24 hours. Undefined when one more may be sent; otherwise the refusal,
   * with the seconds until the day's window has room (none: the link is done).
   */
  async function replyLimitReached(linkId: string): Promise<ApiFailure | undefined> {
    const now = clock.now();
    // every reply counts, also one whose copy was purged since
    const counts = await replies.counts(linkId, now - DAY_MS);
    const pending = inFlight.get(linkId) ?? 0;
    if (counts.total + pending >= perLink) return new ApiFailure(429, { error: 'too-many-replies' });
    if (counts.recent + pending >= perDay) {
      const retryAfter = Math.max(1, Math.ceil(((counts.oldestRecent ?? now) + DAY_MS - now) / 1000));
      return new ApiFailure(429, { error: 'too-many-replies', retryAfter });
    }
    return undefined;
  }

  /** The link of a verified session, or the 404/410/403 answer. A lock from others' tries does not stop a verified session. */
  async function verifiedLink(request: FastifyRequest): Promise<LinkRow> {
    const { linkId } = request.params as { linkId: string };
    if (!LINK_ID.test(linkId)) throw unknownLink();
    const link = await links.link(linkId);
    const status = linkStatus(link, clock.now());
    if (!link || status.status === 'unknown') throw unknownLink();
    if (status.status === 'revoked' || status.status === 'expired') throw new ApiFailure(410, { error: status.status });
    const s = await sessions.find(sessions.cookie(request), link.id);
    if (!s || s.verifiedAt === undefined) throw new ApiFailure(403, { error: 'not-verified' });
    return link;
  }

  const entry = (row: ReplyRow): ReplyEntry => ({ id: row.id, createdAt: new Date(row.createdAt).toISOString() });

  await app.register(async (scope) => {
    await scope.register(fastifyMultipart, { throwFileSizeLimit: false });

    const api = { onRequest: limits.hook('api', 'linkId') };
    const check = { onRequest: limits.hook('checks', 'linkId') };

    scope.get('/api/links/:linkId/replies', { exposeHeadRoute: false, ...api }, async (request): Promise<RepliesResponse> => {
      const link = await verifiedLink(request);
      return { maxBytes, blockedExtensions: [...BLOCKED_EXTENSIONS], replies: (await replies.list(link.id)).map(entry) };
    });

    scope.get('/api/links/:linkId/replies/:replyId', { exposeHeadRoute: false, ...api }, async (request, reply) => {
      const link = await verifiedLink(request);
      const { replyId } = request.params as { replyId: string };
      if (!LINK_ID.test(replyId)) throw unknownLink();
      const row = await replies.get(replyId, link.id);
      if (!row?.blob) throw unknownLink();
      const size = await deps.blobs.size(link.secureId, row.blob);
      if (size === undefined) throw unknownLink();
      return reply.type('application/octet-stream').header('content-length', size).send(deps.blobs.open(link.secureId, row.blob));
    });

    scope.post('/api/links/:linkId/replies', check, async (request, reply): Promise<ReplySentResponse> => {
      const link = await verifiedLink(request);
      const mailer = deps.replyMailer;
      if (!mailer) throw unavailable();
      if (!MAILBOX.test(link.sender)) {
        // a null or odd envelope sender: there is nobody to reply to
        log.warn({ linkId: link.id }, 'reader: reply refused, the message has no sender address');
        throw badRequest();
      }
      if (!request.isMultipart()) throw badRequest();
      const limited = await replyLimitReached(link.id);
      if (limited) {
        log.info({ linkId: link.id, perLink, perDay }, 'reader: reply refused, the link reached its reply limit');
        if (limited.body.retryAfter !== undefined) reply.header('retry-after', String(limited.body.retryAfter));
        throw limited;
      }

      const replyId = newSecureId();
      const dir = path.join(uploads, replyId);
      const copyPath = path.join(dir, 'copy.pgp');
      let subject: string | undefined;
      let text: string | undefined;
      let copy = false;
      const attachments: ReplyAttachmentFile[] = [];
      let total = 0;
      let failure: ApiFailure | undefined;
      const tooLarge = (): ApiFailure => new ApiFailure(413, { error: 'too-large', limit: maxBytes });
      let blobWritten = false;

      // counted from here on, in the same tick as the limit check above (no await between)
      inFlight.set(link.id, (inFlight.get(link.id) ?? 0) + 1);
      try {
        await fsp.mkdir(dir, { recursive: true, mode: 0o700 });
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
              if (!failure && first !== SEIPD_TAG) failure = badRequest();
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
          log.info({ linkId: link.id, reason: String(code ?? (err as Error).name) }, 'reader: reply upload refused');
          throw /LIMIT/.test(String(code)) ? tooLarge() : badRequest();
        }
        if (failure) {
          log.info({ linkId: link.id, error: failure.body.error }, 'reader: reply refused');
          throw failure;
        }
        if (!copy || text === undefined || subject === undefined) throw badRequest();
        if (text.trim() === '' && attachments.length === 0) throw badRequest();

        await deps.blobs.write(link.secureId, replyId, fs.createReadStream(copyPath));
        blobWritten = true;
        const queued = await mailer.queue({
          replyId,
          secureId: link.secureId,
          linkId: link.id,
          about: link.queueId,
          from: link.address,
          to: link.sender,
          subject: replySubject(subject),
          text,
          inReplyTo: link.originMessageId,
          attachments,
          copyBlob: replyId,
        });
        blobWritten = false;
        await links.touch(link.id, clock.now());
        log.info({ linkId: link.id, reply: replyId, mail: queued.queueId, attachments: attachments.length }, 'reader: reply queued for the sender');
        reply.code(201);
        return { reply: { id: replyId, createdAt: new Date(clock.now()).toISOString() } };
      } finally {
        const left = (inFlight.get(link.id) ?? 1) - 1;
        if (left > 0) inFlight.set(link.id, left);
        else inFlight.delete(link.id);
        if (blobWritten) await fsp.rm(path.join(deps.blobs.dir, link.secureId, `${replyId}.pgp`), { force: true });
        await fsp.rm(dir, { recursive: true, force: true });
      }
    });
  });
}
