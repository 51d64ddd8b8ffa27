import type { AdminStore } from './context.js';

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

/** Held mail, oldest first; with `id` only the one whose queue id or job id it is. */
export async function heldMail(store: AdminStore, id?: string): Promise<HeldMail[]> {
  const out: HeldMail[] = [];
  for (const job of await store.jobs.held()) {
    const queueId = job.messageId;
    if (!queueId) continue;
    if (id !== undefined && id !== queueId && id !== job.id) continue;
    const m = await store.messages.get(queueId);
    if (!m) continue;
    out.push({
      job: job.id,
      queueId,
      origin: m.origin,
      sender: m.mailFrom,
      receivedAt: iso(m.receivedAt)!,
      heldSince: iso(await store.events.lastOfType(queueId, 'held')),
      recipients: (await store.messages.recipients(queueId)).filter((r) => r.state === 'pending').map((r) => ({ address: r.address, attempts: r.attempts, lastReply: r.lastReply ?? null })),
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
