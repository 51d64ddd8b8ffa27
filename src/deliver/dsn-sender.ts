import crypto from 'node:crypto';
import type { Clock } from '../clock.js';
import { ORIGIN_PLACEHOLDER, type OriginSigner } from '../crypto/origin.js';
import { stampOrigin } from '../crypto/origin-stamp.js';
import type { Logger } from '../log.js';
import type { NewJob } from '../queue/types.js';
import type { Spool } from '../spool/spool.js';
import type { MessageRecord, RecipientRecord } from '../store/messages.js';
import type { Backend } from '../store/sqlite-backend.js';
import { composeDsn, type Bounce } from './dsn.js';

export interface DsnSenderDeps {
  clock: Clock;
  log: Logger;
  spool: Spool;
  backend: Backend;
  signer: OriginSigner;
  hostname: string;
  /** The job that delivers a relay-made message to the internal route. */
  deliverInternal: (messageId: string) => NewJob;
}

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

  async send(message: MessageRecord, failures: Array<{ rcpt: RecipientRecord; bounce: Bounce }>): Promise<void> {
    const { backend, clock, spool, signer, log, hostname } = this.#deps;
    const report = failures.filter(({ rcpt }) => wantsFailureReport(message, rcpt));
    if (!report.length) return;
    const digest = crypto.createHash('sha256').update(`${message.id}:${report.map((r) => r.rcpt.idx).join(',')}`).digest('hex').slice(0, 12);
    const dsnId = `${message.id}-dsn-${digest}`;
    if (backend.store.getMessage(dsnId)) return;
    const now = clock.now();
    const headerId = `<${dsnId}@${hostname}>`;
    const composed = composeDsn({
      reportingMta: hostname,
      queueId: message.id,
      to: message.mailFrom,
      arrivalDate: message.receivedAt,
      envId: message.envId,
      originalHeaders: await spool.readHeaderBlock(message.id),
      bounces: report.map((r) => r.bounce),
      now,
      messageId: headerId,
      origin: ORIGIN_PLACEHOLDER,
    });
    const bytes = await stampOrigin(signer, composed, { messageId: headerId, recipients: [message.mailFrom] });
    await spool.write(dsnId, bytes);
    await backend.intake(
      { id: dsnId, receivedAt: now, mailFrom: '', size: bytes.length, messageId: headerId, origin: 'dsn', recipients: [{ address: message.mailFrom, notify: ['NEVER'] }] },
      this.#deps.deliverInternal(dsnId),
    );
    await backend.store.appendEvent({ messageId: message.id, type: 'dsn-queued', detail: { dsn: dsnId, recipients: report.map((r) => r.rcpt.address) } });
    log.info({ queueId: message.id, dsn: dsnId, recipients: report.length }, 'dsn queued');
  }
}
