import crypto from 'node:crypto';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import MailComposer from 'nodemailer/lib/mail-composer';
import type { Clock } from '../clock.js';
import { ORIGIN_PLACEHOLDER, type OriginSigner } from '../crypto/origin.js';
import { OriginStamper } from '../crypto/origin-stamp.js';
import type { Route } from '../deliver/deliver-job.js';
import type { HandOff } from '../deliver/hand-off.js';
import type { MessageSpool } from '../spool/types.js';
import type { SecureRepositories } from '../store/secure-repositories.js';

/**
 * A recipient's reply from the reader, made into ordinary mail for the
 * original sender inside the organisation and queued like any mail the relay
 * makes (src/pipeline/relay-mail.ts): spooled with fsync, then recorded with
 * its delivery job to the internal route, its secure_replies row and the
 * `replied` event in one commit. The plaintext spool file goes once the
 * deliver job has no recipient pending (as for every message).
 */

export interface ReplyAttachmentFile {
  name: string;
  contentType: string;
  /** The uploaded plaintext, streamed into the mail (never read whole). */
  path: string;
  size: number;
}

export interface ReplyMailInput {
  /** secure_replies.id; also the local part of the Message-ID. */
  replyId: string;
  /** The secure message and link replied to. */
  secureId: string;
  linkId: string;
  /** Queue id of the secure message: events are recorded under it. */
  about: string;
  /** The recipient's address as the link verified it: From and envelope sender. */
  from: string;
  /** The original's envelope sender. */
  to: string;
  subject: string;
  text: string;
  /** Message-ID of the original (secure_messages.origin_message_id), for In-Reply-To/References. */
  inReplyTo: string | undefined;
  attachments: ReplyAttachmentFile[];
  /** Blob id of the recipient's copy (encrypted in the browser), already written. */
  copyBlob: string;
}

export interface ReplyMailer {
  /** Composes, spools and queues the reply; resolves to its queue id and Message-ID. */
  queue(input: ReplyMailInput): Promise<{ queueId: string; messageId: string }>;
}

export interface ReplyMailerDeps {
  /** The reply goes to delivery through the hand-off, with its conversation record in the same commit. */
  handOff: HandOff;
  /** The conversation record (secure_replies), written in the mail's commit. */
  replies: SecureRepositories['replies'];
  spool: MessageSpool;
  clock: Clock;
  signer: OriginSigner;
  hostname: string;
  /** Where replies go: the internal route (delivery.internalTarget, default delivery.target). */
  route: Route;
}

/** `<replyId@hostname>`: a later answer's In-Reply-To finds the reply (and its thread) by the local part. */
export function replyMessageId(replyId: string, hostname: string): string {
  const host = hostname.replace(/[^A-Za-z0-9.-]/g, '') || 'localhost';
  return `<${replyId}@${host}>`;
}

/**
 * Writes a stream into the spool durably, with its X-Zegel-Origin stamped:
 * to the spool's draft file (the file spool's own file; a node-local one on
 * PostgreSQL), stamped there once the body is known, then adopted (the
 * directory synced; the draft streamed into chunks).
 */
async function writeSpoolFile(spool: MessageSpool, id: string, source: Readable, stamper: OriginStamper): Promise<number> {
  const file = spool.draftPath(id);
  let size = 0;
  const out = fs.createWriteStream(file, { mode: 0o600, flush: true });
  try {
    await pipeline(
      source,
      stamper,
      async function* (chunks: AsyncIterable<Buffer | string>) {
        for await (const chunk of chunks) {
          const bytes = typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
          size += bytes.length;
          yield bytes;
        }
      },
      out,
    );
    await stamper.stamp(file);
  } catch (err) {
    await fsp.rm(file, { force: true });
    throw err;
  }
  await spool.adopt(id);
  return size;
}

export function createReplyMailer(deps: ReplyMailerDeps): ReplyMailer {
  const { replies, handOff, spool, clock, signer, hostname, route } = deps;
  return {
    async queue(input) {
      const messageId = replyMessageId(input.replyId, hostname);
      const queueId = `${input.about}-reply-${crypto.randomBytes(6).toString('hex')}`;
      const now = clock.now();
      const composer = new MailComposer({
        from: { name: '', address: input.from },
        to: { name: '', address: input.to },
        subject: input.subject,
        messageId,
        date: new Date(now),
        ...(input.inReplyTo ? { inReplyTo: input.inReplyTo, references: [input.inReplyTo] } : {}),
        text: input.text,
        attachments: input.attachments.map((a) => ({
          filename: a.name,
          contentType: a.contentType,
          content: fs.createReadStream(a.path),
          contentDisposition: 'attachment' as const,
        })),
        headers: { 'X-Zegel-Origin': ORIGIN_PLACEHOLDER },
        newline: 'win',
        disableFileAccess: true,
        disableUrlAccess: true,
      });
      const stamper = new OriginStamper(signer, { messageId, recipients: [input.to] });
      const size = await writeSpoolFile(spool, queueId, composer.compile().createReadStream(), stamper);
      await handOff.send(
        {
          id: queueId,
          from: input.from,
          to: input.to,
          messageId,
          size,
          origin: 'notification',
          route,
          // NOTIFY=NEVER as for every relay-made mail: a bounce must not loop back through the reader's address
          bounces: 'never',
          event: {
            about: input.about,
            recipient: input.from,
            type: 'replied',
            detail: { linkId: input.linkId, reply: input.replyId, mail: queueId, attachments: input.attachments.length, bytes: size },
          },
        },
        // spooled above as a stream
        undefined,
        (tx) => replies.insert(tx, { id: input.replyId, messageId: input.secureId, linkId: input.linkId, createdAt: now, blob: input.copyBlob, queueId }),
      );
      return { queueId, messageId };
    },
  };
}
