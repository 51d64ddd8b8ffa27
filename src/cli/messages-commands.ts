import { Command, Option } from 'commander';
import { systemClock } from '../clock.js';
import { parseDuration } from '../config/units.js';
import { ZegelError } from '../errors.js';
import type { RevokeResult } from '../store/revocation.js';
import { queuePurgeOnce } from '../pipeline/purge-job.js';
import { blobCount, type SecureMessageRow } from '../store/secure.js';
import { withStore, type AdminStore } from './context.js';
import { describeHeld, heldMail, HELD_JSON } from './held-mail.js';
import type { TlsFacts } from '../deliver/smtp-pool.js';
import type { EventRecord } from '../store/events.js';
import type { MessageRecord } from '../store/messages.js';

/**
 * `zegel messages list|show|revoke`: secure messages for operators. Only
 * metadata is ever shown (ids, addresses, states, times, counts), never
 * content and never keys. There is no admin resend: minting a link needs the
 * content key, which the server cannot unwrap (DESIGN "Key schedule").
 * A problem (unknown id or recipient, bad --since) is one line on stderr and
 * exit code 1; a usage error exits 2 (the rule of every command: src/cli/context.ts).
 */

const LIST_JSON = `
--json prints one array, newest first, of
  {"id": secure message id, "queueId": queue id of the original,
   "createdAt": ISO time, "sender": envelope sender,
   "state": "active" | "revoked" | "expired", "recipients": number,
   "expiresAt": ISO time, "revokeAt": ISO time | null, "purgedAt": ISO time | null}`;

const SHOW_JSON = `
ID is the secure message id or the queue id of the original.
--json prints one object:
  {"id", "queueId", "createdAt", "sender", "state", "expiresAt", "revokeAt", "purgedAt",
   "threadId": string | null, "blobs": number (ciphertext blobs; 0 once purged),
   "recipients": [{"address", "method": "none" | "access-code" | "email-code" | "sms-code",
     "linkId", "linkState": "active" | "revoked" | "expired" | "replaced", "revokeAt",
     "notification": {"id": queue id | null, "state": "queued" | "delivered" | "failed" | "unknown", "at": ISO time | null,
       "tls": TLS | null},
     "firstOpenedAt", "lastOpenedAt", "downloads": number, "replies": number}]}
For a queue id of mail that was not encrypted (delivered as it came, or made by the relay):
  {"queueId", "origin", "receivedAt", "sender", "state",
   "recipients": [{"address", "state": "pending" | "delivered" | "bounced" | "encrypted",
     "attempts", "lastReply", "remoteMta", "tls": TLS | null}]}
TLS is the session of the last delivery attempt (null: it recorded none): {"version": "TLSv1.3" | null
  (no TLS: plain text, or with "error" a session refused before any mail went),
  "cipher", "verified": boolean, "verifiedBy": "system CAs" | "delivery.tls.ca" | null,
  "mtaSts": "enforce" | "testing" | "none" | null, "policy": "may" | "encrypt" | "verify", "error"?}.
Times are ISO 8601 (UTC) or null.`;

const REVOKE_JSON = `
ID is the secure message id or the queue id of the original. Revoking deletes
the recipient's wrap and K_srv and ends its reader sessions; once no recipient
can open the message its ciphertext is deleted from disk.
--json prints {"id", "queueId", "revoked": [{"address", "linkId"}], "state", "purged": boolean}.`;

const iso = (ms: number | null | undefined): string | null => (ms === null || ms === undefined ? null : new Date(ms).toISOString());
/** `2026-01-05 09:00` (UTC) for the human output. */
const short = (ms: number | null | undefined): string => (ms === null || ms === undefined ? '-' : new Date(ms).toISOString().slice(0, 16).replace('T', ' '));

