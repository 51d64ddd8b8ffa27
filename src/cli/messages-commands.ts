import { Command, CommanderError, Option } from 'commander';
import { systemClock } from '../clock.js';
import { parseDuration } from '../config/units.js';
import { ZegelError } from '../errors.js';
import { BlobStore } from '../store/blobs.js';
import type { Db } from '../store/db.js';
import { openAdminData } from './data-dir.js';
import { canonicalJson } from '../store/messages.js';
import { Revocations, type RevokeResult } from '../store/revocation.js';
import { queuePurgeOnce } from '../pipeline/purge-job.js';
import { SqliteQueue } from '../queue/sqlite.js';
import { GroupCommitter } from '../store/group-commit.js';
import { createLogger } from '../log.js';
import { shredderFor } from '../store/shred.js';
import { describeHeld, heldMail, HELD_JSON } from './held-mail.js';

/**
 * `zegel messages list|show|revoke`: secure messages for operators. Only
 * metadata is ever shown (ids, addresses, states, times, counts), never
 * content and never keys. There is no admin resend: minting a link needs the
 * content key, which the server cannot unwrap (DESIGN "Key schedule").
 * A problem (unknown id or recipient, bad --since) is one line on stderr and
 * exit code 1; a usage error exits 2.
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
     "notification": {"id": queue id | null, "state": "queued" | "delivered" | "failed" | "unknown", "at": ISO time | null},
     "firstOpenedAt", "lastOpenedAt", "downloads": number, "replies": number}]}
Times are ISO 8601 (UTC) or null.`;

const REVOKE_JSON = `
ID is the secure message id or the queue id of the original. Revoking deletes
the recipient's wrap and K_srv and ends its reader sessions; once no recipient
can open the message its ciphertext is deleted from disk.
--json prints {"id", "queueId", "revoked": [{"address", "linkId"}], "state", "purged": boolean}.`;

interface MessageRow {
  id: string;
  queue_id: string;
  created_at: number;
  sender: string;
  state: string;
  expires_at: number;
  revoke_at: number | null;
  purged_at: number | null;
  thread_id: string | null;
  body_blob: string | null;
  blobs: string;
  recipients: number;
}

interface LinkRow {
  id: string;
  address: string;
  method: string;
  state: string;
  revoke_at: number | null;
  notification_id: string | null;
  first_opened_at: number | null;
  last_opened_at: number | null;
}

const iso = (ms: number | null | undefined): string | null => (ms === null || ms === undefined ? null : new Date(ms).toISOString());
/** `2026-01-05 09:00` (UTC) for the human output. */
const short = (ms: number | null | undefined): string => (ms === null || ms === undefined ? '-' : new Date(ms).toISOString().slice(0, 16).replace('T', ' '));

