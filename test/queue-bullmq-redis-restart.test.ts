import { Redis } from 'ioredis';
import t, { type Test } from 'tap';
import { systemClock } from '../src/clock.js';
import { pgTx } from '../src/store/pg/tx.js';
import type { JobResult } from '../src/queue/types.js';
import { freshJobStore, openBullmqQueue, startJobServers } from './helpers/bullmq-queue.js';
import { waitFor } from './helpers/relay.js';

/**
 * Losing Redis loses no job: PostgreSQL holds them, BullMQ only carries
 * them. About 300 jobs in flight (150 `a` jobs, each adding a `b` job when
 * it completes); mid-load redis-server is killed with SIGKILL and started
 * again empty, later its keys are removed with FLUSHALL. The same queue
 * objects carry on: workers reconnect, jobs whose hand-over to BullMQ failed
 * while Redis was away, and jobs Redis forgot, are added again by the
 * reconciler. Every job's outcome commits exactly once (a row per completed
 * claim in done_log, written by record(tx) with the completion); handler
 * runs beyond one per job are counted and reported. Last, Redis stays away
 * longer than the workers' blocking read (taskforcesh/bullmq#4585: workers
 * that never resumed) while jobs are added: add() does not wait for Redis,
 * and the workers take jobs again once it is back.
 */
const servers = await startJobServers(t);

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

const store = await freshJobStore(servers);
await servers.pg.query('CREATE TABLE done_log (job_id text NOT NULL, at bigint NOT NULL)', [], store.url.split('/').pop()!);

const { queue, pool } = await openBullmqQueue(t, servers, store, systemClock, {
  reconcileMs: 200,
  reconcileGraceMs: 250,
  redisTimeoutMs: 1_000,
  // the workers' blocking read times out after 1 s (its watchdog 1 s later): the last test outlasts both
  drainDelaySec: 1,
  workerWatchMs: 2_000,
});

const runs = new Map<string, number>();
let completed = 0;
async function handle(job: { id: string; kind: string }): Promise<JobResult> {
  runs.set(job.id, (runs.get(job.id) ?? 0) + 1);
  await sleep(20 + Math.floor(Math.random() * 30));
  return {
    status: 'done',
    next: job.kind === 'a' ? [{ id: `b:${job.id.slice(2)}`, kind: 'b', payload: null }] : [],
    record: async (tx) => {
      await pgTx(tx).query('INSERT INTO done_log (job_id, at) VALUES ($1, $2)', [job.id, Date.now()]);
    },
    afterCommit: async () => {
      completed++;
    },
  };
}
queue.work('a', handle, { concurrency: 6 });
queue.work('b', handle, { concurrency: 6 });

interface Tally {
  done: number;
  missing: string[];
  twice: string[];
  extraRuns: number;
}

async function tally(ids: string[]): Promise<Tally> {
  const rows = (await pool.query<{ job_id: string; n: number }>('SELECT job_id, count(*)::int AS n FROM done_log WHERE job_id = ANY($1::text[]) GROUP BY job_id', [ids])).rows;
  const n = new Map(rows.map((r) => [r.job_id, r.n]));
  return {
    done: rows.length,
    missing: ids.filter((id) => !n.has(id)),
    twice: ids.filter((id) => (n.get(id) ?? 0) > 1),
    extraRuns: ids.reduce((sum, id) => sum + Math.max(0, (runs.get(id) ?? 0) - 1), 0),
  };
}

async function load(t: Test, phase: string, disrupt: () => Promise<void>): Promise<void> {
  const ids = Array.from({ length: 150 }, (_, i) => `${phase}-${i}`);
  const all = [...ids.map((id) => `a:${id}`), ...ids.map((id) => `b:${id}`)];
  const before = completed;
  await queue.add(ids.map((id) => ({ id: `a:${id}`, kind: 'a', payload: null })));
  await waitFor(() => completed - before >= 60, 20_000, 'a fifth of the jobs to complete');
  const at = completed - before;
  const began = Date.now();
  const added = queue.reconcilerStats.added;
  await disrupt();
  await waitFor(async () => (await tally(all)).done === all.length, 30_000, `all ${all.length} jobs to complete after the disruption (${phase})`);
  const recovered = Date.now() - began;
  const result = await tally(all);
  t.same(result.missing, [], 'no job lost');
  t.same(result.twice, [], 'no job completed twice: one committed outcome per job');
  t.equal((await pool.query('SELECT count(*)::int AS n FROM jobs')).rows[0]!.n, 0, 'the jobs table is empty');
  const readded = queue.reconcilerStats.added - added;
  t.ok(readded > 0, `the reconciler handed BullMQ the jobs it had lost (${readded})`);
  t.comment(`${phase}: disrupted after ${at}/${all.length} completions; all done ${recovered} ms later; reconciler re-added ${readded}; handler runs beyond one per job: ${result.extraRuns}`);
  t.ok(result.extraRuns <= 12, `handler runs beyond one per job stay within the jobs running at the disruption (${result.extraRuns})`);
}


t.test('redis-server killed with SIGKILL and started again empty mid-load: every job completes once', async (t) => {
  await load(t, 'kill', async () => {
    await servers.redis.kill();
    // while Redis is away, jobs keep finishing: their next jobs stay in PostgreSQL only
    const during = completed;
    await waitFor(() => completed > during, 10_000, 'a job to complete while Redis is down');
    await servers.redis.start();
  });
});

t.test('FLUSHALL mid-load: every job completes once', async (t) => {
  await load(t, 'flush', async () => {
    const client = new Redis(servers.redis.url, { maxRetriesPerRequest: 1 });
    try {
      t.equal(await client.flushall(), 'OK');
    } finally {
      client.disconnect();
    }
  });
});

t.test('Redis away longer than the workers\' blocking read, jobs added meanwhile: add() does not wait for Redis, the workers resume', async (t) => {
  const ids = Array.from({ length: 40 }, (_, i) => `away-${i}`);
  const all = [...ids.map((id) => `a:${id}`), ...ids.map((id) => `b:${id}`)];
  await servers.redis.kill();
  const began = Date.now();
  await queue.add(ids.map((id) => ({ id: `a:${id}`, kind: 'a', payload: null })));
  const addMs = Date.now() - began;
  t.ok(addMs < 1_500, `add() committed to PostgreSQL and gave up on Redis within its timeout (${addMs} ms)`);
  // the outage itself is the scenario: longer than drainDelay (1 s) plus the watchdog's second
  await sleep(3_500 - (Date.now() - began));
  t.equal((await tally(all)).done, 0, 'nothing ran while Redis was away');
  await servers.redis.start();
  const back = Date.now();
  await waitFor(async () => (await tally(all)).done === all.length, 30_000, 'all jobs to complete once Redis is back');
  const result = await tally(all);
  t.same(result.missing, [], 'no job lost');
  t.same(result.twice, [], 'none completed twice');
  t.comment(`after a ${back - began} ms outage: ${all.length} jobs done ${Date.now() - back} ms after Redis came back; extra handler runs ${result.extraRuns}; workers replaced by the watchdog: ${queue.workerRestarts}`);
});
