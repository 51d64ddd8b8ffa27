import Fastify, { type FastifyInstance } from 'fastify';
import pino from 'pino';
import t, { type Test } from 'tap';
import { parseConfig } from '../src/config/load.js';
import { ApiFailure } from '../src/reader/routes/errors.js';
import { RateLimited, registerRateLimits, type RateLimitStore } from '../src/reader/rate-limit.js';
import { AuthThrottle, type AuthThrottleOptions } from '../src/smtp/auth-throttle.js';
import { openPgPool } from '../src/store/pg/connect.js';
import { pgRateLimits, pgReaderStore, sweepRateLimits } from '../src/store/pg/rate-limits.js';
import { freePort } from './helpers/child-relay.js';
import { startRoleDatabase } from './helpers/pg-roles.js';
import { waitFor } from './helpers/relay.js';
import { httpFrom } from './helpers/http-from.js';
import { ReaderFixture } from './helpers/reader-fixture.js';
import { startReader } from '../src/reader/server.js';

/**
 * Rate limits shared through PostgreSQL (src/store/pg/rate-limits.ts): two
 * "nodes" are two pools, each logged in as its own role (zegel_reader for the
 * reader's limits, zegel_smtp for the AUTH throttle), on one private server.
 * The reader's limits run in real Fastify apps through registerRateLimits,
 * exactly as the reader registers them; requests are injected with a chosen
 * client address. Clock skew between nodes is made by moving one process's
 * Date.now(): the counts must not notice, since only the server's clock is read.
 */

const db = await startRoleDatabase(t);
const readerA = await db.login('zegel_reader', 'limits_reader_a');
const readerB = await db.login('zegel_reader', 'limits_reader_b');
const smtpA = await db.login('zegel_smtp', 'limits_smtp_a');
const smtpB = await db.login('zegel_smtp', 'limits_smtp_b');
const worker = await db.login('zegel_worker', 'limits_worker');
const silent = pino({ level: 'silent' });

/** A unique page id per test, so tests sharing the table do not share counts. */
let serial = 0;
const fresh = (): string => `L${++serial}`.padEnd(22, 'x');

async function node(t: Test, store: RateLimitStore | undefined, rateLimit: Record<string, unknown>, logLines?: string[]): Promise<FastifyInstance> {
  const config = parseConfig({ reader: { rateLimit } });
  const log = logLines ? pino({ level: 'debug' }, { write: (line: string) => void logLines.push(line) }) : silent;
  const app = Fastify({ logger: false });
  const limits = await registerRateLimits(app, config, log, store);
  app.setErrorHandler((err, _request, reply) => {
    if (err instanceof RateLimited) return reply.code(429).header('retry-after', String(err.retryAfter)).send({ error: 'rate-limited' });
    if (err instanceof ApiFailure) return reply.code(err.status).send(err.body);
    return reply.code(500).send({ error: 'bad-request' });
  });
  app.get('/m/:linkId', { onRequest: limits.hook('pages', 'linkId') }, async () => 'page');
  app.post('/api/links/:linkId/code', { onRequest: limits.hook('checks', 'linkId') }, async () => ({ ok: true }));
  await app.ready();
  t.teardown(() => app.close());
  return app;
}

const page = async (app: FastifyInstance, id: string, from = '127.0.0.1') => app.inject({ method: 'GET', url: `/m/${id}`, remoteAddress: from });
const check = async (app: FastifyInstance, id: string, from = '127.0.0.1') => app.inject({ method: 'POST', url: `/api/links/${id}/code`, remoteAddress: from });

/** Runs `work` with this process's Date.now() moved by `skewMs`, as on a node whose clock is off. */
async function skewed<T>(skewMs: number, work: () => Promise<T>): Promise<T> {
  const real = Date.now;
  Date.now = () => real() + skewMs;
  try {
    return await work();
  } finally {
    Date.now = real;
  }
}

