import t from 'tap';
import { systemClock } from '../src/clock.js';
import { pgTx } from '../src/store/pg/tx.js';
import type { JobResult } from '../src/queue/types.js';
import { freshJobStore, openBullmqQueue, startJobServers } from './helpers/bullmq-queue.js';
import { waitFor } from './helpers/relay.js';

/**
 * PostgreSQL holds the jobs: when it is killed (SIGKILL, crash recovery on
 * start) mid-load, claims and outcome writes fail meanwhile, BullMQ marks
 * those jobs failed and drops them, and nothing is lost: every row is still
 * there after recovery. A worker waits out a short outage before it lets a
 * claim fail (or it would drain its whole BullMQ queue into failures); a
 * run whose outcome could not be written runs again once its lease ran out,
 * handed to BullMQ again by the reconciler. Every job's outcome commits exactly once (its done_log row is written
 * with the completion, and only the claim holding the row can complete it).
 */
const servers = await startJobServers(t);
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

t.test('PostgreSQL killed and restarted mid-load: every job completes once', async (t) => {
  const store = await freshJobStore(servers);
  await servers.pg.query('CREATE TABLE done_log (job_id text NOT NULL)', [], decodeURIComponent(store.url.split('/').pop()!));
  const { queue, pool } = await openBullmqQueue(t, servers, store, systemClock, { leaseMs: 1_500, reconcileMs: 200, reconcileGraceMs: 250 });
  const runs = new Map<string, number>();
  let completed = 0;
  queue.work(
    'k',
    async (job): Promise<JobResult> => {
      runs.set(job.id, (runs.get(job.id) ?? 0) + 1);
      await sleep(20 + Math.floor(Math.random() * 30));
      return {
        status: 'done',
        record: async (tx) => {
          await pgTx(tx).query('INSERT INTO done_log (job_id) VALUES ($1)', [job.id]);
        },
        afterCommit: async () => {
          completed++;
        },
      };
    },
    { concurrency: 6 },
  );
  const ids = Array.from({ length: 150 }, (_, i) => `k:${i}`);
  await queue.add(ids.map((id) => ({ id, kind: 'k', payload: null })));
  await waitFor(() => completed >= 30, 20_000, 'a fifth of the jobs to complete');
  const at = completed;
  await servers.pg.kill();
  const killedAt = Date.now();
  await servers.pg.start();
  const restartMs = Date.now() - killedAt;
  const done = async () => (await pool.query<{ job_id: string; n: number }>('SELECT job_id, count(*)::int AS n FROM done_log GROUP BY job_id')).rows;
  await waitFor(async () => (await done().catch(() => [])).length === ids.length, 30_000, 'every job to complete after PostgreSQL came back');
  const rows = await done();
  t.same(rows.filter((r) => r.n > 1), [], 'no job completed twice');
  t.equal((await pool.query<{ n: number }>('SELECT count(*)::int AS n FROM jobs')).rows[0]!.n, 0, 'the jobs table is empty');
  const extra = [...runs.values()].reduce((sum, n) => sum + n - 1, 0);
  t.ok(extra <= 6, `only runs cut off by the kill ran again: at most one per worker slot (${extra})`);
  t.comment(`killed after ${at}/${ids.length} completions; PostgreSQL back after ${restartMs} ms; all done ${Date.now() - killedAt} ms after the kill; handler runs beyond one per job: ${extra}; reconciler re-added ${queue.reconcilerStats.added}`);
});
