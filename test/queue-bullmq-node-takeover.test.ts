import t, { type Test } from 'tap';
import { systemClock } from '../src/clock.js';
import { PgTransactor, pgTx } from '../src/store/pg/tx.js';
import type { JobResult } from '../src/queue/types.js';
import { freshJobStore, openBullmqQueue, startJobServers, type JobStore, type OpenQueue } from './helpers/bullmq-queue.js';
import { waitFor } from './helpers/relay.js';

/**
 * Two nodes (two queue objects, each with its own PostgreSQL pool and Redis
 * connections) on one database and one Redis. When node A dies mid-job its
 * leases stop being renewed; once they run out, node B runs A's jobs (the
 * reconciler re-dispatches rows whose BullMQ job is stuck active, or
 * BullMQ's stalled check hands the job back). A node that closes releases
 * its leases, so B does not wait for them. A run whose lease was taken over
 * writes nothing when it finally ends.
 */
const servers = await startJobServers(t);

function gate(): { promise: Promise<void>; open: () => void } {
  let open!: () => void;
  const promise = new Promise<void>((resolve) => (open = resolve));
  return { promise, open };
}

async function storeWithLog(): Promise<JobStore> {
  const store = await freshJobStore(servers);
  await servers.pg.query('CREATE TABLE done_log (job_id text NOT NULL, node text NOT NULL, attempts integer NOT NULL)', [], decodeURIComponent(store.url.split('/').pop()!));
  return store;
}

const doneLog = async (node: OpenQueue) => (await node.pool.query<{ job_id: string; node: string; attempts: number }>('SELECT job_id, node, attempts FROM done_log ORDER BY job_id')).rows;
const jobCount = async (node: OpenQueue) => (await node.pool.query<{ n: number }>('SELECT count(*)::int AS n FROM jobs')).rows[0]!.n;

/** A handler that logs its completion (in the outcome's transaction) as `node`; `hold` keeps it from finishing until opened. */
function handler(node: string, started: string[], hold?: Promise<void>) {
  return async (job: { id: string; attempts: number }): Promise<JobResult> => {
    started.push(job.id);
    if (hold) await hold;
    return {
      status: 'done',
      record: async (tx) => {
        await pgTx(tx).query('INSERT INTO done_log (job_id, node, attempts) VALUES ($1, $2, $3)', [job.id, node, job.attempts]);
      },
    };
  };
}

/** Node A takes three jobs and holds them; node B then joins and runs the rest. */
async function twoNodes(t: Test, leaseMs: number) {
  const store = await storeWithLog();
  const options = { leaseMs, reconcileMs: 200, reconcileGraceMs: 0, stalledIntervalMs: 1_000 };
  const a = await openBullmqQueue(t, servers, store, systemClock, { ...options, node: 'A' });
  const b = await openBullmqQueue(t, servers, store, systemClock, { ...options, node: 'B' });
  const startedA: string[] = [];
  const startedB: string[] = [];
  const holdA = gate();
  t.teardown(() => holdA.open());
  a.queue.work('k', handler('A', startedA, holdA.promise), { concurrency: 3 });
  const ids = Array.from({ length: 12 }, (_, i) => `k:${String(i).padStart(2, '0')}`);
  await a.queue.add(ids.map((id) => ({ id, kind: 'k', payload: { id } })));
  await waitFor(() => startedA.length === 3, 5_000, 'node A to take three jobs');
  b.queue.work('k', handler('B', startedB), { concurrency: 3 });
  await waitFor(async () => (await jobCount(b)) === 3, 10_000, 'node B to run the nine others');
  return { a, b, ids, startedA, startedB, holdA };
}

