import { Command, CommanderError, Option } from 'commander';
import { systemClock } from '../clock.js';
import { ZegelError } from '../errors.js';
import type { Db } from '../store/db.js';
import { openAdminData } from './data-dir.js';
import { canonicalJson } from '../store/messages.js';
import { Spool } from '../spool/spool.js';

/**
 * `zegel queue list|retry|delete`: the job queue for operators, safe to run
 * next to a running relay (SQLite WAL; the relay polls the table). Which jobs
 * are running lives in the relay's memory only, so the CLI shows due jobs as
 * `due`. Retry and delete are recorded as 'admin-action' events. Deleting a
 * job that carries a message (process, secure, deliver) would leave its
 * recipients without delivery and without a bounce, so it needs --force.
 * A problem (unknown job, refused delete) is one line on stderr and exit 1;
 * a usage error exits 2.
 *
 * A `held` job is relay-made mail that could not be delivered, not even as a
 * notice to the postmaster (src/deliver/deliver-job.ts): it is never due by
 * itself. `retry` makes it due again (one more attempt; failing again holds
 * it again); `delete --force` ends it: its pending recipients are marked
 * bounced with the admin's action as the reason and the spool file goes.
 */

const LIST_JSON = `
--json prints one array, in run order, of
  {"kind": "process" | "secure" | "deliver" | "purge" | …, "id": job id,
   "state": "due" | "delayed" | "held", "attempts": number, "runAt": ISO time,
   "createdAt": ISO time, "ageSeconds": number, "messageId": queue id | null,
   "reason": last reply of the held mail | null}
A held job is undeliverable mail the relay made itself (the postmaster notice
failed too): it waits for zegel queue retry <id> or zegel queue delete <id> --force.`;

/** Job kinds whose deletion loses a message's onward path. */
const MAIL_KINDS = new Set(['process', 'secure', 'deliver']);

interface JobRow {
  id: string;
  kind: string;
  payload: string;
  run_at: number;
  attempts: number;
  state: string;
  created_at: number;
}

/** An operator problem (exit 1, one line on stderr); codes local to this command. */
class QueueCliError extends Error {
  constructor(
    readonly code: 'ZEGEL_UNKNOWN_JOB' | 'ZEGEL_QUEUE_DELETE_REFUSED',
    message: string,
  ) {
    super(message);
  }
}

const iso = (ms: number): string => new Date(ms).toISOString();
const short = (ms: number): string => iso(ms).slice(0, 19).replace('T', ' ');

function messageIdOf(row: JobRow): string | null {
  try {
    const payload = JSON.parse(row.payload) as { messageId?: unknown } | null;
    return typeof payload?.messageId === 'string' ? payload.messageId : null;
  } catch {
    return null;
  }
}

function age(seconds: number): string {
  if (seconds < 120) return `${seconds}s`;
  if (seconds < 7200) return `${Math.floor(seconds / 60)}m`;
  if (seconds < 172800) return `${Math.floor(seconds / 3600)}h`;
  return `${Math.floor(seconds / 86400)}d`;
}

function getJob(db: Db, id: string): JobRow {
  const row = db.prepare('SELECT id, kind, payload, run_at, attempts, state, created_at FROM jobs WHERE id = ?').get(id) as JobRow | undefined;
  if (!row) throw new QueueCliError('ZEGEL_UNKNOWN_JOB', `no queued job ${id} (zegel queue list shows the jobs)`);
  return row;
}

/** The admin action on the event table (same shape as `zegel messages revoke`). */
function recordAdminAction(db: Db, messageId: string | null, detail: Record<string, unknown>): void {
  db.prepare('INSERT INTO events (at, message_id, recipient, type, detail) VALUES (?, ?, ?, ?, ?)').run(systemClock.now(), messageId, null, 'admin-action', canonicalJson(detail));
}

