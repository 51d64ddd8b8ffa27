import type { Clock } from '../clock.js';
import type { MessageSpool } from '../spool/types.js';
import type { EventType } from '../store/events.js';
import type { MessageOrigin } from '../store/messages.js';
import type { Store as Backend } from '../store/store.js';
import type { Tx } from '../store/tx.js';
import { deliverJob, type Route } from './deliver-job.js';

/**
 * A mail the relay hands to delivery: a notification, a receipt, a code mail,
 * a notice, a reply, a DSN. Everything the delivery needs to know is here,
 * decided by the producer once: the route, and what a bounce of it does.
 */
export interface OutboundMail {
  /** Queue id (also the spool file's name). */
  id: string;
  /** Envelope sender; '' for the null sender (DSNs). */
  from: string;
  /** The one envelope recipient. */
  to: string;
  /** The Message-ID header (recorded so a loop-back can be recognised as the relay's own mail once). */
  messageId: string;
  size: number;
  origin: Exclude<MessageOrigin, 'ingress'>;
  /** `target` (the outside world) or `internal` (the organisation's own mail server). */
  route: Route;
  /**
   * What a failure of this mail reports: `sender` (the default NOTIFY: a DSN
   * to `from`, e.g. a notification whose recipient does not exist must reach
   * the original sender) or `never` (NOTIFY=NEVER: mail to or from a no-reply
   * address must not start a DSN loop; the postmaster rules apply instead).
   */
  bounces: 'sender' | 'never';
  /** The event recorded on the message this mail is about, in the same commit (`recipient`: whom the event names, if anyone). */
  event?: { about: string; type: EventType; recipient: string | undefined; detail?: Record<string, unknown> };
}

export interface HandOffDeps {
  backend: Backend;
  spool: MessageSpool;
  clock: Clock;
}

/**
 * The one way a mail goes to delivery. The bytes are on disk (spooled with
 * fsync) before anything refers to them; then, in one commit, the message
 * and its recipient, its deliver job and the event on the message it is
 * about. A commit that fails removes the spool file again, so nothing points
 * at a missing file and no file outlives its message.
 */
export class HandOff {
  readonly #deps: HandOffDeps;

  constructor(deps: HandOffDeps) {
    this.#deps = deps;
  }

  /** Records one mail whose bytes are spooled already, inside the caller's transaction (with the caller's own rows). */
  async record(tx: Tx, mail: OutboundMail): Promise<void> {
    const { backend, clock } = this.#deps;
    await backend.messages.insertReceived(tx, {
      id: mail.id,
      receivedAt: clock.now(),
      mailFrom: mail.from,
      size: mail.size,
      messageId: mail.messageId,
      origin: mail.origin,
      recipients: [{ address: mail.to, ...(mail.bounces === 'never' ? { notify: ['NEVER'] } : {}) }],
    });
    await backend.queue.insert(tx, [deliverJob(mail.id, mail.route, [0])]);
    if (mail.event) {
      const { about, type, recipient, detail } = mail.event;
      await backend.events.append(tx, { messageId: about, recipient, type, detail: detail ?? {} });
    }
  }

  /**
   * Spools `bytes` (unless `bytes` is undefined: the producer spooled a stream
   * itself), then commits the mail with whatever `also` writes in the same
   * transaction, and wakes the delivery workers. Resolves to `also`'s result.
   * When `also` returns `false` the mail is not recorded and its file goes.
   */
  async send<R = void>(mail: OutboundMail, bytes: Buffer | undefined, also?: (tx: Tx) => Promise<R> | R): Promise<R> {
    const { backend, spool } = this.#deps;
    if (bytes) await spool.write(mail.id, bytes);
    let recorded = false;
    let result: R;
    try {
      result = await backend.transaction(async (tx) => {
        const value = also ? await also(tx) : (undefined as R);
        if (value === false) return value;
        await this.record(tx, mail);
        recorded = true;
        return value;
      });
    } catch (err) {
      await spool.remove(mail.id).catch(() => undefined);
      throw err;
    }
    if (!recorded) await spool.remove(mail.id).catch(() => undefined);
    else backend.queue.poke('deliver');
    return result;
  }

  /** Wakes the delivery workers after a transaction that recorded mail through `record`. */
  poke(): void {
    this.#deps.backend.queue.poke('deliver');
  }
}
