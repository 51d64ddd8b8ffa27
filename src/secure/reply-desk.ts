import fs from 'node:fs';
import type { Readable } from 'node:stream';
import type { Clock } from '../clock.js';
import type { Logger } from '../log.js';
import type { BlobRepository } from '../store/blobs.js';
import type { ReplyRow } from '../store/replies.js';
import type { LinkService, LinkView } from './links.js';
import { Refusal } from './refusal.js';
import type { ReplyService } from './replies.js';
import type { ReplyAttachmentFile, ReplyMailer } from './reply-mail.js';
import { replySubject } from './reply-policy.js';

/**
 * A recipient's secure reply, as domain logic: whether the link can be
 * answered at all, reader.replyLimit (stored replies and those this process is
 * still receiving), the stored copy (ciphertext the page made) and the mail
 * to the sender, queued through the reply mailer. The upload itself (a
 * multipart stream, checked part by part with src/secure/reply-policy.ts) is
 * the HTTP layer's: src/reader/routes/reply.ts.
 */

const DAY_MS = 86400e3;
/** A mailbox the reply can go to; a null or odd envelope sender has nobody to reply to. */
const MAILBOX = /^[^\s@<>,;:"()[\]\\]+@[^\s@<>,;:"()[\]\\]+$/;

export interface ReplyDeskDeps {
  links: LinkService;
  replies: ReplyService;
  blobs: BlobRepository;
  clock: Clock;
  log: Logger;
  /** reader.replyLimit */
  limit: { perLink: number; perDay: number };
  /** Queues a reply to the sender; absent: replies are unavailable. */
  mailer?: ReplyMailer | undefined;
}

/** The reply, received: its text and attachment files, and the encrypted copy's file. */
export interface ReceivedReply {
  replyId: string;
  subject: string;
  text: string;
  attachments: ReplyAttachmentFile[];
  copyPath: string;
}

export class ReplyDesk {
  readonly #d: ReplyDeskDeps;
  /** Replies of this process still being received, per link: counted with the stored ones. */
  readonly #inFlight = new Map<string, number>();

  constructor(deps: ReplyDeskDeps) {
    this.#d = deps;
  }

  /** The link's replies that still have their copy, oldest first. */
  list(link: LinkView): Promise<ReplyRow[]> {
    return this.#d.replies.list(link.id);
  }

  /** The stored copy of one reply of the link, or the refusal unknown-link. */
  async copy(link: LinkView, replyId: string): Promise<{ size: number; stream: Readable }> {
    const row = await this.#d.replies.get(replyId, link.id);
    if (!row?.blob) throw new Refusal('unknown-link');
    const size = await this.#d.blobs.size(link.secureId, row.blob);
    if (size === undefined) throw new Refusal('unknown-link');
    return { size, stream: this.#d.blobs.open(link.secureId, row.blob) };
  }

  /** Refuses a reply the link cannot have: no mailer (unavailable), nobody to reply to (bad-request). */
  ready(link: LinkView): ReplyMailer {
    const mailer = this.#d.mailer;
    if (!mailer) throw new Refusal('unavailable');
    if (!MAILBOX.test(link.sender)) {
      this.#d.log.warn({ linkId: link.id }, 'reader: reply refused, the message has no sender address');
      throw new Refusal('bad-request');
    }
    return mailer;
  }

  /**
   * reader.replyLimit: at most `perLink` replies per link, and `perDay` in any
   * 24 hours, counting replies still being received. Admitted: the reply
   * counts from now until `release()`. Refused: too-many-replies, with the
   * seconds until the day's window has room (none: the link is done).
   */
  async admit(link: LinkView): Promise<{ release(): void }> {
    const { perLink, perDay } = this.#d.limit;
    const now = this.#d.clock.now();
    // every reply counts, also one whose copy was purged since
    const counts = await this.#d.replies.counts(link.id, now - DAY_MS);
    const pending = this.#inFlight.get(link.id) ?? 0;
    let refusal: Refusal | undefined;
    if (counts.total + pending >= perLink) refusal = new Refusal('too-many-replies');
    else if (counts.recent + pending >= perDay) {
      const retryAfter = Math.max(1, Math.ceil(((counts.oldestRecent ?? now) + DAY_MS - now) / 1000));
      refusal = new Refusal('too-many-replies', { retryAfter });
    }
    if (refusal) {
      this.#d.log.info({ linkId: link.id, perLink, perDay }, 'reader: reply refused, the link reached its reply limit');
      throw refusal;
    }
    // counted from here on, in the same tick as the check above (no await between)
    this.#inFlight.set(link.id, pending + 1);
    let released = false;
    return {
      release: () => {
        if (released) return;
        released = true;
        const left = (this.#inFlight.get(link.id) ?? 1) - 1;
        if (left > 0) this.#inFlight.set(link.id, left);
        else this.#inFlight.delete(link.id);
      },
    };
  }

  /**
   * Stores the encrypted copy as a blob of the secure message and queues the
   * reply to the sender (From the recipient, In-Reply-To the original); a copy
   * whose mail was not queued is removed again. Resolves to the reply's time.
   */
  async send(link: LinkView, mailer: ReplyMailer, reply: ReceivedReply): Promise<{ createdAt: number }> {
    const { blobs, clock, links, log } = this.#d;
    await blobs.write(link.secureId, reply.replyId, fs.createReadStream(reply.copyPath));
    let queued: { queueId: string };
    try {
      queued = await mailer.queue({
        replyId: reply.replyId,
        secureId: link.secureId,
        linkId: link.id,
        about: link.queueId,
        from: link.address,
        to: link.sender,
        subject: replySubject(reply.subject),
        text: reply.text,
        inReplyTo: link.originMessageId,
        attachments: reply.attachments,
        copyBlob: reply.replyId,
      });
    } catch (err) {
      await blobs.removeOne(link.secureId, reply.replyId);
      throw err;
    }
    await links.touch(link.id, clock.now());
    log.info({ linkId: link.id, reply: reply.replyId, mail: queued.queueId, attachments: reply.attachments.length }, 'reader: reply queued for the sender');
    return { createdAt: clock.now() };
  }
}
