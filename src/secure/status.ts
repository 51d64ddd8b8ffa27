import type { Config } from '../config/schema.js';
import type { HandOff } from '../deliver/hand-off.js';
import type { Logger } from '../log.js';
import type { Notifier } from '../notify/index.js';
import { queueRelayMail } from '../pipeline/relay-mail.js';
import type { Language, Method } from '../reader/api.js';
import type { MessageRepository } from '../store/messages.js';
import type { SecureMessageRow } from '../store/secure.js';
import type { SecureContext } from './context.js';
import type { LinkView } from './links.js';
import type { Shredder } from './revocation.js';

/**
 * The sender's status page, as domain logic: the message a status id names,
 * what happened per link (its notification's delivery state, open times,
 * downloads, replies), a resent link with its notification queued in the same
 * commit, revocations, and the optional first-open mail. Built by the relay
 * (src/relay.ts) and handed to the reader (src/reader/routes/status.ts).
 */

export interface StatusMessageRow {
  id: string;
  queueId: string;
  sender: string;
  createdAt: number;
  expiresAt: number;
  state: string;
  revokeAt: number | undefined;
  statusTokenHash: string | undefined;
  senderWrap: Buffer | undefined;
  senderKSrv: Buffer | undefined;
}

export interface StatusLinkRow {
  id: string;
  recipientIdx: number;
  address: string;
  method: string;
  phone: string | undefined;
  language: string;
  state: string;
  createdAt: number;
  firstOpenedAt: number | undefined;
  lastOpenedAt: number | undefined;
  revokeAt: number | undefined;
  replacedBy: string | undefined;
  notificationId: string | undefined;
  /** recipients.state of the notification: pending | delivered | bounced; undefined when unknown. */
  notificationState: string | undefined;
  hasWrap: boolean;
}

/** The revoke functions of src/secure/revocation.ts the status page calls (actor 'sender'). */
export interface StatusRevocations {
  revokeLink(linkId: string, actor: 'sender'): Promise<unknown>;
  revokeMessage(secureId: string, actor: 'sender'): Promise<unknown>;
  scheduleLinkRevoke(linkId: string, at: number | null, actor: 'sender'): Promise<unknown>;
  scheduleMessageRevoke(secureId: string, at: number | null, actor: 'sender'): Promise<unknown>;
}

export interface ResendInput {
  message: StatusMessageRow;
  old: StatusLinkRow;
  newLinkId: string;
  wrap: Buffer;
  kSrv: Buffer;
  /** K_link': goes only into the queued notification. */
  kLink: Buffer;
  /** The client address of the request (reader.trustedProxies applied): recorded on the event. */
  clientIp?: string;
}

/** Reads of the status page. */
export interface StatusReads {
  byStatusId(statusId: string): Promise<StatusMessageRow | undefined>;
  links(secureId: string): Promise<StatusLinkRow[]>;
  /** Downloads per link id (events 'downloaded' of the queued message). */
  downloads(queueId: string): Promise<Map<string, { count: number; last: number }>>;
  /** Replies per link id. */
  replies(secureId: string): Promise<Map<string, { count: number; last: number }>>;
}

export interface StatusService {
  store: StatusReads;
  /** Sender's language for the status page and its mails. */
  language: Language;
  /** False when the old link is no longer active (nothing changed). */
  resend(input: ResendInput): Promise<boolean>;
  revoke(message: StatusMessageRow, linkId: string | undefined, at: number | undefined): Promise<void>;
  /** Called by the reader after a passed check (before open times are set). */
  verified(link: LinkView): Promise<void>;
}

export interface StatusServiceDeps extends SecureContext {
  /** Its slice of the configuration. */
  config: Pick<Config, 'notification' | 'organisation' | 'reader' | 'receipts'>;
  log: Logger;
  /** The notifications' delivery state (recipients of the notification's queued message). */
  messages: Pick<MessageRepository, 'recipients'>;
  /** The resent link's notification and the first-open mail go to delivery through the hand-off. */
  handOff: HandOff;
  notifier: Notifier;
  revocations: StatusRevocations;
  /** Truncates the WAL after the old link's keys were overwritten. */
  shredder: Shredder;
}

const opt = <T>(v: T | null | undefined): T | undefined => (v === null || v === undefined ? undefined : v);

function toStatusMessage(row: SecureMessageRow): StatusMessageRow {
  return {
    id: row.id,
    queueId: row.queue_id,
    sender: row.sender,
    createdAt: row.created_at,
    expiresAt: row.expires_at,
    state: row.state,
    revokeAt: opt(row.revoke_at),
    statusTokenHash: opt(row.status_token_hash),
    senderWrap: opt(row.sender_wrap),
    senderKSrv: opt(row.sender_k_srv),
  };
}