t.test('requests spread over two nodes hit the limit exactly where one node would', async (t) => {
  const limits = { pages: { perAddress: 7, perLink: 1000, window: '10m' } };
  const one = await node(t, undefined, limits);
  const a = await node(t, pgReaderStore(readerA), limits);
  const b = await node(t, pgReaderStore(readerB), limits);
  const id = fresh();
  const alone: number[] = [];
  const spread: number[] = [];
  for (let i = 0; i < 12; i++) {
    alone.push((await page(one, id, '127.0.0.21')).statusCode);
    spread.push((await page(i % 2 ? b : a, id, '127.0.0.21')).statusCode);
  }
  t.same(alone, [200, 200, 200, 200, 200, 200, 200, 429, 429, 429, 429, 429], 'one node: seven pass');
  t.same(spread, alone, 'two nodes together: the same seven pass');
  t.equal((await page(b, id, '127.0.0.22')).statusCode, 200, 'another address has its own count');

  // at once: 60 requests in parallel over both nodes, ten allowed: exactly ten pass
  const burst = await node(t, pgReaderStore(readerA), { pages: { perAddress: 10, perLink: 1000, window: '10m' } });
  const burstB = await node(t, pgReaderStore(readerB), { pages: { perAddress: 10, perLink: 1000, window: '10m' } });
  const results = await Promise.all(Array.from({ length: 60 }, (_, i) => page(i % 2 ? burstB : burst, fresh(), '127.0.0.23')));
  t.equal(results.filter((r) => r.statusCode === 200).length, 10, 'ten of sixty concurrent requests pass, none counted twice or lost');
  t.equal(results.filter((r) => r.statusCode === 429).length, 50);
});

t.test('per link: checks on one link from many addresses over both nodes share one count', async (t) => {
  const limits = { checks: { perAddress: 100, perLink: 5, window: '10m' } };
  const a = await node(t, pgReaderStore(readerA), limits);
  const b = await node(t, pgReaderStore(readerB), limits);
  const id = fresh();
  const statuses: number[] = [];
  for (let i = 0; i < 8; i++) statuses.push((await check(i % 2 ? a : b, id, `127.0.1.${i + 1}`)).statusCode);
  t.same(statuses, [200, 200, 200, 200, 200, 429, 429, 429]);
  const other = await check(a, fresh(), '127.0.1.1');
  t.equal(other.statusCode, 200, 'another link is not held back');
});

t.test('the window resets after its time on every node, by the server clock', async (t) => {
  const limits = { pages: { perAddress: 3, perLink: 1000, window: 1500 } };
  const a = await node(t, pgReaderStore(readerA), limits);
  const b = await node(t, pgReaderStore(readerB), limits);
  const id = fresh();
  const first = await page(a, id, '127.0.0.31');
  const started = Date.now();
  t.equal(first.statusCode, 200);
  t.equal((await page(b, id, '127.0.0.31')).statusCode, 200);
  t.equal((await page(a, id, '127.0.0.31')).statusCode, 200);
  const over = await page(b, id, '127.0.0.31');
  t.equal(over.statusCode, 429);
  t.equal(over.headers['retry-after'], '2', 'Retry-After rounds the 1.5 s window up');
  await waitFor(async () => (await page(b, id, '127.0.0.31')).statusCode === 200, 5_000, 'the window to reset');
  t.ok(Date.now() - started >= 1_400, `not before the window ended (${Date.now() - started} ms)`);
  // the new window is whole: two more pass (three with the one that got through), then refused
  const after = [await page(a, id, '127.0.0.31'), await page(b, id, '127.0.0.31'), await page(a, id, '127.0.0.31')].map((r) => r.statusCode);
  t.same(after, [200, 200, 429]);
});

t.test('a node whose clock is ten minutes off counts in the same window', async (t) => {
  const limits = { pages: { perAddress: 4, perLink: 1000, window: '1m' } };
  const a = await node(t, pgReaderStore(readerA), limits);
  const b = await node(t, pgReaderStore(readerB), limits);
  const id = fresh();
  t.equal((await page(a, id, '127.0.0.41')).statusCode, 200);
  t.equal((await page(a, id, '127.0.0.41')).statusCode, 200);
  // B's clock ten minutes ahead: a store that read it would see A's window long over and start again
  const ahead = await skewed(10 * 60_000, async () => [await page(b, id, '127.0.0.41'), await page(b, id, '127.0.0.41'), await page(b, id, '127.0.0.41')]);
  t.same(
    ahead.map((r) => r.statusCode),
    [200, 200, 429],
  );
  t.ok(Number(ahead[2]!.headers['retry-after']) <= 60, 'B reports the time left of A\'s window');
  // and behind: a store that read it would see A's window as just begun and longer than it is
  const behind = await skewed(-10 * 60_000, async () => page(b, id, '127.0.0.41'));
  t.equal(behind.statusCode, 429);
  t.ok(Number(behind.headers['retry-after']) <= 60, `Retry-After stays within the window (${behind.headers['retry-after']})`);
});

