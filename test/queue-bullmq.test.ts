import { Redis } from 'ioredis';
import t from 'tap';
import { ManualClock } from '../src/clock.js';
import { bullJobId, RECONCILE_LOCK } from '../src/queue/bullmq.js';
import { freshJobStore, openBullmqQueue, startJobServers, type JobStore } from './helpers/bullmq-queue.js';
import { queueContract, type QueueFixture } from './helpers/queue-contract.js';
import { PgTransactor } from '../src/store/pg/tx.js';
import { waitFor } from './helpers/relay.js';

/**
 * The job queue contract (test/helpers/queue-contract.ts) on the BullMQ
 * driver: PostgreSQL holds the jobs, BullMQ (a real redis-server) carries
 * them. Each test has its own database and Redis prefix; the reconciler runs
 * every 50 ms here, so a ManualClock that moves is noticed as the SQLite
 * driver's poll notices it.
 */
const servers = await startJobServers(t);

const stores = new WeakMap<QueueFixture, JobStore>();

queueContract(t, {
  name: 'bullmq',
  async open(t, clock, same) {
    const store = same ? stores.get(same)! : await freshJobStore(servers);
    const { queue, pool, close } = await openBullmqQueue(t, servers, store, clock, { reconcileMs: 50, reconcileGraceMs: 0 });
    const fixture: QueueFixture = {
      queue,
      rows: async () => (await pool.query<{ id: string; kind: string; runAt: number; attempts: number }>('SELECT id, kind, run_at AS "runAt", attempts FROM jobs ORDER BY id')).rows,
      close,
    };
    stores.set(fixture, store);
    return fixture;
  },
});

t.test('a job added in a transaction is carried to BullMQ once poke() follows the commit, and a rolled-back one is dropped', async (t) => {
  const clock = new ManualClock(Date.now());
  const store = await freshJobStore(servers);
  // the reconciler is slow here: only the poke can have carried the job
  const { queue, pool } = await openBullmqQueue(t, servers, store, clock, { reconcileMs: 60_000 });
  const ran: string[] = [];
  queue.work('k', async (job) => {
    ran.push(job.id);
    return { status: 'done' };
  }, { concurrency: 2 });
  const transactor = new PgTransactor(pool);
  await transactor.transaction((tx) => queue.insert(tx, [{ id: 'in-tx', kind: 'k', payload: null }]));
  await transactor
    .transaction(async (tx) => {
      await queue.insert(tx, [{ id: 'rolled-back', kind: 'k', payload: null }]);
      throw new Error('no');
    })
    .catch(() => undefined);
  queue.poke();
  await waitFor(() => ran.includes('in-tx'), 5_000, 'the committed job to run');
  await queue.idle();
  t.same(ran, ['in-tx'], 'the committed job ran; the rolled-back one never existed');
  t.same((await pool.query('SELECT id FROM jobs')).rows, [], 'nothing left');
  const redis = new Redis(servers.redis.url, { maxRetriesPerRequest: 1 });
  t.teardown(() => redis.disconnect());
  // the rolled-back job's BullMQ job may still be on its way through a worker (found no row, completing)
  const jobKeys = async () => (await redis.keys(`${store.prefix}:k:*`)).filter((key) => /\.\d+\.\d+(:|$)/.test(key));
  await waitFor(async () => (await jobKeys()).length === 0, 5_000, 'BullMQ to drop its finished jobs').catch(() => undefined);
  t.same(await jobKeys(), [], 'BullMQ keeps no finished job in Redis');
});

t.test('BullMQ job ids: base64url of the id (no colon), the attempt and the dispatch generation', async (t) => {
  t.equal(bullJobId({ id: 'process:m1', attempts: 0, dispatch: 0 }), 'cHJvY2VzczptMQ.0.0');
  t.equal(bullJobId({ id: 'process:m1', attempts: 2, dispatch: 1 }), 'cHJvY2VzczptMQ.2.1');
  t.notOk(bullJobId({ id: 'a:b:c', attempts: 0, dispatch: 0 }).includes(':'));
});

