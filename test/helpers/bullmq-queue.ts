import type { Test } from 'tap';
import { pino } from 'pino';
import type { Clock } from '../../src/clock.js';
import { BullmqQueue, type BullmqQueueOptions } from '../../src/queue/bullmq.js';
import { openPgPool, type PgPool } from '../../src/store/pg/connect.js';
import { migrate } from '../../src/store/pg/migrate.js';
import { PgTransactor } from '../../src/store/pg/tx.js';
import { startPostgres, type PgServer } from './pg-server.js';
import { startRedis, type RedisServer } from './redis-server.js';

/**
 * What the BullMQ driver's tests run on: one PostgreSQL server and one
 * redis-server per test file (stopped at the file's teardown), a fresh,
 * migrated database and a fresh Redis key prefix per store, and queues
 * (each with its own pool, as a node has) opened on them.
 */
export interface JobServers {
  pg: PgServer;
  redis: RedisServer;
}

export async function startJobServers(t: Test): Promise<JobServers> {
  const [pg, redis] = await Promise.all([startPostgres(), startRedis()]);
  t.teardown(async () => {
    await Promise.all([pg.cleanup(), redis.cleanup()]);
  });
  return { pg, redis };
}

/** One store: a migrated database and a Redis prefix of its own. */
export interface JobStore {
  url: string;
  prefix: string;
}

let stores = 0;

export async function freshJobStore(servers: JobServers): Promise<JobStore> {
  const name = `jobs_${process.pid}_${++stores}`;
  const url = await servers.pg.createDatabase(name);
  const pool = await openPgPool({ url, passwordFile: servers.pg.passwordFile, applicationName: 'zegel-test-migrate' });
  try {
    await migrate(pool);
  } finally {
    await pool.close();
  }
  return { url, prefix: `z${name}` };
}

export interface OpenQueue {
  queue: BullmqQueue;
  pool: PgPool;
  /** `queue.close(timeoutMs)` then the pool; once. */
  close(timeoutMs?: number): Promise<void>;
  /** `queue.halt()` then the pool, as a killed node leaves things; once. */
  kill(): Promise<void>;
}

export async function openBullmqQueue(
  t: Test,
  servers: JobServers,
  store: JobStore,
  clock: Clock,
  options: Partial<BullmqQueueOptions> & { poolMax?: number } = {},
): Promise<OpenQueue> {
  const { poolMax, ...queueOptions } = options;
  const pool = await openPgPool({ url: store.url, passwordFile: servers.pg.passwordFile, applicationName: 'zegel-test-queue', max: poolMax ?? 10 });
  const queue = new BullmqQueue(pool, new PgTransactor(pool), clock, pino({ level: process.env.ZEGEL_TEST_LOG ?? 'silent' }), {
    redisUrl: servers.redis.url,
    prefix: store.prefix,
    ...queueOptions,
  });
  let done = false;
  const end = async (stop: () => Promise<void>): Promise<void> => {
    if (done) return;
    done = true;
    await stop();
    await pool.close();
  };
  const open: OpenQueue = {
    queue,
    pool,
    close: (timeoutMs = 10) => end(() => queue.close(timeoutMs)),
    kill: () => end(() => queue.halt()),
  };
  t.teardown(() => open.close());
  return open;
}