t.test('PostgreSQL not answering: pages go on uncounted, checks answer 503, both logged', async (t) => {
  const id = fresh();
  const logs: string[] = [];
  const limits = { pages: { perAddress: 1, perLink: 1000, window: '10m' }, checks: { perAddress: 1, perLink: 1000, window: '10m' } };
  const a = await node(t, pgReaderStore(readerA, { deadlineMs: 300 }), limits, logs);
  t.equal((await page(a, id, '127.0.0.51')).statusCode, 200);
  t.equal((await check(a, id, '127.0.0.51')).statusCode, 200);
  // the owner holds the rows' locks in an open transaction: every count waits on them
  const held = await db.owner.checkout();
  t.teardown(() => held.release(true));
  await held.client.query('BEGIN');
  await held.client.query(`SELECT key FROM rate_limits WHERE key LIKE 'zegel_reader:%:address:127.0.0.51' FOR UPDATE`);
  const started = Date.now();
  const pageLoad = await page(a, id, '127.0.0.51');
  t.ok(Date.now() - started < 2_000, 'the page did not wait for the lock beyond the deadline');
  t.equal(pageLoad.statusCode, 200, 'a page load is served, though over its limit, while the store cannot count');
  const checked = await check(a, id, '127.0.0.51');
  t.equal(checked.statusCode, 503, 'a check is not run uncounted');
  t.same(checked.json(), { error: 'bad-request' });
  await held.client.query('ROLLBACK');
  t.equal((await page(a, id, '127.0.0.51')).statusCode, 429, 'once the store answers, the count holds again');
  const warned = logs.filter((l) => l.includes('rate-limit store failed'));
  t.equal(warned.length, 1, 'one warning per ten seconds, not one per request');
  t.match(warned[0], /"failOpen":true/);
});

t.test('two real readers on the PostgreSQL store count together over HTTP', async (t) => {
  const f = new ReaderFixture(t, { reader: { rateLimit: { pages: { perAddress: 4, perLink: 1000, window: '10m' }, checks: { perAddress: 100, perLink: 3, window: '10m' } } } });
  const one = await startReader({ ...f.deps(), rateLimitStore: pgReaderStore(readerA) });
  t.teardown(() => one.close());
  const two = await startReader({ ...f.deps(), rateLimitStore: pgReaderStore(readerB) });
  t.teardown(() => two.close());
  const link = await f.link({ method: 'access-code' });
  const pages: number[] = [];
  for (let i = 0; i < 6; i++) pages.push((await httpFrom('127.0.10.1', `${(i % 2 ? two : one).url}/m/${link.linkId}`)).status);
  t.same(pages, [200, 200, 200, 200, 429, 429], 'page loads: four in all pass');
  const checks: number[] = [];
  for (let i = 0; i < 5; i++) {
    const res = await httpFrom(`127.0.10.${i + 2}`, `${(i % 2 ? one : two).url}/api/links/${link.linkId}/forgot`, { method: 'POST', headers: { 'x-zegel-reader': '1' } });
    checks.push(res.status);
  }
  t.same(checks, [200, 200, 200, 429, 429], 'checks on one link from five addresses: three in all pass');
});

const AUTH: AuthThrottleOptions = { maxFailures: 3, maxFailuresPerUser: 5, failureWindowMs: 60_000, lockForMs: 4_000 };

t.test('AUTH failures spread over two nodes block together, per address and per user', async (t) => {
  const limitsA = pgRateLimits(smtpA, silent, { sweepEveryMs: 0 });
  const limitsB = pgRateLimits(smtpB, silent, { sweepEveryMs: 0 });
  const a = new AuthThrottle(AUTH, limitsA.authLimiterFactory);
  const b = new AuthThrottle(AUTH, limitsB.authLimiterFactory);
  const mta = `mta-${fresh()}`;
  // three attempts per address, over both nodes; the fourth is refused on either
  t.same(await a.admit('127.0.2.1', mta), { admitted: true });
  t.same(await b.admit('127.0.2.1', mta), { admitted: true });
  t.same(await a.admit('127.0.2.1', mta), { admitted: true });
  const refused = await b.admit('127.0.2.1', mta);
  t.match(refused, { admitted: false, scope: 'client' });
  t.ok(!refused.admitted && refused.retryAfterMs > 3_000 && refused.retryAfterMs <= 4_000, 'locked for lockFor (4 s)');
  t.match(await a.admit('127.0.2.1', mta), { admitted: false, scope: 'client' }, 'node A refuses it too');
  // per user, across addresses and nodes: five in all, the sixth refused
  const user = `svc-${fresh()}`;
  for (let i = 0; i < 5; i++) t.same(await (i % 2 ? a : b).admit(`127.0.3.${i + 1}`, user), { admitted: true });
  t.match(await a.admit('127.0.3.9', user), { admitted: false, scope: 'user' });
  t.same(await b.admit('127.0.3.9', `other-${fresh()}`), { admitted: true }, 'the refusal for the user was not held against 127.0.3.9');
  // a success on one node clears the address on both
  const ops = `ops-${fresh()}`;
  t.same(await a.admit('127.0.4.1', ops), { admitted: true });
  t.same(await a.admit('127.0.4.1', ops), { admitted: true });
  await b.succeeded('127.0.4.1', ops);
  for (let i = 0; i < 3; i++) t.same(await (i % 2 ? a : b).admit('127.0.4.1', ops), { admitted: true }, `after the success, attempt ${i + 1}`);
  t.match(await a.admit('127.0.4.1', ops), { admitted: false, scope: 'client' });
  // the lock ends for both nodes when lockFor is over
  const later = `later-${fresh()}`;
  await waitFor(async () => (await a.admit('127.0.2.1', later)).admitted, 8_000, 'the lock to end');
  t.same(await b.admit('127.0.2.1', later), { admitted: true });
});