t.test('a held job waits for an admin: counted and listed as held, due again after retryAt, gone after remove', async (t) => {
  const clock = new ManualClock(Date.now());
  const store = await freshJobStore(servers);
  const { queue, pool } = await openBullmqQueue(t, servers, store, clock, { reconcileMs: 50, reconcileGraceMs: 0 });
  const transactor = new PgTransactor(pool);
  const runs: Array<[string, number]> = [];
  queue.work(
    'deliver',
    async (job) => {
      runs.push([job.id, job.attempts]);
      return job.attempts === 0 ? { status: 'held' } : { status: 'done' };
    },
    { concurrency: 1 },
  );
  const created = clock.now();
  await queue.add([
    { id: 'deliver:m1:0', kind: 'deliver', payload: { messageId: 'm1' } },
    { id: 'deliver:m2:0', kind: 'deliver', payload: { messageId: 'm2' } },
  ]);
  await waitFor(async () => (await queue.held()).length === 2, 5_000, 'both jobs held');
  await queue.idle();
  t.same(await queue.counts(), [{ kind: 'deliver', ready: 0, delayed: 0, running: 0, held: 2, oldestCreatedAt: created }], 'counted as held only');
  t.same(
    (await queue.held()).map((h) => [h.id, h.messageId]),
    [
      ['deliver:m1:0', 'm1'],
      ['deliver:m2:0', 'm2'],
    ],
  );
  t.same((await queue.get('deliver:m1:0'))?.state, 'held');
  t.same((await queue.list()).map((j) => [j.id, j.state, j.attempts]), [
    ['deliver:m1:0', 'held', 1],
    ['deliver:m2:0', 'held', 1],
  ]);
  clock.advance(1_000);
  t.ok(await transactor.transaction((tx) => queue.retryAt(tx, 'deliver:m1:0', clock.now())), 'retryAt finds the job');
  t.notOk(await transactor.transaction((tx) => queue.retryAt(tx, 'deliver:none', clock.now())), 'and not a job that is not there');
  queue.poke();
  await waitFor(() => runs.length === 3, 5_000, 'the retried job to run');
  t.same(runs, [
    ['deliver:m1:0', 0],
    ['deliver:m2:0', 0],
    ['deliver:m1:0', 1],
  ]);
  t.ok(await transactor.transaction((tx) => queue.remove(tx, 'deliver:m2:0')), 'remove finds the held job');
  await queue.idle();
  t.same(await queue.counts(), [], 'nothing left');
});

t.test('the reconciler hands BullMQ a due row it does not hold, one node at a time under its advisory lock', async (t) => {
  const clock = new ManualClock(Date.now());
  const store = await freshJobStore(servers);
  const { queue, pool } = await openBullmqQueue(t, servers, store, clock, { reconcileMs: 50, reconcileGraceMs: 0 });
  const ran: string[] = [];
  queue.work('k', async (job) => {
    ran.push(job.id);
    return { status: 'done' };
  }, { concurrency: 1 });
  // another node's pass holds the lock
  const other = await pool.checkout();
  t.teardown(() => other.release(true));
  await other.client.query('SELECT pg_advisory_lock($1, $2)', [...RECONCILE_LOCK]);
  const passes = queue.reconcilerStats.passes;
  // a row BullMQ never heard of (as after a Redis loss)
  await pool.query("INSERT INTO jobs (id, kind, payload, run_at, attempts, state, created_at) VALUES ('lost', 'k', 'null', $1, 0, 'ready', $1)", [clock.now()]);
  await new Promise((resolve) => setTimeout(resolve, 300));
  t.same(ran, [], 'not run while another node holds the reconciler lock');
  t.equal(queue.reconcilerStats.passes, passes, 'no pass ran here meanwhile');
  await other.client.query('SELECT pg_advisory_unlock($1, $2)', [...RECONCILE_LOCK]);
  await waitFor(() => ran.length === 1, 5_000, 'the reconciler to hand the row to BullMQ');
  t.same(ran, ['lost']);
  t.ok(queue.reconcilerStats.added >= 1, 'counted as added by the reconciler');
});
