import crypto from 'node:crypto';
import type { Clock } from '../clock.js';
import { deliverJob, type Route } from '../deliver/deliver-job.js';
import type { Spool } from '../spool/spool.js';
import type { EventType } from '../store/messages.js';
import type { SqliteBackend } from '../store/sqlite-backend.js';

export interface RelayMail {
  messageId: string;
  /** Envelope sender. */
  from: string;
  to: string;
  raw: Buffer;
}

/**
 * Queues a mail the relay wrote itself (a one-time code, a notice to a
 * sender) like an accepted message: spooled with fsync, then recorded with
 * its delivery job in one commit. NOTIFY=NEVER: a bounce of such a mail must
 * not start a DSN loop through the no-reply address.
 */
export async function queueRelayMail(
  deps: { backend: SqliteBackend; spool: Spool; clock: Clock },
  mail: RelayMail,
  options: { about: string; route: Route; kind: string; event: EventType; detail?: Record<string, unknown> },
): Promise<string> {
  const { backend, spool, clock } = deps;
  const id = `${options.about}-${options.kind}-${crypto.randomBytes(6).toString('hex')}`;
  await spool.write(id, mail.raw);
  const now = clock.now();
  await backend.committer.write(() => {
    backend.store.insertReceivedSync({
      id,
      receivedAt: now,
      mailFrom: mail.from,
      size: mail.raw.length,
      messageId: mail.messageId,
      origin: 'notification',
      recipients: [{ address: mail.to, notify: ['NEVER'] }],
    });
    backend.queue.insertSync([deliverJob(id, options.route, [0])]);
    backend.store.appendEventSync({ messageId: options.about, recipient: mail.to, type: options.event, detail: { mail: id, ...options.detail } });
  });
  backend.queue.poke();
  return id;
}
