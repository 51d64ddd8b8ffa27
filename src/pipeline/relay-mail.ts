import crypto from 'node:crypto';
import type { HandOff } from '../deliver/hand-off.js';
import type { Route } from '../deliver/deliver-job.js';
import type { EventType } from '../store/events.js';

export interface RelayMail {
  messageId: string;
  /** Envelope sender. */
  from: string;
  to: string;
  raw: Buffer;
}

/**
 * Queues a short mail the relay wrote itself (a one-time code, a notice to a
 * sender, the first-open mail) through the hand-off: spooled with fsync, then
 * recorded with its delivery job and the event on the message it is about in
 * one commit. NOTIFY=NEVER: a bounce of such a mail must not start a DSN loop
 * through the no-reply address.
 */
export async function queueRelayMail(
  handOff: HandOff,
  mail: RelayMail,
  options: { about: string; route: Route; kind: string; event: EventType; detail?: Record<string, unknown> },
): Promise<string> {
  const id = `${options.about}-${options.kind}-${crypto.randomBytes(6).toString('hex')}`;
  await handOff.send(
    {
      id,
      from: mail.from,
      to: mail.to,
      messageId: mail.messageId,
      size: mail.raw.length,
      origin: 'notification',
      route: options.route,
      bounces: 'never',
      event: { about: options.about, recipient: mail.to, type: options.event, detail: { mail: id, ...options.detail } },
    },
    mail.raw,
  );
  return id;
}
