import type { Clock } from '../clock.js';
import type { Config } from '../config/schema.js';
import type { HandOff } from '../deliver/hand-off.js';
import type { Logger } from '../log.js';
import type { Notifier } from '../notify/index.js';
import { queueRelayMail } from '../pipeline/relay-mail.js';
import type { SqliteBackend } from '../store/sqlite-backend.js';
import { shredderFor } from '../store/shred.js';
import type { Language, Method } from './api.js';
import type { LinkRow } from './links.js';
import { StatusStore, type StatusLinkRow, type StatusMessageRow } from './status-store.js';

/** The revoke functions of src/store/revocation.ts the status page calls (actor 'sender'). */
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

/**
 * What the status page and the reader ask of the relay: a resent link with
 * its notification queued in the same commit, revocations, and the optional
 * first-open mail. Built by the relay (src/relay.ts) and handed to the reader.
 */
export interface StatusService {
  store: StatusStore;
  /** Sender's language for the status page and its mails. */
  language: Language;
  /** False when the old link is no longer active (nothing changed). */
  resend(input: ResendInput): Promise<boolean>;
  revoke(message: StatusMessageRow, linkId: string | undefined, at: number | undefined): Promise<void>;
  /** Called by the reader after a passed check (before open times are set). */
  verified(link: LinkRow): Promise<void>;
}

export interface StatusServiceDeps {
  config: Config;
  clock: Clock;
  log: Logger;
  backend: SqliteBackend;
  /** The resent link's notification and the first-open mail go to delivery through the hand-off. */
  handOff: HandOff;
  notifier: Notifier;
  revocations: StatusRevocations;
}

export function createStatusService(deps: StatusServiceDeps): StatusService {
  const { config, clock, log, backend, handOff, notifier, revocations } = deps;
  const store = new StatusStore(backend.db);
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
        () => store.replaceSync({ id: newLinkId, messageId: message.id, oldLinkId: old.id, wrap, kSrv, notificationId: id, createdAt: now }),
      );
      if (done) {
        // the old link's wrap and K_srv were overwritten (secure_delete); their page images leave the WAL now
        await shredderFor(backend.db, log).shred();
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
      if (!link.sender || store.openedBefore(link.secureId, link.recipientIdx, link.id)) return;
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