t.test('AUTH: a node with a skewed clock neither resets nor stretches a lock', async (t) => {
  const a = new AuthThrottle(AUTH, pgRateLimits(smtpA, silent, { sweepEveryMs: 0 }).authLimiterFactory);
  const b = new AuthThrottle(AUTH, pgRateLimits(smtpB, silent, { sweepEveryMs: 0 }).authLimiterFactory);
  const mta = `mta-${fresh()}`;
  for (let i = 0; i < 3; i++) t.same(await a.admit('127.0.5.1', mta), { admitted: true });
  t.match(await a.admit('127.0.5.1', mta), { admitted: false, scope: 'client' });
  // ten minutes ahead: the library's own RateLimiterPostgres would find the row expired and admit
  const ahead = await skewed(10 * 60_000, () => b.admit('127.0.5.1', mta));
  t.match(ahead, { admitted: false, scope: 'client' }, 'still locked for a node whose clock is ahead');
  t.ok(!ahead.admitted && ahead.retryAfterMs <= 4_000, `the time left is the server's (${JSON.stringify(ahead)})`);
});

t.test('AUTH with PostgreSQL away: refused without verifying, as an error, not as the client\'s failure', async (t) => {
  const port = await freePort();
  const gone = await openPgPool({ url: `postgres://postgres@127.0.0.1:${port}/zegel`, applicationName: 'gone', probe: false, connectTimeoutMs: 500 });
  t.teardown(() => gone.close());
  const auth = new AuthThrottle(AUTH, pgRateLimits(gone, silent, { sweepEveryMs: 0 }).authLimiterFactory);
  t.same(await auth.admit('127.0.5.9', `mta-${fresh()}`), { admitted: false, scope: 'error', retryAfterMs: 0 });
});

t.test('a username longer than the key column is counted under a hashed key', async (t) => {
  const a = new AuthThrottle(AUTH, pgRateLimits(smtpA, silent, { sweepEveryMs: 0 }).authLimiterFactory);
  const long = 'u'.repeat(400);
  const longer = `${'u'.repeat(399)}v`;
  for (let i = 0; i < 5; i++) t.same(await a.admit(`127.0.6.${i + 1}`, long), { admitted: true });
  t.match(await a.admit('127.0.6.9', long), { admitted: false, scope: 'user' });
  t.same(await a.admit('127.0.6.10', longer), { admitted: true }, 'a name differing past the prefix has its own count');
  const { rows } = await db.owner.query<{ key: string }>(`SELECT key FROM rate_limits WHERE key LIKE 'zegel_smtp_auth_user:uuu%'`);
  t.equal(rows.length, 2);
  for (const row of rows) t.ok(row.key.length <= 255);
});

t.test('the reader and the AUTH throttle keep apart in one table', async (t) => {
  const app = await node(t, pgReaderStore(readerA), { pages: { perAddress: 2, perLink: 1000, window: '10m' } });
  const auth = new AuthThrottle(AUTH, pgRateLimits(smtpA, silent, { sweepEveryMs: 0 }).authLimiterFactory);
  const id = fresh();
  t.equal((await page(app, id, '127.0.7.1')).statusCode, 200);
  t.equal((await page(app, id, '127.0.7.1')).statusCode, 200);
  t.same(await auth.admit('127.0.7.1', `mta-${fresh()}`), { admitted: true }, 'two page loads do not count against AUTH from the same address');
  const { rows } = await db.owner.query<{ key: string; points: number }>(`SELECT key, points FROM rate_limits WHERE key LIKE '%127.0.7.1' ORDER BY key`);
  t.same(rows, [
    { key: 'zegel_reader:pages:address:127.0.7.1', points: 2 },
    { key: 'zegel_smtp_auth_client:127.0.7.1', points: 1 },
  ]);
});

