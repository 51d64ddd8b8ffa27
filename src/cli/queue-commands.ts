import { Command, Option } from 'commander';
import { ZegelError } from '../errors.js';
import { MESSAGE_JOB_KINDS, isJobKind } from '../queue/registry.js';
import type { StoredJob } from '../queue/sqlite.js';
import type { Tx } from '../store/tx.js';
import { withStore, type AdminStore } from './context.js';

/**
 * `zegel queue list|retry|delete`: the job queue for operators, safe to run
 * next to a running relay (SQLite WAL; the relay polls the table). Which jobs
 * are running lives in the relay's memory only, so the CLI shows due jobs as
 * `due`. Retry and delete are recorded as 'admin-action' events. Deleting a
 * job that carries a message (process, secure, deliver) would leave its
 * recipients without delivery and without a bounce, so it needs --force.
 * A problem (unknown job, refused delete) is one line on stderr and exit 1;
 * a usage error exits 2 (the rule of every command: src/cli/context.ts).
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

/** Job kinds whose deletion loses a message's onward path (src/queue/registry.ts). */
const carriesMail = (kind: string): boolean => isJobKind(kind) && MESSAGE_JOB_KINDS.has(kind);

const iso = (ms: number): string => new Date(ms).toISOString();
const short = (ms: number): string => iso(ms).slice(0, 19).replace('T', ' ');

function age(seconds: number): string {
  if (seconds < 120) return `${seconds}s`;
  if (seconds < 7200) return `${Math.floor(seconds / 60)}m`;
  if (seconds < 172800) return `${Math.floor(seconds / 3600)}h`;
  return `${Math.floor(seconds / 86400)}d`;
}

async function getJob(store: AdminStore, id: string): Promise<StoredJob> {
  const job = await store.jobs.get(id);
  if (!job) throw new ZegelError('ZEGEL_UNKNOWN_JOB', `no queued job ${id} (zegel queue list shows the jobs)`);
  return job;
}

/** The admin action on the audit trail (same shape as `zegel messages revoke`), in the transaction of the change. */
function recordAdminAction(store: AdminStore, tx: Tx, messageId: string | null, detail: Record<string, unknown>): Promise<void> {
  return store.events.append(tx, { messageId, type: 'admin-action', detail });
}

export function registerQueueCommands(program: Command): void {
  const queue = program.command('queue').description('the job queue: list, retry now, delete (with care)');
  const configOption = () => new Option('-c, --config <file>', 'YAML configuration file (default: the embedded defaults, data in ./data)');

  queue
    .command('list')
    .description('queued jobs in run order: kind, id, state, attempts, run at, age (times in UTC)')
    .option('--json', 'one JSON array on stdout (shape below)')
    .addOption(configOption())
    .addHelpText('after', LIST_JSON)
    .action((options: { json?: boolean; config?: string }) =>
      withStore(options.config, async (store) => {
        const now = store.clock.now();
        const jobs = [];
        for (const row of await store.jobs.list()) {
          const messageId = row.messageId ?? null;
          const held = row.state === 'held';
          jobs.push({
            kind: row.kind,
            id: row.id,
            state: held ? 'held' : row.runAt <= now ? 'due' : 'delayed',
            attempts: row.attempts,
            runAt: iso(row.runAt),
            createdAt: iso(row.createdAt),
            ageSeconds: Math.max(0, Math.floor((now - row.createdAt) / 1000)),
            messageId,
            // the held mail's last reply: its first pending recipient's
            reason: held && messageId ? ((await store.messages.recipients(messageId)).find((r) => r.state === 'pending')?.lastReply ?? null) : null,
          });
        }
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
      withStore(options.config, async (store) => {
        const job = await getJob(store, id);
        const now = store.clock.now();
        const wasHeld = job.state === 'held';
        await store.transaction(async (tx) => {
          await store.jobs.retryAt(tx, job.id, now);
          await recordAdminAction(store, tx, job.messageId ?? null, { command: 'queue retry', job: job.id, kind: job.kind, previousRunAt: iso(job.runAt), ...(wasHeld ? { held: true } : {}) });
        });
        process.stdout.write(
          wasHeld
            ? `held job ${job.id} is due now (${job.attempts} attempts so far); if it fails again it is held again\n`
            : `job ${job.id} is due now (was ${short(job.runAt)} UTC, ${job.attempts} attempts so far)\n`,
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
      withStore(options.config, async (store) => {
        const job = await getJob(store, id);
        const messageId = job.messageId ?? null;
        const mail = carriesMail(job.kind);
        const pending = messageId ? await store.messages.pendingCount(messageId) : 0;
        if (mail && !options.force) {
          throw new ZegelError(
            'ZEGEL_QUEUE_DELETE_REFUSED',
            `${job.id} is the ${job.kind} job of message ${messageId ?? '?'} (${pending} recipient(s) pending): deleting it stops that mail without delivery or bounce. Use zegel queue retry, or --force to delete anyway`,
          );
        }
        const wasHeld = job.state === 'held';
        const releaseSpool = await store.transaction(async (tx) => {
          await store.jobs.remove(tx, job.id);
          await recordAdminAction(store, tx, messageId, { command: 'queue delete', job: job.id, kind: job.kind, force: Boolean(options.force), pendingRecipients: pending, ...(wasHeld ? { held: true } : {}) });
          // given up by the admin: the held recipients end as bounced, with the action as the reason, and the spool file goes
          return wasHeld && messageId ? store.messages.giveUp(tx, messageId, 'held mail deleted by an admin (zegel queue delete --force)') : false;
        });
        if (releaseSpool && messageId) await store.spool.remove(messageId);
        if (wasHeld) {
          process.stdout.write(`deleted held job ${job.id}; message ${messageId ?? '?'} is given up (recorded as admin-action)\n`);
          return;
        }
        if (mail) {
          process.stderr.write(`zegel: warning: deleted ${job.kind} job ${job.id}; message ${messageId ?? '?'} has ${pending} recipient(s) left pending that will get neither delivery nor a bounce (recorded as admin-action)\n`);
        }
        if (job.kind === 'purge') process.stderr.write('zegel: note: the periodic purge job is scheduled again at the next start\n');
        process.stdout.write(`deleted job ${job.id}\n`);
      }),
    );
}
