import type { Db } from '../store/db.js';

/**
 * Held mail for the admin commands (`zegel queue list`, `zegel messages
 * list|show`): relay-made mail whose delivery job is in the `held` state
 * because it could not be delivered, not even as a notice to the postmaster
 * (src/deliver/deliver-job.ts). Metadata only, never content.
 */
export interface HeldMail {
  job: string;
  queueId: string;
  /** ingress | dsn | notification | postmaster */
  origin: string;
  sender: string;
  recipients: Array<{ address: string; attempts: number; lastReply: string | null }>;
  receivedAt: string;
  heldSince: string | null;
}

export const HELD_JSON = `
--held --json prints one array, oldest first, of
  {"job": job id, "queueId": queue id, "origin": "dsn" | "notification" | "postmaster" | …,
   "sender": envelope sender ("" for <>), "receivedAt": ISO time, "heldSince": ISO time | null,
   "recipients": [{"address", "attempts": number, "lastReply": string | null}]}
Act on each with zegel queue retry <job> or zegel queue delete <job> --force.`;

const iso = (ms: number | null | undefined): string | null => (ms === null || ms === undefined ? null : new Date(ms).toISOString());

export function heldMail(db: Db, id?: string): HeldMail[] {
  const jobs = db.prepare("SELECT id, payload FROM jobs WHERE state = 'held' ORDER BY created_at, id").all() as Array<{ id: string; payload: string }>;
  const message = db.prepare('SELECT id, origin, mail_from, received_at FROM messages WHERE id = ?');
  const recipients = db.prepare("SELECT address, attempts, last_reply FROM recipients WHERE message_id = ? AND state = 'pending' ORDER BY idx");
  const since = db.prepare("SELECT MAX(at) AS at FROM events WHERE message_id = ? AND type = 'held'");
  const out: HeldMail[] = [];
  for (const job of jobs) {
    let queueId: string | undefined;
    try {
      const payload = JSON.parse(job.payload) as { messageId?: unknown } | null;
      if (typeof payload?.messageId === 'string') queueId = payload.messageId;
    } catch {
      // no message named
    }
    if (!queueId) continue;
    if (id !== undefined && id !== queueId && id !== job.id) continue;
    const m = message.get(queueId) as { id: string; origin: string; mail_from: string; received_at: number } | undefined;
    if (!m) continue;
    out.push({
      job: job.id,
      queueId,
      origin: m.origin,
      sender: m.mail_from,
      receivedAt: iso(m.received_at)!,
      heldSince: iso((since.get(queueId) as { at: number | null }).at),
      recipients: (recipients.all(queueId) as Array<{ address: string; attempts: number; last_reply: string | null }>).map((r) => ({ address: r.address, attempts: r.attempts, lastReply: r.last_reply })),
    });
  }
  return out;
}

/** Human lines for held mail (one block per message). */
export function describeHeld(held: HeldMail[]): string {
  const lines = [`${held.length} held message${held.length === 1 ? '' : 's'} (undeliverable mail the relay made itself; needs an admin):`];
  for (const h of held) {
    lines.push(`  ${h.queueId}  state held  origin ${h.origin}  from ${h.sender || '<>'}  since ${(h.heldSince ?? h.receivedAt).slice(0, 16).replace('T', ' ')} UTC  job ${h.job}`);
    for (const r of h.recipients) lines.push(`    to ${r.address}  ${r.attempts} attempt${r.attempts === 1 ? '' : 's'}  ${r.lastReply ?? ''}`);
  }
  lines.push('  act on each: zegel queue retry <job> (deliver again) or zegel queue delete <job> --force (give it up)');
  return `${lines.join('\n')}\n`;
}