export function registerMessagesCommands(program: Command): void {
  const messages = program.command('messages').description('secure messages: list, show status (never content), revoke');
  messages.exitOverride((err) => {
    throw err.exitCode === 1 ? new CommanderError(2, err.code, err.message) : err;
  });
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
      run(options.config, async (db) => {
        const held = heldMail(db);
        if (options.held) {
          process.stdout.write(options.json ? `${JSON.stringify(held, null, 2)}\n` : held.length ? describeHeld(held) : 'no held messages\n');
          return;
        }
        // held mail is shown first in the human list: it waits for an admin
        if (!options.json && held.length) process.stdout.write(`${describeHeld(held)}\n`);
        const since = options.since === undefined ? 0 : parseSince(options.since);
        const sender = options.sender?.trim().toLowerCase() ?? null;
        const rows = db
          .prepare(
            `SELECT m.*, (SELECT COUNT(DISTINCT l.recipient_idx) FROM secure_links l WHERE l.message_id = m.id) AS recipients
             FROM secure_messages m WHERE (? IS NULL OR lower(m.sender) = ?) AND m.created_at >= ?
             ORDER BY m.created_at DESC, m.id`,
          )
          .all(sender, sender, since) as MessageRow[];
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
    .description('metadata and per-recipient status of one secure message (never content, never keys)')
    .argument('<id>', 'secure message id or queue id')
    .option('--json', 'one JSON object on stdout (shape below)')
    .addOption(configOption())
    .addHelpText('after', SHOW_JSON)
    .action((id: string, options: { json?: boolean; config?: string }) =>
      run(options.config, async (db) => {
        const held = heldMail(db, id);
        if (held.length) {
          process.stdout.write(options.json ? `${JSON.stringify({ state: 'held', ...held[0] }, null, 2)}\n` : describeHeld(held));
          return;
        }
        const m = find(db, id);
        const links = db
          .prepare('SELECT id, address, method, state, revoke_at, notification_id, first_opened_at, last_opened_at FROM secure_links WHERE message_id = ? ORDER BY recipient_idx, created_at')
          .all(m.id) as LinkRow[];
        const notification = db.prepare('SELECT state, updated_at FROM recipients WHERE message_id = ? ORDER BY idx LIMIT 1');
        const downloads = db.prepare(`SELECT COUNT(*) AS n FROM events WHERE message_id = ? AND type = 'downloaded' AND json_extract(detail, '$.linkId') = ?`);
        const replies = db.prepare('SELECT COUNT(*) AS n FROM secure_replies WHERE link_id = ?');
        const recipients = links.map((l) => {
          const n = l.notification_id ? (notification.get(l.notification_id) as { state: string; updated_at: number } | undefined) : undefined;
          const state = !n ? 'unknown' : n.state === 'delivered' ? 'delivered' : n.state === 'bounced' ? 'failed' : n.state === 'pending' ? 'queued' : 'unknown';
          return {
            address: l.address,
            method: l.method,
            linkId: l.id,
            linkState: l.state,
            revokeAt: iso(l.revoke_at),
            notification: { id: l.notification_id, state, at: n && state !== 'queued' ? iso(n.updated_at) : null },
            firstOpenedAt: iso(l.first_opened_at),
            lastOpenedAt: iso(l.last_opened_at),
            downloads: (downloads.get(m.queue_id, l.id) as { n: number }).n,
            replies: (replies.get(l.id) as { n: number }).n,
          };
        });
        const blobs = m.purged_at === null ? blobCount(m.blobs) : 0;
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
      run(options.config, async (db, dataDir) => {
        const m = find(db, id);
        const revocations = new Revocations({ db, clock: systemClock, blobs: new BlobStore(dataDir) });
        const result = await revocations.revokeMessage(m.id, 'admin', { recipient: options.recipient });
        db.prepare('INSERT INTO events (at, message_id, recipient, type, detail) VALUES (?, ?, ?, ?, ?)').run(
          systemClock.now(),
          m.queue_id,
          options.recipient?.trim().toLowerCase() ?? null,
          'admin-action',
          canonicalJson({ command: `${command.parent?.name() ?? 'messages'} revoke`, secureId: m.id, revoked: result.revoked.map((r) => r.linkId) }),
        );
        if (shredderFor(db).pending) {
          // another connection holds a read open: the relay's purge job truncates the WAL once it lets go
          // transitional until cli/context.ts: a queue without workers, closed at once (no poll timer left)
          const committer = new GroupCommitter(db);
          const queue = new SqliteQueue(db, committer, systemClock, createLogger('silent'));
          try {
            await committer.transaction((tx) => queuePurgeOnce(tx, queue, systemClock.now()));
          } finally {
            await queue.close(0);
            await committer.close();
          }
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
function find(db: Db, id: string): MessageRow {
  const row = db.prepare('SELECT *, 0 AS recipients FROM secure_messages WHERE id = ? OR queue_id = ? LIMIT 1').get(id, id) as MessageRow | undefined;
  if (!row) throw new ZegelError('ZEGEL_MESSAGE_NOT_FOUND', `no secure message ${id}`);
  return row;
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

function blobCount(json: string): number {
  try {
    const parsed: unknown = JSON.parse(json);
    return Array.isArray(parsed) ? parsed.length : 0;
  } catch {
    return 0;
  }
}

/** Loads the configuration, opens the database, runs `fn`, closes; a ZegelError is one line on stderr and exit 1. */
async function run(configFile: string | undefined, fn: (db: Db, dataDir: string) => Promise<void>): Promise<void> {
  const { db, config } = openAdminData(configFile); // says the data directory; refuses to invent a database
  try {
    await fn(db, config.data.dir);
  } catch (err) {
    if (!(err instanceof ZegelError)) throw err;
    process.stderr.write(`zegel: ${err.code}: ${err.message}\n`);
    process.exitCode = 1;
  } finally {
    db.close();
  }
}