export function registerQueueCommands(program: Command): void {
  const queue = program.command('queue').description('the job queue: list, retry now, delete (with care)');
  queue.exitOverride((err) => {
    throw err.exitCode === 1 ? new CommanderError(2, err.code, err.message) : err;
  });
  const configOption = () => new Option('-c, --config <file>', 'YAML configuration file (default: the embedded defaults, data in ./data)');

  queue
    .command('list')
    .description('queued jobs in run order: kind, id, state, attempts, run at, age (times in UTC)')
    .option('--json', 'one JSON array on stdout (shape below)')
    .addOption(configOption())
    .addHelpText('after', LIST_JSON)
    .action((options: { json?: boolean; config?: string }) =>
      run(options.config, async (db) => {
        const now = systemClock.now();
        const rows = db.prepare('SELECT id, kind, payload, run_at, attempts, state, created_at FROM jobs ORDER BY run_at, created_at, id').all() as JobRow[];
        const lastReply = db.prepare("SELECT last_reply FROM recipients WHERE message_id = ? AND state = 'pending' ORDER BY idx LIMIT 1");
        const jobs = rows.map((row) => ({
          kind: row.kind,
          id: row.id,
          state: row.state === 'held' ? 'held' : row.run_at <= now ? 'due' : 'delayed',
          attempts: row.attempts,
          runAt: iso(row.run_at),
          createdAt: iso(row.created_at),
          ageSeconds: Math.max(0, Math.floor((now - row.created_at) / 1000)),
          messageId: messageIdOf(row),
          reason: row.state === 'held' ? ((lastReply.get(messageIdOf(row)) as { last_reply: string | null } | undefined)?.last_reply ?? null) : null,
        }));
        if (options.json) {
          process.stdout.write(`${JSON.stringify(jobs, null, 2)}\n`);
          return;
        }
        if (!jobs.length) {
          process.stdout.write('no queued jobs\n');
          return;
        }
        const idWidth = Math.max(2, ...jobs.map((j) => j.id.length));
        const kindWidth = Math.max(4, ...jobs.map((j) => j.kind.length));
        process.stdout.write(`${'KIND'.padEnd(kindWidth)}  ${'ID'.padEnd(idWidth)}  ${'STATE'.padEnd(7)}  ATTEMPTS  ${'RUN AT (UTC)'.padEnd(19)}  AGE\n`);
        for (const j of jobs) {
          process.stdout.write(`${j.kind.padEnd(kindWidth)}  ${j.id.padEnd(idWidth)}  ${j.state.padEnd(7)}  ${String(j.attempts).padStart(8)}  ${short(Date.parse(j.runAt))}  ${age(j.ageSeconds)}\n`);
        }
        const held = jobs.filter((j) => j.state === 'held');
        if (held.length) {
          process.stdout.write(`\n${held.length} held (undeliverable mail the relay made itself; the postmaster notice failed too or there is no postmaster):\n`);
          for (const j of held) process.stdout.write(`  ${j.id}  ${j.reason ?? ''}\n`);
          process.stdout.write('  act on each: zegel queue retry <id> (deliver again) or zegel queue delete <id> --force (give it up)\n');
        }
      }),
    );

  queue
    .command('retry')
    .description('make a job due now (a running relay takes it within its poll interval)')
    .argument('<id>', 'job id (zegel queue list)')
    .addOption(configOption())
    .action((id: string, options: { config?: string }) =>
      run(options.config, async (db) => {
        const job = getJob(db, id);
        const now = systemClock.now();
        const wasHeld = job.state === 'held';
        db.transaction(() => {
          db.prepare("UPDATE jobs SET run_at = ?, state = 'ready' WHERE id = ?").run(now, job.id);
          recordAdminAction(db, messageIdOf(job), { command: 'queue retry', job: job.id, kind: job.kind, previousRunAt: iso(job.run_at), ...(wasHeld ? { held: true } : {}) });
        })();
        process.stdout.write(
          wasHeld
            ? `held job ${job.id} is due now (${job.attempts} attempts so far); if it fails again it is held again\n`
            : `job ${job.id} is due now (was ${short(job.run_at)} UTC, ${job.attempts} attempts so far)\n`,
        );
      }),
    );

  queue
    .command('delete')
    .description('remove a job; a process, secure or deliver job of a message needs --force')
    .argument('<id>', 'job id (zegel queue list)')
    .option('--force', 'delete a job that carries a message: its pending recipients get neither delivery nor a bounce')
    .addOption(configOption())
    .action((id: string, options: { force?: boolean; config?: string }) =>
      run(options.config, async (db, dataDir) => {
        const job = getJob(db, id);
        const messageId = messageIdOf(job);
        const carriesMail = MAIL_KINDS.has(job.kind);
        const pending = messageId
          ? (db.prepare("SELECT COUNT(*) AS n FROM recipients WHERE message_id = ? AND state = 'pending'").get(messageId) as { n: number } | undefined)?.n ?? 0
          : 0;
        if (carriesMail && !options.force) {
          throw new QueueCliError(
            'ZEGEL_QUEUE_DELETE_REFUSED',
            `${job.id} is the ${job.kind} job of message ${messageId ?? '?'} (${pending} recipient(s) pending): deleting it stops that mail without delivery or bounce. Use zegel queue retry, or --force to delete anyway`,
          );
        }
        const wasHeld = job.state === 'held';
        let releaseSpool = false;
        db.transaction(() => {
          db.prepare('DELETE FROM jobs WHERE id = ?').run(job.id);
          recordAdminAction(db, messageId, { command: 'queue delete', job: job.id, kind: job.kind, force: Boolean(options.force), pendingRecipients: pending, ...(wasHeld ? { held: true } : {}) });
          if (wasHeld && messageId) {
            // given up by the admin: the held recipients end as bounced, with the action as the reason, and the spool file goes
            db.prepare("UPDATE recipients SET state = 'bounced', last_reply = ?, updated_at = ? WHERE message_id = ? AND state = 'pending'").run(
              'held mail deleted by an admin (zegel queue delete --force)',
              systemClock.now(),
              messageId,
            );
            releaseSpool = db.prepare("UPDATE messages SET spool = NULL, state = 'done' WHERE id = ? AND spool IS NOT NULL").run(messageId).changes === 1;
          }
        })();
        if (releaseSpool && messageId) await new Spool(dataDir).remove(messageId);
        if (wasHeld) {
          process.stdout.write(`deleted held job ${job.id}; message ${messageId ?? '?'} is given up (recorded as admin-action)\n`);
          return;
        }
        if (carriesMail) {
          process.stderr.write(`zegel: warning: deleted ${job.kind} job ${job.id}; message ${messageId ?? '?'} has ${pending} recipient(s) left pending that will get neither delivery nor a bounce (recorded as admin-action)\n`);
        }
        if (job.kind === 'purge') process.stderr.write('zegel: note: the periodic purge job is scheduled again at the next start\n');
        process.stdout.write(`deleted job ${job.id}\n`);
      }),
    );
}

async function run(configFile: string | undefined, fn: (db: Db, dataDir: string) => Promise<void>): Promise<void> {
  const { db, config } = openAdminData(configFile); // says the data directory; refuses to invent a database
  try {
    await fn(db, config.data.dir);
  } catch (err) {
    if (!(err instanceof ZegelError) && !(err instanceof QueueCliError)) throw err;
    process.stderr.write(`zegel: ${err.code}: ${err.message}\n`);
    process.exitCode = 1;
  } finally {
    db.close();
  }
}