t.test("a node killed mid-job: its jobs run on the other node once their leases ran out, none lost", async (t) => {
  const leaseMs = 1_500;
  const { a, b, ids, startedA, startedB, holdA } = await twoNodes(t, leaseMs);
  const taken = [...startedA].sort();
  const killedAt = Date.now();
  await a.kill(); // workers stop, leases are neither renewed nor released, connections closed
  await waitFor(async () => (await jobCount(b)) === 0, 15_000, "node B to finish node A's jobs");
  const tookOver = Date.now() - killedAt;
  const log = await doneLog(b);
  t.same(log.map((r) => r.job_id), ids, 'every job completed once');
  t.ok(log.every((r) => r.node === 'B'), 'all on node B');
  t.same(startedB.filter((id) => taken.includes(id)).sort(), taken, "node A's three jobs ran again on node B");
  t.same(log.filter((r) => taken.includes(r.job_id)).map((r) => r.attempts), [0, 0, 0], 'a run cut off by a crash is not counted as an attempt');
  // renewed every third of the lease: at the kill, at least two thirds of it were left
  t.ok(tookOver >= (leaseMs * 2) / 3 - 50, `not before the lease ran out (${tookOver} ms after the kill, lease ${leaseMs} ms)`);
  t.comment(`node B finished node A's jobs ${tookOver} ms after the kill (lease ${leaseMs} ms, reconciler every 200 ms)`);
  // the dead node's handlers end now: nothing of theirs is written
  holdA.open();
  await new Promise((resolve) => setImmediate(resolve));
  t.same((await doneLog(b)).length, ids.length, 'the killed node wrote nothing afterwards');
});

t.test('a node that closes with jobs still running releases them: the other node runs them without waiting for the lease', async (t) => {
  const leaseMs = 8_000;
  const { a, b, ids, startedA, startedB } = await twoNodes(t, leaseMs);
  const taken = [...startedA].sort();
  const closedAt = Date.now();
  await a.close(50);
  await waitFor(async () => (await jobCount(b)) === 0, 15_000, "node B to finish node A's jobs");
  const tookOver = Date.now() - closedAt;
  t.same((await doneLog(b)).map((r) => r.job_id), ids, 'every job completed once');
  t.same(startedB.filter((id) => taken.includes(id)).sort(), taken, "node A's jobs ran on node B");
  t.ok(tookOver < leaseMs, `well before the lease would have run out (${tookOver} ms, lease ${leaseMs} ms)`);
  t.comment(`node B finished the jobs node A released ${tookOver} ms after A closed`);
});

t.test("a run whose lease another node took over writes nothing: not its rows, not the job's completion", async (t) => {
  const store = await storeWithLog();
  const options = { leaseMs: 5_000, reconcileMs: 60_000, reconcileGraceMs: 0 };
  const a = await openBullmqQueue(t, servers, store, systemClock, { ...options, node: 'A' });
  const b = await openBullmqQueue(t, servers, store, systemClock, { ...options, node: 'B' });
  const startedA: string[] = [];
  const holdA = gate();
  t.teardown(() => holdA.open());
  a.queue.work('k', handler('A', startedA, holdA.promise), { concurrency: 1 });
  await a.queue.add([{ id: 'k:paused', kind: 'k', payload: null }]);
  await waitFor(() => startedA.length === 1, 5_000, 'node A to start the job');
  // node A stalls (a long pause: no renewal) and its lease runs out; node B claims the job
  await b.pool.query('UPDATE jobs SET lease_until = 0 WHERE id = $1', ['k:paused']);
  t.ok(await b.queue.jobs.claim('k:paused', 'B:takeover'), 'node B can claim the job once the lease ran out');
  // node A wakes up and finishes while node B holds the job: A's outcome is refused
  holdA.open();
  await waitFor(() => a.queue.runningHere === 0, 5_000, "node A's run to end");
  t.same(await doneLog(b), [], "node A's rows were not written");
  t.same(
    (await b.pool.query('SELECT id, lease_owner FROM jobs')).rows,
    [{ id: 'k:paused', lease_owner: 'B:takeover' }],
    "node A did not complete the job node B holds",
  );
  await new PgTransactor(b.pool).transaction(async (tx) => {
    await b.queue.jobs.complete(tx, 'k:paused', 'B:takeover', []);
    await pgTx(tx).query("INSERT INTO done_log (job_id, node, attempts) VALUES ('k:paused', 'B', 0)");
  });
  t.same((await doneLog(b)).map((r) => [r.job_id, r.node]), [['k:paused', 'B']], "only node B's run left its rows");
  t.equal(await jobCount(b), 0, 'the job is done once');
});