export function createStatusReads(ctx: SecureContext, messages: Pick<MessageRepository, 'recipients'>): StatusReads {
  const { repos, events } = ctx;
  return {
    async byStatusId(statusId) {
      const row = await repos.secure.byStatusId(statusId);
      return row ? toStatusMessage(row) : undefined;
    },
    async links(secureId) {
      const rows = await repos.links.ofMessage(secureId);
      return Promise.all(
        rows.map(async (r) => {
          // the notification is a one-recipient message: its recipient 0 says delivered, bounced or pending
          const notification = r.notification_id ? (await messages.recipients(r.notification_id)).find((x) => x.idx === 0) : undefined;
          return {
            id: r.id,
            recipientIdx: r.recipient_idx,
            address: r.address,
            method: r.method,
            phone: opt(r.phone),
            language: r.language,
            state: r.state,
            createdAt: r.created_at,
            firstOpenedAt: opt(r.first_opened_at),
            lastOpenedAt: opt(r.last_opened_at),
            revokeAt: opt(r.revoke_at),
            replacedBy: opt(r.replaced_by),
            notificationId: opt(r.notification_id),
            notificationState: notification?.state,
            hasWrap: r.wrap !== null && r.k_srv !== null,
          } satisfies StatusLinkRow;
        }),
      );
    },
    async downloads(queueId) {
      const out = new Map<string, { count: number; last: number }>();
      for (const e of await events.forMessage(queueId)) {
        const linkId = e.type === 'downloaded' ? e.detail.linkId : undefined;
        if (typeof linkId !== 'string' || !linkId) continue;
        const seen = out.get(linkId);
        out.set(linkId, { count: (seen?.count ?? 0) + 1, last: Math.max(seen?.last ?? -Infinity, e.at) });
      }
      return out;
    },
    replies(secureId) {
      return repos.replies.perLink(secureId);
    },
  };
}

export function createStatusService(deps: StatusServiceDeps): StatusService {
  const { config, clock, log, handOff, notifier, revocations, repos } = deps;
  const store = createStatusReads(deps, deps.messages);
  const language = config.notification.language.default;
  const publicUrl = config.reader.publicUrl.replace(/\/+$/, '');

  return {
    store,
    language,

    async resend({ message, old, newLinkId, wrap, kSrv, kLink, clientIp }) {
      const now = clock.now();
      const id = `${message.queueId}-n${old.recipientIdx}-${newLinkId.slice(0, 8)}`;
      const mail = await notifier.notification({
        language: old.language === 'en' ? 'en' : 'nl',
        to: old.address,
        sender: { address: message.sender || config.notification.noReplyAddress || `no-reply@${config.organisation.domains[0] ?? 'localhost'}` },
        // the server never saw the stripped subject it could show: the notification stays neutral
        subject: '',
        subjectSensitive: true,
        link: `${publicUrl}/m/${newLinkId}#${kLink.toString('base64url')}`,
        method: old.method as Method,
        expiresAt: message.expiresAt,
        now,
      });
      kLink.fill(0);
      // the only place K_link' is written: the notification, until the next hop accepts it; the fresh link
      // and its notification are one commit, and nothing is queued when the old link is no longer active
      const done = await handOff.send(
        {
          id,
          from: message.sender,
          to: old.address,
          messageId: mail.messageId,
          size: mail.raw.length,
          origin: 'notification',
          route: 'target',
          bounces: 'sender',
          event: {
            about: message.queueId,
            recipient: old.address,
            type: 'link-resent',
            detail: { notification: id, method: old.method, link: newLinkId, replaces: old.id, ...(clientIp ? { clientIp } : {}) },
          },
        },
        mail.raw,
        async (tx) => {
          // the old link becomes 'replaced': its wrap and K_srv gone, its sessions ended, its codes void
          if (!(await repos.links.replace(tx, { id: newLinkId, messageId: message.id, oldLinkId: old.id, wrap, kSrv, notificationId: id, createdAt: now }))) return false;
          await repos.sessions.endForLink(tx, old.id);
          await repos.codes.voidLive(tx, old.id);
          return true;
        },
      );
      if (done) {
        // the old link's wrap and K_srv were overwritten (secure_delete); their page images leave the WAL now
        await deps.shredder.shred();
        log.info({ queueId: message.queueId, oldLink: old.id, link: newLinkId }, 'status: fresh link minted by the sender, notification queued');
      }
      return done;
    },

    async revoke(message, linkId, at) {
      if (at === undefined) {
        if (linkId) await revocations.revokeLink(linkId, 'sender');
        else await revocations.revokeMessage(message.id, 'sender');
      } else if (linkId) await revocations.scheduleLinkRevoke(linkId, at, 'sender');
      else await revocations.scheduleMessageRevoke(message.id, at, 'sender');
      log.info({ queueId: message.queueId, link: linkId, at: at === undefined ? 'now' : new Date(at).toISOString() }, 'status: revoked by the sender');
    },

    async verified(link) {
      if (!config.receipts.firstOpen || link.firstOpenedAt !== undefined) return;
      if (!link.sender || (await repos.links.openedBefore(link.secureId, link.recipientIdx, link.id))) return;
      const now = clock.now();
      try {
        const mail = await notifier.firstOpen({ language, to: link.sender, recipient: link.address, openedAt: now, now });
        await queueRelayMail(handOff, mail, {
          about: link.queueId,
          route: 'internal',
          kind: 'first-open',
          event: 'mail-queued',
          detail: { kind: 'first-open', link: link.id },
        });
      } catch (err) {
        // the recipient's open must not fail because the sender's courtesy mail did
        log.warn({ linkId: link.id, reason: String((err as { code?: unknown }).code ?? (err as Error).name) }, 'status: first-open mail could not be queued');
      }
    },
  };
}
