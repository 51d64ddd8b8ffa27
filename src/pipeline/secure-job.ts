import { newJob } from '../queue/registry.js';
import type { Clock } from '../clock.js';
import type { Config } from '../config/schema.js';
import { parseDuration } from '../config/units.js';
import { phoneOrUndefined } from '../address.js';
import { findTags, stripTags } from '../classify/engine.js';
import { newKey, newSecureId, wrapKey } from '../crypto/key-schedule.js';
import type { HandOff } from '../deliver/hand-off.js';
import { ZegelError } from '../errors.js';
import type { Logger } from '../log.js';
import type { Job, JobResult, NewJob } from '../queue/types.js';
import type { MessageSpool } from '../spool/types.js';
import type { BlobRepository } from '../store/blobs.js';
import type { SecureLinkInsert } from '../store/secure.js';
import type { SecureRepositories } from '../store/secure-repositories.js';
import type { Store } from '../store/store.js';
import { encryptContent } from './secure-content.js';
import { ThreadFinder } from '../secure/reply-thread.js';
import { mintStatusLink, statusUrl, type MintedStatusLink } from '../secure/status-keys.js';
import type { RelayMetrics } from '../ops/metrics.js';
import type { Tx } from '../store/tx.js';

export interface SecurePayload {
  messageId: string;
  /** Recipient indexes that get the message securely. */
  recipients: number[];
  /** An encrypt finding lies in the subject: notifications use a neutral subject. */
  subjectSensitive?: boolean;
}

export function secureJob(messageId: string, recipients: number[], subjectSensitive: boolean): NewJob {
  return newJob('secure', `secure:${messageId}`, { messageId, recipients, subjectSensitive });
}

export type Method = SecureLinkInsert['method'];
export type Language = SecureLinkInsert['language'];

/** How one recipient is checked, from the recipient directory (address, then @domain, then defaults). */
export interface RecipientSettings {
  method: Method;
  phone?: string | undefined;
  language: Language;
  /** An access code is on record for this address or its domain. */
  hasAccessCode: boolean;
}

export interface NotificationRequest {
  language: Language;
  to: string;
  sender: { name?: string | undefined; address: string };
  subject: string;
  subjectSensitive: boolean;
  link: string;
  method: Method;
  expiresAt: number;
  now: number;
}

export interface ReceiptRequest {
  language: Language;
  /** The envelope sender. */
  to: string;
  recipients: Array<{ address: string; method: Method }>;
  subject: string;
  subjectSensitive: boolean;
  /** `<publicUrl>/s/<statusId>#<K_link_s>` */
  link: string;
  expiresAt: number;
  now: number;
}

export interface SecureDeps {
  /** Its slice of the configuration. */
  config: Pick<Config, 'classify' | 'notification' | 'organisation' | 'reader' | 'receipts' | 'retention'>;
  clock: Clock;
  log: Logger;
  spool: MessageSpool;
  backend: Store;
  /** Notifications and the receipt go to delivery through the hand-off, in the secure message's commit. */
  handOff: HandOff;
  blobs: BlobRepository;
  secure: SecureRepositories['secure'];
  resolveRecipient: (address: string) => Promise<RecipientSettings>;
  /** Renders one notification; resolves to its Message-ID and raw bytes. */
  composeNotification: (request: NotificationRequest) => Promise<{ messageId: string; raw: Buffer }>;
  /** Renders the sender's receipt with the status link (config receipts.sender); absent: no receipt. */
  composeReceipt?: ((request: ReceiptRequest) => Promise<{ messageId: string; from: string; raw: Buffer }>) | undefined;
  metrics?: RelayMetrics | undefined;
}

/** Subject tags that change how a message is sent: `[sms:+316…]` and `[verloopt:7d]`. */
export function readSubjectTags(subject: string, optInTags: readonly string[]): { stripped: string; phone?: string; expiresIn?: number } {
  const tags = findTags(subject, optInTags);
  let phone: string | undefined;
  let expiresIn: number | undefined;
  for (const tag of tags) {
    const match = /^\[\s*(sms|verloopt)\s*:([^\]]*)\]$/iu.exec(subject.slice(tag.start, tag.end));
    if (!match) continue;
    const value = match[2]!.trim();
    if (match[1]!.toLowerCase() === 'sms') {
      // the directory's normaliser (src/address.ts): a number it would refuse is ignored here,
      // so the recipient keeps the method the directory or verification.default gives
      const normalised = phoneOrUndefined(value);
      if (normalised) phone = normalised;
    } else {
      const ms = parseDuration(value);
      if (ms !== undefined && ms > 0) expiresIn = Math.min(expiresIn ?? ms, ms);
    }
  }
  return { stripped: stripTags(subject, tags), ...(phone ? { phone } : {}), ...(expiresIn ? { expiresIn } : {}) };
}

