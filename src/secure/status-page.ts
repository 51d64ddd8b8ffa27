import type { Clock } from '../clock.js';
import type { Method, Organisation, StatusKeyResponse, StatusRecipient, StatusResponse } from '../reader/api.js';
import { Refusal } from './refusal.js';
import { statusTokenMatches } from './status-keys.js';
import type { StatusLinkRow, StatusMessageRow, StatusService } from './status.js';

/**
 * The sender's status page, as domain logic (contract: src/reader/api.ts,
 * "status page"). Every request proves possession of the status link with
 * its token; SHA-256(token) is compared with the stored hash. An unknown id
 * and a wrong token are the same refusal (unknown-link), and a token only
 * ever reaches the one secure message its status id names: every link id a
 * request names must belong to that message. The HTTP layer is
 * src/reader/routes/status.ts.
 */

const METHODS: readonly Method[] = ['none', 'access-code', 'email-code', 'sms-code'];
/** A scheduled revocation lies at most this far ahead (longer than any retention anyway). */
const MAX_SCHEDULE_MS = 10 * 365 * 86400e3;

const iso = (ms: number | undefined) => (ms === undefined ? undefined : new Date(ms).toISOString());

export interface ResendRequest {
  linkId: string;
  newLinkId: string;
  wrap: Buffer;
  kSrv: Buffer;
  kLink: Buffer;
}

export class StatusPage {
  readonly #status: StatusService;
  readonly #clock: Clock;
  readonly #organisation: Organisation;

  constructor(status: StatusService, clock: Clock, organisation: Organisation) {
    this.#status = status;
    this.#clock = clock;
    this.#organisation = organisation;
  }

  /** The message the status id names when the token matches; otherwise unknown-link (the same for both). */
  async authorise(statusId: string, token: string): Promise<StatusMessageRow> {
    const message = await this.#status.store.byStatusId(statusId);
    if (!message || !statusTokenMatches(token, message.statusTokenHash)) throw new Refusal('unknown-link');
    return message;
  }

  /** What happened per recipient: the current link of each, with the opens, downloads and replies of all its links. */
  async overview(message: StatusMessageRow): Promise<StatusResponse> {
    const { store, language } = this.#status;
    const now = this.#clock.now();
    const links = await store.links(message.id);
    const downloads = await store.downloads(message.queueId);
    const replies = await store.replies(message.id);
    const byRecipient = new Map<number, typeof links>();
    for (const l of links) byRecipient.set(l.recipientIdx, [...(byRecipient.get(l.recipientIdx) ?? []), l]);
    const recipients: StatusRecipient[] = [];
    for (const all of byRecipient.values()) {
      const current = all.find((l) => l.state !== 'replaced') ?? all[all.length - 1]!;
      const opened = all.flatMap((l) => (l.firstOpenedAt !== undefined ? [l.firstOpenedAt] : []));
      const lastOpened = all.flatMap((l) => (l.lastOpenedAt !== undefined ? [l.lastOpenedAt] : []));
      const dl = all.flatMap((l) => (downloads.has(l.id) ? [downloads.get(l.id)!] : []));
      const rp = all.flatMap((l) => (replies.has(l.id) ? [replies.get(l.id)!] : []));
      const expired = message.state === 'expired' || message.expiresAt <= now || current.state === 'expired';
      const revoked = message.state === 'revoked' || current.state === 'revoked';
      const r: StatusRecipient = {
        linkId: current.id,
        address: current.address,
        method: (METHODS as readonly string[]).includes(current.method) ? (current.method as Method) : 'email-code',
        language: current.language === 'en' ? 'en' : 'nl',
        state: revoked ? 'revoked' : expired || current.state !== 'active' || !current.hasWrap ? 'expired' : 'active',
        notification: current.notificationState === 'delivered' ? 'delivered' : current.notificationState === 'bounced' ? 'failed' : 'pending',
        downloads: dl.reduce((n, d) => n + d.count, 0),
        replies: rp.reduce((n, d) => n + d.count, 0),
        resent: all.length - 1,
      };
      if (opened.length) r.firstOpenedAt = iso(Math.min(...opened))!;
      if (lastOpened.length) r.lastOpenedAt = iso(Math.max(...lastOpened))!;
      if (dl.length) r.lastDownloadAt = iso(Math.max(...dl.map((d) => d.last)))!;
      if (rp.length) r.lastReplyAt = iso(Math.max(...rp.map((d) => d.last)))!;
      if (current.revokeAt !== undefined && r.state === 'active') r.revokeAt = iso(current.revokeAt)!;
      recipients.push(r);
    }
    const response: StatusResponse = {
      secureId: message.id,
      sentAt: iso(message.createdAt)!,
      expiresAt: iso(message.expiresAt)!,
      state: message.state === 'active' && message.expiresAt <= now ? 'expired' : message.state,
      language,
      organisation: this.#organisation,
      recipients,
    };
    if (message.revokeAt !== undefined && message.state === 'active') response.revokeAt = iso(message.revokeAt)!;
    return response;
  }

  /** The sender's own wrap and K_srv, while the message is active. */
  key(message: StatusMessageRow, statusId: string): StatusKeyResponse {
    if (message.state !== 'active' || !message.senderWrap || !message.senderKSrv || message.expiresAt <= this.#clock.now()) throw new Refusal('not-active');
    return { secureId: message.id, statusId, wrap: message.senderWrap.toString('base64url'), kSrv: message.senderKSrv.toString('base64url') };
  }

  /** The link a request names, only when it belongs to this message: a token never reaches another message. */
  async #ownLink(message: StatusMessageRow, linkId: string): Promise<StatusLinkRow> {
    const link = (await this.#status.store.links(message.id)).find((l) => l.id === linkId);
    if (!link) throw new Refusal('unknown-link');
    return link;
  }

  /** Revokes the message or one of its links, now or at `at` (an ISO time; past: now, more than ten years ahead: bad-request). */
  async revoke(message: StatusMessageRow, request: { linkId?: string | undefined; at?: string | undefined }): Promise<void> {
    const { linkId } = request;
    if (linkId) await this.#ownLink(message, linkId);
    let at: number | undefined;
    if (request.at !== undefined) {
      at = Date.parse(request.at);
      const now = this.#clock.now();
      if (!Number.isFinite(at) || at > now + MAX_SCHEDULE_MS) throw new Refusal('bad-request');
      if (at <= now) at = undefined;
    }
    await this.#status.revoke(message, linkId, at);
  }

  /** A fresh link for a recipient (minted by the sender's page), its notification queued; not-active when the old link cannot be replaced. */
  async resend(message: StatusMessageRow, request: ResendRequest, clientIp: string): Promise<string> {
    const old = await this.#ownLink(message, request.linkId);
    const now = this.#clock.now();
    if (message.state !== 'active' || message.expiresAt <= now || old.state !== 'active' || !old.hasWrap) throw new Refusal('not-active');
    const ok = await this.#status.resend({ message, old, newLinkId: request.newLinkId, wrap: request.wrap, kSrv: request.kSrv, kLink: request.kLink, clientIp });
    if (!ok) throw new Refusal('not-active');
    return request.newLinkId;
  }
}