export function registerMessagesCommands(program: Command): void {
  const messages = program.command('messages').description('secure messages: list, show status (never content), revoke');
  const configOption = () => new Option('-c, --config <file>', 'YAML configuration file (default: the embedded defaults, data in ./data)');

  messages
    .command('list')
    .description('secure messages, newest first: id, created, sender, state, recipients, expiry (times in UTC)')
    .option('--sender <address>', 'only messages from this envelope sender (case-insensitive)')
    .option('--since <when>', 'only messages created since a date (2026-01-05, ISO time) or for a duration back (7d, 12h)')
    .option('--json', 'one JSON array on stdout (shape below)')
    .option('--held', 'only held mail: relay-made mail that could not be delivered and waits for an admin')
    .addOption(configOption())
    .addHelpText('after', LIST_JSON + HELD_JSON)
    .action((options: { sender?: string; since?: string; json?: boolean; held?: boolean; config?: string }) =>
      withStore(options.config, async (store) => {
        const held = await heldMail(store);
        if (options.held) {
          process.stdout.write(options.json ? `${JSON.stringify(held, null, 2)}\n` : held.length ? describeHeld(held) : 'no held messages\n');
          return;
        }
        // held mail is shown first in the human list: it waits for an admin
        if (!options.json && held.length) process.stdout.write(`${describeHeld(held)}\n`);
        const since = options.since === undefined ? 0 : parseSince(options.since);
        const rows = [];
        for (const m of await store.secure.secure.list({ sender: options.sender, since })) {
          // recipients, not links: a resent link is a second link of the same recipient
          rows.push({ ...m, recipients: new Set((await store.secure.links.ofMessage(m.id)).map((l) => l.recipient_idx)).size });
        }
        if (options.json) {
          const out = rows.map((m) => ({
            id: m.id,
            queueId: m.queue_id,
            createdAt: iso(m.created_at),
            sender: m.sender,
            state: m.state,
            recipients: m.recipients,
            expiresAt: iso(m.expires_at),
            revokeAt: iso(m.revoke_at),
            purgedAt: iso(m.purged_at),
          }));
          process.stdout.write(`${JSON.stringify(out, null, 2)}\n`);
          return;
        }
        if (!rows.length) {
          process.stdout.write('no secure messages\n');
          return;
        }
        const width = Math.max(6, ...rows.map((m) => m.sender.length));
        process.stdout.write(`${'ID'.padEnd(22)}  ${'CREATED (UTC)'.padEnd(16)}  ${'SENDER'.padEnd(width)}  ${'STATE'.padEnd(7)}  RCPT  EXPIRES (UTC)\n`);
        for (const m of rows) {
          process.stdout.write(`${m.id.padEnd(22)}  ${short(m.created_at)}  ${(m.sender || '<>').padEnd(width)}  ${m.state.padEnd(7)}  ${String(m.recipients).padStart(4)}  ${short(m.expires_at)}\n`);
        }
      }),
    );

  messages
    .command('show')
    .description('metadata and per-recipient status of one secure message, or the delivery (with its TLS) of any queued message; never content, never keys')
    .argument('<id>', 'secure message id or queue id')
    .option('--json', 'one JSON object on stdout (shape below)')
    .addOption(configOption())
    .addHelpText('after', SHOW_JSON)
    .action((id: string, options: { json?: boolean; config?: string }) =>
      withStore(options.config, async (store) => {
        const held = await heldMail(store, id);
        if (held.length) {
          process.stdout.write(options.json ? `${JSON.stringify({ state: 'held', ...held[0] }, null, 2)}\n` : describeHeld(held));
          return;
        }
        const m = await findSecure(store, id);
        if (!m) {
          const plain = await store.messages.get(id);
          if (!plain) throw new ZegelError('ZEGEL_MESSAGE_NOT_FOUND', `no secure message and no queued message ${id}`);
          process.stdout.write(await describeDelivery(store, plain, options.json === true));
          return;
        }
        const recipients = [];
        for (const l of await store.secure.links.ofMessage(m.id)) {
          // the notification is the link's own mail: its one recipient's state
          const n = l.notification_id ? (await store.messages.recipients(l.notification_id))[0] : undefined;
          const state = !n ? 'unknown' : n.state === 'delivered' ? 'delivered' : n.state === 'bounced' ? 'failed' : n.state === 'pending' ? 'queued' : 'unknown';
          recipients.push({
            address: l.address,
            method: l.method,
            linkId: l.id,
            linkState: l.state,
            revokeAt: iso(l.revoke_at),
            notification: { id: l.notification_id, state, at: n && state !== 'queued' ? iso(n.updatedAt) : null, tls: l.notification_id ? lastTls(await store.events.forMessage(l.notification_id), l.address) : null },
            firstOpenedAt: iso(l.first_opened_at),
            lastOpenedAt: iso(l.last_opened_at),
            downloads: await store.events.countWith(m.queue_id, 'downloaded', 'linkId', l.id),
            replies: (await store.secure.replies.counts(l.id, store.clock.now())).total,
          });
        }
        const blobs = m.purged_at === null ? blobCount(m) : 0;
        if (options.json) {
          const out = {
            id: m.id,
            queueId: m.queue_id,
            createdAt: iso(m.created_at),
            sender: m.sender,
            state: m.state,
            expiresAt: iso(m.expires_at),
            revokeAt: iso(m.revoke_at),
            purgedAt: iso(m.purged_at),
            threadId: m.thread_id,
            blobs,
            recipients,
          };
          process.stdout.write(`${JSON.stringify(out, null, 2)}\n`);
          return;
        }
        const lines = [
          `message   ${m.id} (queue id ${m.queue_id})`,
          `sender    ${m.sender || '<>'}`,
          `created   ${short(m.created_at)} UTC`,
          `state     ${m.state}${m.purged_at !== null ? `, ciphertext and keys purged ${short(m.purged_at)} UTC` : `, ${blobs} encrypted blob${blobs === 1 ? '' : 's'} stored`}`,
          `expires   ${short(m.expires_at)} UTC${m.revoke_at !== null ? `; revocation scheduled ${short(m.revoke_at)} UTC` : ''}`,
          `recipients (${recipients.length}):`,
        ];
        for (const r of recipients) {
          const opened = r.firstOpenedAt ? `opened ${short(Date.parse(r.firstOpenedAt))}${r.lastOpenedAt !== r.firstOpenedAt ? `, last ${short(Date.parse(r.lastOpenedAt!))}` : ''}` : 'not opened';
          lines.push(
            `  ${r.address}  ${r.method}  link ${r.linkState}${r.revokeAt ? ` (revoke at ${short(Date.parse(r.revokeAt))})` : ''}  notification ${r.notification.state}  ${opened}  ${r.downloads} download${r.downloads === 1 ? '' : 's'}${r.replies ? `  ${r.replies} repl${r.replies === 1 ? 'y' : 'ies'}` : ''}`,
          );
          if (r.notification.tls) lines.push(`    notification TLS: ${tlsWords(r.notification.tls)}`);
        }
        process.stdout.write(`${lines.join('\n')}\n`);
      }),
    );

  messages
    .command('revoke')
    .description('revoke a secure message for every recipient, or with --recipient for one')
    .argument('<id>', 'secure message id or queue id')
    .option('--recipient <address>', 'only this recipient (case-insensitive)')
    .option('--json', 'one JSON object on stdout (shape below)')
    .addOption(configOption())
    .addHelpText('after', REVOKE_JSON)
    .action((id: string, options: { recipient?: string; json?: boolean; config?: string }, command: Command) =>
      withStore(options.config, async (store) => {
        const m = await find(store, id);
        const result = await store.revocations.revokeMessage(m.id, 'admin', { recipient: options.recipient });
        // after the revocation's own commit (src/secure/revocation.ts has no hook to record it in that transaction)
        await store.transaction((tx) =>
          store.events.append(tx, {
            messageId: m.queue_id,
            recipient: options.recipient?.trim().toLowerCase(),
            type: 'admin-action',
            detail: { command: `${command.parent?.name() ?? 'messages'} revoke`, secureId: m.id, revoked: result.revoked.map((r) => r.linkId) },
          }),
        );
        if (store.shredPending) {
          // another connection holds a read open: the relay's purge job truncates the WAL once it lets go
          await store.transaction((tx) => queuePurgeOnce(tx, store.jobs, store.clock.now()));
          process.stderr.write('zegel: another connection holds the database open; the relay finishes erasing the revoked keys from the database files at its next purge run\n');
        }
        if (options.json) {
          process.stdout.write(`${JSON.stringify({ id: result.secureId, queueId: result.queueId, revoked: result.revoked, state: result.state, purged: result.purged }, null, 2)}\n`);
          return;
        }
        process.stdout.write(describeRevoke(result, options.recipient));
      }),
    );
}