/**
 * The secure job: the path an `encrypt` decision takes. It encrypts the
 * message under a fresh content key K (attachments streamed straight into
 * ciphertext blobs), and for every secured recipient mints a link
 * (K_link only in the notification, K_srv and the wrap W stored), writes the
 * notification to the spool and queues it for the next hop. The secure
 * message, its links, the notifications and their delivery jobs are committed
 * in one transaction; a crash before that commit leaves only unreferenced
 * blobs and spool files, which start-up removes, and the job runs again from
 * the start with new keys. Once every recipient is served the plaintext
 * spool file is removed.
 */
export class SecureDelivery {
  readonly #deps: SecureDeps;
  readonly #threads: ThreadFinder;

  constructor(deps: SecureDeps) {
    this.#deps = deps;
    this.#threads = new ThreadFinder(deps.backend.secure);
  }

  /**
   * The conversation an answer continues (In-Reply-To/References name a reader reply or a secure
   * original), if any. `references` are those header lines as the parse of the message saw them
   * (no second read of the spool file).
   */
  async #threadOf(queueId: string, references: string): Promise<string | undefined> {
    if (!references) return undefined;
    try {
      return await this.#threads.find(references);
    } catch (err) {
      this.#deps.log.warn({ queueId, reason: String((err as { code?: unknown }).code ?? (err as Error).name) }, 'secure job: references not read; the message starts its own thread');
      return undefined;
    }
  }

  readonly handle = async (job: Job<SecurePayload>): Promise<JobResult> => {
    const { backend, spool, secure, blobs, clock, config, log, handOff } = this.#deps;
    const { messageId } = job.payload;
    const message = await backend.messages.get(messageId);
    if (!message) {
      log.error({ job: job.id, queueId: messageId }, 'secure job for an unknown message; dropped');
      return { status: 'done' };
    }
    if (await secure.byQueueId(messageId)) return { status: 'done' };
    const wanted = new Set(job.payload.recipients);
    const recipients = (await backend.messages.recipients(messageId)).filter((r) => wanted.has(r.idx) && r.state === 'pending');
    if (!recipients.length) return { status: 'done' };
    if (!message.spool) throw new ZegelError('ZEGEL_SPOOL_MISSING', `spool file of ${messageId} is gone`);

    const started = Date.now();
    const now = clock.now();
    const secureId = newSecureId();
    const contentKey = newKey();
    let encrypted;
    try {
      encrypted = await encryptContent({
        source: ((source) => ('bytes' in source ? source.bytes : spool.read(messageId, message.size)))(spool.source(messageId)),
        contentKey,
        secureId,
        blobs,
        subjectFor: (subject) => readSubjectTags(subject, config.classify.optInTags).stripped,
        receivedAt: message.receivedAt,
      });
    } catch (err) {
      await blobs.remove(secureId);
      throw err;
    }
    const tags = readSubjectTags(encrypted.subject, config.classify.optInTags);
    const expiresAt = now + Math.min(config.retention.messages, tags.expiresIn ?? Infinity);
    // who the notification names: the From header, else the envelope sender, else the organisation's no-reply address
    const mailbox = /^[^\s@<>,;:"()[\]\\]+@[^\s@<>,;:"()[\]\\]+$/;
    const address = [encrypted.from.address, message.mailFrom, config.notification.noReplyAddress].find((a): a is string => !!a && mailbox.test(a));
    const sender = { name: encrypted.from.name ?? (address ? undefined : config.organisation.name), address: address ?? `no-reply@${config.organisation.domains[0] ?? 'localhost'}` };

    // Every file this job writes (the body blob, each notification, the receipt) goes to disk side by
    // side, and all of them are durable before the commit: the fsyncs overlap instead of queueing one
    // after the other (issue 15). On any failure, what was written goes again and the job retries.
    const writes: Array<Promise<void>> = [encrypted.bodyWritten];
    const spooled: string[] = [];
    const spoolWrite = (id: string, raw: Buffer): void => {
      spooled.push(id);
      writes.push(spool.write(id, raw));
    };
    const links: SecureLinkInsert[] = [];
    const notifications: Array<{ id: string; idx: number; address: string; messageId: string; size: number; method: Method; linkId: string }> = [];
    let receipt: { id: string; status: MintedStatusLink; messageId: string; from: string; size: number; to: string } | undefined;
    let threadId: string;
    try {
      for (const rcpt of recipients) {
        const settings = await this.#deps.resolveRecipient(rcpt.address);
        let { method } = settings;
        let phone = settings.phone;
        if (tags.phone && recipients.length === 1) [method, phone] = ['sms-code', tags.phone];
        if (method === 'sms-code' && !phone) {
          log.warn({ queueId: messageId, recipient: rcpt.idx }, 'sms-code without a phone number: the recipient gets an e-mail code instead');
          method = 'email-code';
        }
        if (method === 'access-code' && !settings.hasAccessCode) {
          log.warn({ queueId: messageId, recipient: rcpt.idx }, 'access-code without a code on record: the recipient gets an e-mail code instead');
          method = 'email-code';
        }
        const linkId = newSecureId();
        const kLink = newKey();
        const kSrv = newKey();
        const id = `${messageId}-n${rcpt.idx}`;
        links.push({ id: linkId, recipientIdx: rcpt.idx, address: rcpt.address, method, phone, language: settings.language, wrap: wrapKey(contentKey, kLink, kSrv, secureId, linkId), kSrv, notificationId: id });
        const link = `${config.reader.publicUrl.replace(/\/+$/, '')}/m/${linkId}#${kLink.toString('base64url')}`;
        const mail = await this.#deps.composeNotification({
          language: settings.language,
          to: rcpt.address,
          sender,
          subject: tags.stripped,
          subjectSensitive: job.payload.subjectSensitive ?? false,
          link,
          method,
          expiresAt,
          now,
        });
        // the only place K_link is written: the notification, until the next hop accepts it
        spoolWrite(id, mail.raw);
        notifications.push({ id, idx: rcpt.idx, address: rcpt.address, messageId: mail.messageId, size: mail.raw.length, method, linkId });
      }
      // the sender's receipt with the status link (K_link_s only in that mail, like a recipient's K_link)
      if (this.#deps.composeReceipt && config.receipts.sender && message.mailFrom && mailbox.test(message.mailFrom)) {
        const status = mintStatusLink(contentKey, secureId);
        const mail = await this.#deps.composeReceipt({
          language: config.notification.language.default,
          to: message.mailFrom,
          recipients: notifications.map((n) => ({ address: n.address, method: n.method })),
          subject: tags.stripped,
          subjectSensitive: job.payload.subjectSensitive ?? false,
          link: statusUrl(config.reader.publicUrl, status.statusId, status.kLink),
          expiresAt,
          now,
        });
        status.kLink.fill(0);
        const id = `${messageId}-receipt`;
        spoolWrite(id, mail.raw);
        receipt = { id, status, messageId: mail.messageId, from: mail.from, size: mail.raw.length, to: message.mailFrom };
      }
      contentKey.fill(0);
      threadId = (await this.#threadOf(messageId, encrypted.references)) ?? secureId;
      const failed = (await Promise.allSettled(writes)).find((w): w is PromiseRejectedResult => w.status === 'rejected');
      if (failed) throw failed.reason;
      // encrypted and stored: the body blob is durable (its write ran beside the notifications')
      this.#deps.metrics?.encrypted(Date.now() - started);
    } catch (err) {
      contentKey.fill(0);
      // nothing refers to these files yet; a retry starts again with new keys
      await Promise.allSettled(writes);
      await Promise.allSettled([blobs.remove(secureId), ...spooled.map((id) => spool.remove(id))]);
      throw err;
    }

    // the secure message, its links, every notification with its job and event, the receipt, and this
    // job's completion: one commit
    let pending = -1;
    const record = async (tx: Tx): Promise<void> => {
      await secure.insert(
        tx,
        { id: secureId, queueId: messageId, sender: message.mailFrom, createdAt: now, expiresAt, bodyBlob: encrypted.bodyBlob, blobs: encrypted.blobs, originMessageId: message.messageId, threadId },
        links,
      );
      for (const n of notifications) {
        await handOff.record(tx, {
          id: n.id,
          // bounces of a notification go to the original sender, who must learn that it did not arrive
          from: message.mailFrom,
          to: n.address,
          messageId: n.messageId,
          size: n.size,
          origin: 'notification',
          route: 'target',
          bounces: 'sender',
          event: { about: messageId, recipient: n.address, type: 'notification-queued', detail: { notification: n.id, method: n.method, link: n.linkId } },
        });
      }
      if (receipt) {
        const { status } = receipt;
        await secure.setStatus(tx, secureId, { statusId: status.statusId, tokenHash: status.tokenHash, wrap: status.wrap, kSrv: status.kSrv });
        await handOff.record(tx, {
          id: receipt.id,
          from: receipt.from,
          to: receipt.to,
          messageId: receipt.messageId,
          size: receipt.size,
          origin: 'notification',
          route: 'internal',
          // a bounce of the receipt must not loop back to the no-reply address
          bounces: 'never',
          event: { about: messageId, recipient: receipt.to, type: 'mail-queued', detail: { mail: receipt.id, kind: 'receipt', status: status.statusId } },
        });
      }
      pending = await backend.messages.recordAttempt(
        tx,
        messageId,
        notifications.map((n) => ({ idx: n.idx, outcome: 'encrypted' as const, reply: `stored encrypted as ${secureId}` })),
        { secureId, blobs: encrypted.blobs.length },
      );
    };
    const afterCommit = async (): Promise<void> => {
      backend.queue.poke('deliver');
      log.info({ queueId: messageId, secureId, recipients: notifications.length, blobs: encrypted.blobs.length, ms: Date.now() - started }, 'message stored encrypted, notifications queued');
      if (pending === 0) await spool.remove(messageId);
    };
    return { status: 'done', record, afterCommit };
  };
}
