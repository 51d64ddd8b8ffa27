import { randomBytes } from 'node:crypto';
import { pino } from 'pino';
import t from 'tap';
import { ManualClock } from '../src/clock.js';
import { StorageKey } from '../src/crypto/storage-key.js';
import { PurgeWorker, queuePurgeOnce, type PurgePayload } from '../src/pipeline/purge-job.js';
import type { Job } from '../src/queue/types.js';
import { PgBackend } from '../src/store/pg/backend.js';
import { revocationsFor } from '../src/store/revocations-for.js';
import { freshJobStore, startJobServers } from './helpers/bullmq-queue.js';
import { waitFor } from './helpers/relay.js';

/*
 * The periodic purge on PostgreSQL + BullMQ runs once per slot for the whole
 * cluster: three nodes (PgBackend each, the relay's wiring of the purge job)
 * starting together schedule one row, the slot's job runs on one node once,
 * and a node restarting after that run schedules nothing that runs again in
 * the same slot. Before start-up added the chain's next id, the restart
 * re-added the slot's job (`purge:<slot>`, deleted when it completed) and
 * it ran a second time: the restart step below fails so.
 */
const INTERVAL = 60_000;
const servers = await startJobServers(t);
const store = await freshJobStore(servers);
const log = pino({ level: process.env.ZEGEL_TEST_LOG ?? 'silent' });
const storageKey = new StorageKey(randomBytes(32));
// in the middle of slot N
const N = 29_000_000;
const clock = new ManualClock(N * INTERVAL + INTERVAL / 2);
/** Every purge run, by node and job id. */
const runs: Array<{ node: string; job: string }> = [];

interface Node {
  name: string;
  backend: PgBackend;
  purge: PurgeWorker;
}

async function node(name: string): Promise<Node> {
  const backend = await PgBackend.open({
    url: store.url,
    passwordFile: servers.pg.passwordFile,
    storageKey,
    redisUrl: servers.redis.url,
    clock,
    log,
    applicationName: name,
    queue: { prefix: store.prefix, reconcileMs: 100, reconcileGraceMs: 0 },
  });
  t.teardown(() => backend.close());
  const revocations = revocationsFor(backend, backend.blobs, backend.shredder, clock, log, (tx, at) => queuePurgeOnce(tx, backend.queue, at));
  const purge = new PurgeWorker({ revocations, clock, log, intervalMs: INTERVAL });
  backend.queue.work<PurgePayload>('purge', (job: Job<PurgePayload>) => {
    runs.push({ node: name, job: job.id });
    return purge.handle(job);
  }, { concurrency: 1 });
  return { name, backend, purge };
}

async function purgeRows(): Promise<string[]> {
  return (await servers.pg.query<{ id: string }>("SELECT id FROM jobs WHERE kind = 'purge' ORDER BY id", [], store.url.slice(store.url.lastIndexOf('/') + 1))).map((r) => r.id);
}

t.test('three nodes starting together: one row, one run per slot; a restart adds no second run', async (t) => {
  const nodes = await Promise.all(['node-a', 'node-b', 'node-c'].map(node));
  await Promise.all(nodes.map((n) => n.purge.ensureScheduled(n.backend.queue)));
  t.same(await purgeRows(), [`purge:${N + 1}`], 'one row: the chain\'s next slot, whoever added it');
  t.same(runs, [], 'nothing runs at start-up');

  clock.advance(INTERVAL);
  await waitFor(async () => (await purgeRows()).join() === `purge:${N + 2}`, 15_000, 'the slot\'s run to complete and chain the next');
  t.same(runs.map((r) => r.job), [`purge:${N + 1}`], `slot N+1 ran once (on ${runs[0]?.node})`);

  // node A restarts within slot N+1, after its run
  await nodes[0]!.backend.close();
  const again = await node('node-a2');
  await again.purge.ensureScheduled(again.backend.queue);
  t.same(await purgeRows(), [`purge:${N + 2}`], 'the restart added nothing of this slot');

  clock.advance(INTERVAL);
  await waitFor(async () => (await purgeRows()).join() === `purge:${N + 3}`, 15_000, 'slot N+2 to run');
  t.same(runs.map((r) => r.job), [`purge:${N + 1}`, `purge:${N + 2}`], 'one run per slot, four nodes');
});