function describeRevoke(result: RevokeResult, recipient: string | undefined): string {
  const lines: string[] = [];
  if (result.revoked.length) {
    lines.push(`revoked ${result.secureId} for ${result.revoked.map((r) => r.address).join(', ')}`);
  } else {
    lines.push(`nothing to revoke: ${result.secureId}${recipient ? ` for ${recipient.trim().toLowerCase()}` : ''} is already ${result.state === 'active' ? 'revoked or expired' : result.state}`);
  }
  if (result.purged) lines.push('no recipient can open it any more: keys and ciphertext are deleted');
  return `${lines.join('\n')}\n`;
}

/** A secure message by its id or its queue id. */
async function find(store: AdminStore, id: string): Promise<SecureMessageRow> {
  const row = await findSecure(store, id);
  if (!row) throw new ZegelError('ZEGEL_MESSAGE_NOT_FOUND', `no secure message ${id}`);
  return row;
}

async function findSecure(store: AdminStore, id: string): Promise<SecureMessageRow | undefined> {
  return (await store.secure.secure.get(id)) ?? (await store.secure.secure.byQueueId(id));
}

/** The TLS facts of the last delivery attempt among a message's `events` (to `address`, when given); null when that attempt recorded none (outbox, DNS failure). */
function lastTls(events: EventRecord[], address?: string): TlsFacts | null {
  for (let i = events.length - 1; i >= 0; i--) {
    const e = events[i]!;
    if (!['delivered', 'deferred', 'bounced'].includes(e.type)) continue;
    if (address && e.recipient && e.recipient.toLowerCase() !== address.toLowerCase()) continue;
    const tls = e.detail.tls;
    return tls && typeof tls === 'object' ? (tls as TlsFacts) : null;
  }
  return null;
}

