import crypto from 'node:crypto';
import type { Clock } from '../clock.js';
import { ORIGIN_PLACEHOLDER, type OriginSigner } from '../crypto/origin.js';
import { stampOrigin } from '../crypto/origin-stamp.js';
import type { Logger } from '../log.js';
import type { MessageSpool } from '../spool/types.js';
import type { MessageRecord, RecipientRecord } from '../store/messages.js';
import type { Store as Backend } from '../store/store.js';
import { composeDsn, type Bounce } from './dsn.js';
import type { HandOff, OutboundMail } from './hand-off.js';

export interface DsnSenderDeps {
  clock: Clock;
  log: Logger;
  spool: MessageSpool;
  backend: Backend;
  signer: OriginSigner;
  hostname: string;
  /** DSNs and notices go to delivery through the hand-off, on the internal route. */
  handOff: HandOff;
  /** delivery.postmaster (src/deliver/postmaster.ts); undefined: nobody to tell, undeliverable relay mail is held at once. */
  postmaster?: string | undefined;
}

type Failure = { rcpt: RecipientRecord; bounce: Bounce };

/** RFC 3461: a DSN goes out for a failure unless the client asked otherwise, and never to <>. */
export function wantsFailureReport(message: MessageRecord, rcpt: RecipientRecord): boolean {
  if (message.mailFrom === '' || message.origin === 'dsn') return false;
  return !rcpt.notify || rcpt.notify.includes('FAILURE');
}

/**
 * Writes a DSN for failed recipients and queues it for the internal route.
 * Its id is derived from the message and the recipients, so running this
 * twice after a crash makes one DSN; callers write it before they record the
 * failure, so a crash in between never loses it.
 */
export class DsnSender {
  readonly #deps: DsnSenderDeps;

  constructor(deps: DsnSenderDeps) {
    this.#deps = deps;
  }

  async send(message: MessageRecord, failures: Failure[]): Promise<void> {
    const report = failures.filter(({ rcpt }) => wantsFailureReport(message, rcpt));
    if (!report.length) return;
    const dsnId = await this.#queue(message, report, 'dsn', message.mailFrom, 'sender', (id) => ({
      about: message.id,
      recipient: undefined,
      type: 'dsn-queued',
      detail: { dsn: id, recipients: report.map((r) => r.rcpt.address) },
    }));
    if (!dsnId) return;
    this.#deps.log.info({ queueId: message.id, dsn: dsnId, recipients: report.length }, 'dsn queued');
  }

  /** delivery.postmaster, or undefined when there is none. */
  get postmaster(): string | undefined {
    return this.#deps.postmaster;
  }

  /**
   * Postfix's double bounce: relay-made mail (a DSN, receipt, code mail,
   * notice or reply) failed and no report goes to a sender, so a notice with
   * its header block goes to the postmaster by the internal route. Same
   * crash rules as `send`: a deterministic id, written before the failure is
   * recorded. Returns the notice's queue id.
   */
  async notifyPostmaster(message: MessageRecord, failures: Failure[]): Promise<string> {
    const postmaster = this.#deps.postmaster;
    if (!postmaster) throw new Error('no postmaster address');
    const id = await this.#queue(message, failures, 'pm', postmaster, 'postmaster', (copy) => ({
      about: message.id,
      recipient: undefined,
      type: 'postmaster-queued',
      detail: { copy, postmaster, recipients: failures.map((r) => r.rcpt.address) },
    }));
    const copy = id ?? this.#idFor(message, failures, 'pm');
    if (id) {
      this.#deps.log.warn({ queueId: message.id, copy, recipients: failures.length }, 'relay-made mail undeliverable; notice queued for the postmaster');
    }
    return copy;
  }

  #idFor(message: MessageRecord, failures: Failure[], kind: 'dsn' | 'pm'): string {
    const digest = crypto.createHash('sha256').update(`${message.id}:${failures.map((r) => r.rcpt.idx).join(',')}`).digest('hex').slice(0, 12);
    return `${message.id}-${kind}-${digest}`;
  }

  /** Composes, spools and queues one report; undefined when it exists already (a repeated run). */
  async #queue(
    message: MessageRecord,
    report: Failure[],
    kind: 'dsn' | 'pm',
    to: string,
    audience: 'sender' | 'postmaster',
    event: (id: string) => NonNullable<OutboundMail['event']>,
  ): Promise<string | undefined> {
    const { backend, clock, spool, signer, hostname } = this.#deps;
    const dsnId = this.#idFor(message, report, kind);
    if (await backend.messages.get(dsnId)) return undefined;
    const now = clock.now();
    const headerId = `<${dsnId}@${hostname}>`;
    const composed = composeDsn({
      audience,
      reportingMta: hostname,
      queueId: message.id,
      to,
      arrivalDate: message.receivedAt,
      envId: message.envId,
      originalHeaders: await spool.readHeaderBlock(message.id),
      bounces: report.map((r) => r.bounce),
      now,
      messageId: headerId,
      origin: ORIGIN_PLACEHOLDER,
    });
    const bytes = await stampOrigin(signer, composed, { messageId: headerId, recipients: [to] });
    await this.#deps.handOff.send(
      { id: dsnId, from: '', to, messageId: headerId, size: bytes.length, origin: kind === 'pm' ? 'postmaster' : 'dsn', route: 'internal', bounces: 'never', event: event(dsnId) },
      bytes,
    );
    return dsnId;
  }
}