t.test('the sweep removes expired rows in bounded batches; any role may run it', async (t) => {
  await db.owner.query(`DELETE FROM rate_limits`);
  const now = `(extract(epoch FROM statement_timestamp()) * 1000)::bigint`;
  await db.owner.query(`INSERT INTO rate_limits (key, points, expire) SELECT 'old' || i, 1, ${now} - 120000 FROM generate_series(1, 7) i`);
  await db.owner.query(`INSERT INTO rate_limits (key, points, expire) VALUES ('recent', 1, ${now} - 1000), ('live', 1, ${now} + 60000), ('forever', 1, NULL)`);
  t.equal(await sweepRateLimits(readerA, { batch: 2, maxBatches: 2 }), 4, 'two batches of two, then the pass ends');
  t.equal(await sweepRateLimits(worker, { batch: 2 }), 3, 'the worker role may sweep too');
  t.equal(await sweepRateLimits(smtpB), 0, 'nothing left to remove');
  const { rows } = await db.owner.query<{ key: string }>(`SELECT key FROM rate_limits ORDER BY key`);
  t.same(
    rows.map((r) => r.key),
    ['forever', 'live', 'recent'],
    'a live window, one that ended within the grace, and one without expiry stay',
  );
});

t.test('the table is unlogged (migration 5): a count does not wait for a WAL flush', async (t) => {
  const { rows } = await db.owner.query<{ relpersistence: string }>(`SELECT relpersistence FROM pg_class WHERE relname = 'rate_limits'`);
  t.equal(rows[0]?.relpersistence, 'u');
});

t.test('cost per request: the PostgreSQL store against the in-memory one', async (t) => {
  const limits = { pages: { perAddress: 1_000_000, perLink: 1_000_000, window: '10m' } };
  const memory = await node(t, undefined, limits);
  const shared = await node(t, pgReaderStore(readerA), limits);
  const id = fresh();
  const N = 500;
  const sequential = async (app: FastifyInstance): Promise<number> => {
    const started = process.hrtime.bigint();
    for (let i = 0; i < N; i++) await page(app, id, `127.0.8.${(i % 200) + 1}`);
    return Number(process.hrtime.bigint() - started) / 1e6 / N;
  };
  const parallel = async (app: FastifyInstance): Promise<number> => {
    const started = process.hrtime.bigint();
    for (let round = 0; round < N / 50; round++) await Promise.all(Array.from({ length: 50 }, (_, i) => page(app, id, `127.0.9.${i + 1}`)));
    return Number(process.hrtime.bigint() - started) / 1e6 / N;
  };
  const roundTrip = async (): Promise<number> => {
    const started = process.hrtime.bigint();
    for (let i = 0; i < N; i++) await readerA.query('SELECT 1');
    return Number(process.hrtime.bigint() - started) / 1e6 / N;
  };
  const median = (xs: number[]): string => [...xs].sort((x, y) => x - y)[Math.floor(xs.length / 2)]!.toFixed(3);
  await sequential(memory);
  await sequential(shared); // warm up both
  // rounds alternate so the machine's load falls on each alike; `logged` is the table before migration 5
  const runs = { memory: [] as number[], unlogged: [] as number[], logged: [] as number[], select1: [] as number[], memoryPar: [] as number[], unloggedPar: [] as number[] };
  for (let round = 0; round < 3; round++) {
    runs.memory.push(await sequential(memory));
    runs.unlogged.push(await sequential(shared));
    runs.select1.push(await roundTrip());
    runs.memoryPar.push(await parallel(memory));
    runs.unloggedPar.push(await parallel(shared));
    await db.owner.query('ALTER TABLE rate_limits SET LOGGED');
    runs.logged.push(await sequential(shared));
    await db.owner.query('ALTER TABLE rate_limits SET UNLOGGED');
  }
  // a /m/:linkId page load counts twice (per address, then per link): two statements, one after the other
  t.comment(`per page load (2 counts), one at a time, median of 3 x ${N}: in-memory ${median(runs.memory)} ms, PostgreSQL ${median(runs.unlogged)} ms (logged table: ${median(runs.logged)} ms); SELECT 1 round trip ${median(runs.select1)} ms`);
  t.comment(`per page load, 50 at a time: in-memory ${median(runs.memoryPar)} ms, PostgreSQL ${median(runs.unloggedPar)} ms (pool of 10)`);
  t.ok(runs.unlogged.every((ms) => ms > 0));
});