/** `TLSv1.3 TLS_AES_256_GCM_SHA384, verified by system CAs, MTA-STS enforce`, `plain text (policy may)` or `refused (…)`. */
function tlsWords(tls: TlsFacts): string {
  if (!tls.version) return tls.error ? `refused before any mail went: ${tls.error} (policy ${tls.policy})` : `plain text (policy ${tls.policy})`;
  const verified = tls.verified ? `verified by ${tls.verifiedBy}` : `not verified${tls.error ? `: ${tls.error}` : ''}`;
  return `${tls.version} ${tls.cipher}, ${verified}${tls.mtaSts ? `, MTA-STS ${tls.mtaSts}` : ''}`;
}

/** A message that was not encrypted: its recipients' delivery state and the TLS of their last attempt. */
async function describeDelivery(store: AdminStore, m: MessageRecord, json: boolean): Promise<string> {
  const recipients = [];
  const events = await store.events.forMessage(m.id);
  for (const r of await store.messages.recipients(m.id)) {
    recipients.push({ address: r.address, state: r.state, attempts: r.attempts, lastReply: r.lastReply ?? null, remoteMta: r.remoteMta ?? null, tls: lastTls(events, r.address) });
  }
  if (json) return `${JSON.stringify({ queueId: m.id, origin: m.origin, receivedAt: iso(m.receivedAt), sender: m.mailFrom, state: m.state, recipients }, null, 2)}\n`;
  const lines = [`queue id  ${m.id} (${m.origin}, not encrypted)`, `sender    ${m.mailFrom || '<>'}`, `received  ${short(m.receivedAt)} UTC`, `state     ${m.state}`, `recipients (${recipients.length}):`];
  for (const r of recipients) {
    lines.push(`  ${r.address}  ${r.state}${r.attempts ? `  after ${r.attempts} attempt${r.attempts === 1 ? '' : 's'}` : ''}${r.remoteMta ? `  via ${r.remoteMta}` : ''}`);
    if (r.tls) lines.push(`    TLS: ${tlsWords(r.tls)}`);
    if (r.lastReply) lines.push(`    ${r.lastReply}`);
  }
  return `${lines.join('\n')}\n`;
}

/** `--since`: a date or time (ISO 8601), or a duration back from now (7d, 12h). */
function parseSince(value: string): number {
  const duration = /^\s*\d+(\.\d+)?\s*[a-z]+\s*$/i.test(value) ? parseDuration(value) : undefined;
  if (duration !== undefined) return systemClock.now() - duration;
  if (/^\d{4}-\d{2}-\d{2}/.test(value.trim())) {
    const at = Date.parse(value.trim());
    if (Number.isFinite(at)) return at;
  }
  throw new ZegelError('ZEGEL_CLI_INPUT', `--since ${JSON.stringify(value)}: give a date (2026-01-05) or a duration (7d, 12h)`);
}
