import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { pino } from 'pino';
import t, { type Test } from 'tap';
import { ManualClock } from '../src/clock.js';
import { StorageKey } from '../src/crypto/storage-key.js';
import { ZegelError } from '../src/errors.js';
import type { IncomingMessage } from '../src/store/messages.js';
import { PgBackend, type PgBackendOptions } from '../src/store/pg/backend.js';
import { CHAIN_LOCK } from '../src/store/pg/events.js';
import { PG_MIGRATIONS } from '../src/store/pg/migrations/index.js';
import { cleanEnv } from './helpers/child-relay.js';
import { startPostgres } from './helpers/pg-server.js';
import { startRedis } from './helpers/redis-server.js';
import { rejection } from './helpers/rejection.js';
import { waitFor } from './helpers/relay.js';
import { repoRoot } from './helpers/repo-root.js';

/**
 * PgBackend (src/store/pg/backend.ts): the PostgreSQL repositories and the
 * BullMQ queue composed behind the store interface, against a real
 * PostgreSQL server and a real redis-server (one of each for this file, a
 * fresh database per test). Opening migrates once under the lock, intake is
 * one transaction with its `received` event last, a job taken in runs
 * through BullMQ, ping follows the server, and close leaves nothing that
 * keeps a process alive.
 */
const [server, redis] = await Promise.all([startPostgres(), startRedis()]);
t.teardown(async () => {
  await Promise.all([server.cleanup(), redis.cleanup()]);
});

const silent = pino({ level: process.env.ZEGEL_TEST_LOG ?? 'silent' });
const storageKey = new StorageKey(randomBytes(32));
let databases = 0;

async function freshDatabase(): Promise<{ url: string; name: string }> {
  const name = `backend_${++databases}`;
  return { url: await server.createDatabase(name), name };
}

function options(url: string, name: string, extra: Partial<PgBackendOptions> = {}): PgBackendOptions {
  return {
    url,
    passwordFile: server.passwordFile,
    storageKey,
    redisUrl: redis.url,
    clock: new ManualClock(Date.now()),
    log: silent,
    applicationName: `zegel-test-${name}`,
    queue: { prefix: `z${name}`, reconcileMs: 200, reconcileGraceMs: 0 },
    ...extra,
  };
}

async function open(t: Test, url: string, name: string, extra: Partial<PgBackendOptions> = {}): Promise<PgBackend> {
  const backend = await PgBackend.open(options(url, name, extra));
  t.teardown(() => backend.close());
  return backend;
}

function message(id: string, recipients = ['a@example.nl', 'b@example.nl']): IncomingMessage {
  return { id, receivedAt: Date.now(), mailFrom: 'sender@example.nl', size: 100, origin: 'ingress', recipients: recipients.map((address) => ({ address })) };
}

const firstJob = (id: string) => ({ id: `process:${id}`, kind: 'process', payload: { messageId: id } });

/** Rows of a database, as the superuser (outside any backend). */
const rows = <R extends pg.QueryResultRow>(db: string, sql: string, params: unknown[] = []) => server.query<R>(sql, params, db);

async function counts(db: string, id: string): Promise<{ messages: number; recipients: number; jobs: number; events: number }> {
  const [row] = await rows<{ messages: number; recipients: number; jobs: number; events: number }>(
    db,
    `SELECT (SELECT count(*) FROM messages WHERE id = $1)::int AS messages,
            (SELECT count(*) FROM recipients WHERE message_id = $1)::int AS recipients,
            (SELECT count(*) FROM jobs WHERE id = $2)::int AS jobs,
            (SELECT count(*) FROM events WHERE message_id = $1)::int AS events`,
    [id, firstJob(id).id],
  );
  return row!;
}

/** Connections of one application name on the server. */
const connections = async (app: string) => (await server.query<{ n: number }>('SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name = $1', [app]))[0]!.n;

t.test('two nodes opening at once on one fresh database both open, and the schema is migrated once', async (t) => {
  const { url, name } = await freshDatabase();
  const [a, b] = await Promise.all([open(t, url, `${name}a`), open(t, url, `${name}b`)]);
  t.same(
    [a.schema.applied.length, b.schema.applied.length].sort((x, y) => x - y),
    [0, PG_MIGRATIONS.length],
    'one node applied every migration, the other found them applied',
  );
  t.equal(a.schema.version, PG_MIGRATIONS.length);
  t.equal(b.schema.version, PG_MIGRATIONS.length);
  t.same(
    (await rows<{ version: number }>(name, 'SELECT version FROM zegel_schema_migrations ORDER BY version')).map((r) => r.version),
    PG_MIGRATIONS.map((m) => m.version),
    'one row per version',
  );
  t.ok((await a.ping()) && (await b.ping()), 'both answer');
  // each is usable: one takes a message in, the other reads it
  await a.intake(message('m-open'), firstJob('m-open'));
  t.equal((await b.messages.get('m-open'))?.state, 'queued');
});

t.test('an open that fails (a newer schema) closes its pool and says why', async (t) => {
  const { url, name } = await freshDatabase();
  await rows(name, 'CREATE TABLE zegel_schema_migrations (version integer PRIMARY KEY, name text NOT NULL, checksum text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())');
  await rows(name, `INSERT INTO zegel_schema_migrations (version, name, checksum) VALUES (99, 'future', 'x')`);
  const err = await rejection(PgBackend.open(options(url, name)));
  t.ok(err instanceof ZegelError && err.code === 'ZEGEL_SCHEMA_NEWER', `refused: ${err.message}`);
  await waitFor(async () => (await connections(`zegel-test-${name}`)) === 0, 5_000, 'its connections to end');
  t.pass('no connection left');
  const gone = await rejection(PgBackend.open(options(server.urlFor(name).replace(`:${server.port}/`, ':1/'), `${name}x`)));
  t.ok(gone instanceof ZegelError && gone.code === 'ZEGEL_STORE_UNAVAILABLE', 'no server: ZEGEL_STORE_UNAVAILABLE');
});

t.test('intake commits the message, its recipients and its first job together; a failure at its last statement leaves none', async (t) => {
  const { url, name } = await freshDatabase();
  const backend = await open(t, url, name);
  await backend.intake(message('m-ok'), firstJob('m-ok'));
  t.same(await counts(name, 'm-ok'), { messages: 1, recipients: 2, jobs: 1, events: 1 }, 'all of it committed');
  t.same((await rows<{ type: string }>(name, "SELECT type FROM events WHERE message_id = 'm-ok'")).map((r) => r.type), ['received']);

  // the database refuses the `received` event of one message: the last statement of the intake
  await rows(
    name,
    `CREATE FUNCTION test_refuse_event() RETURNS trigger LANGUAGE plpgsql AS $$
     BEGIN IF NEW.message_id = 'm-refused' THEN RAISE EXCEPTION 'refused by the test'; END IF; RETURN NEW; END $$`,
  );
  await rows(name, 'CREATE TRIGGER zz_test_refuse BEFORE INSERT ON events FOR EACH ROW EXECUTE FUNCTION test_refuse_event()');
  const err = await rejection(backend.intake(message('m-refused'), firstJob('m-refused')));
  t.match(err.message, /refused by the test/, 'intake rejects');
  t.same(await counts(name, 'm-refused'), { messages: 0, recipients: 0, jobs: 0, events: 0 }, 'no message, recipient, job or event of it');
  t.same(await counts(name, 'm-ok'), { messages: 1, recipients: 2, jobs: 1, events: 1 }, 'the earlier one untouched');
  await rows(name, 'DROP TRIGGER zz_test_refuse ON events');
  await backend.intake(message('m-refused'), firstJob('m-refused'));
  t.same(await counts(name, 'm-refused'), { messages: 1, recipients: 2, jobs: 1, events: 1 }, 'the same message taken in again once the database accepts it');
});

t.test('intake asks for the audit chain lock only after its message, recipients and job are written', async (t) => {
  const { url, name } = await freshDatabase();
  const app = `zegel-test-${name}`;
  const backend = await open(t, url, name);
  // another node holds the chain lock (an append of its own, not yet committed)
  const holder = new pg.Client({ host: '127.0.0.1', port: server.port, user: 'postgres', password: server.password, database: name });
  await holder.connect();
  t.teardown(() => holder.end());
  await holder.query('BEGIN');
  await holder.query('SELECT pg_advisory_xact_lock($1, $2)', [...CHAIN_LOCK]);
  let done = false;
  const intake = backend.intake(message('m-order'), firstJob('m-order')).finally(() => (done = true));
  const [waiting] = await waitFor(
    () =>
      server.query<{ pid: number }>(
        `SELECT l.pid FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
         WHERE a.application_name = $1 AND l.locktype = 'advisory' AND NOT l.granted AND l.classid::bigint = $2 AND l.objid::bigint = $3`,
        [app, ...CHAIN_LOCK],
      ).then((r) => (r.length ? r : undefined)),
    10_000,
    'the intake to wait for the chain lock',
  );
  // read in the intake's database: regclass names only that database's relations
  const held = (await rows<{ rel: string }>(name, `SELECT relation::regclass::text AS rel FROM pg_locks WHERE pid = $1 AND locktype = 'relation' AND granted`, [waiting!.pid])).map((r) => r.rel);
  for (const table of ['jobs', 'messages', 'recipients']) t.ok(held.includes(table), `${table} written before the chain lock was asked for`);
  t.notOk(done, 'the intake waits for the other node’s commit');
  await holder.query('COMMIT');
  await intake;
  t.same(await counts(name, 'm-order'), { messages: 1, recipients: 2, jobs: 1, events: 1 });
});

t.test('a registered handler runs the intake’s job through BullMQ, and its outcome commits with the job’s end', async (t) => {
  const { url, name } = await freshDatabase();
  // the reconciler is slow here: only the poke after intake's commit can carry the job to BullMQ
  const backend = await open(t, url, name, { queue: { prefix: `z${name}`, reconcileMs: 60_000 } });
  const ran: string[] = [];
  backend.queue.work<{ messageId: string }>(
    'process',
    async (job) => {
      ran.push(job.id);
      const id = job.payload.messageId;
      const recipients = await backend.messages.recipients(id);
      return { status: 'done', record: (tx) => backend.messages.recordDecisions(tx, id, recipients.map((r) => ({ idx: r.idx, address: r.address, decision: 'deliver' as const, reason: 'test' }))) };
    },
    { concurrency: 2 },
  );
  const began = Date.now();
  await backend.intake(message('m-run'), firstJob('m-run'));
  await waitFor(async () => (await backend.queue.get(firstJob('m-run').id)) === undefined, 10_000, 'the job to end');
  const ms = Date.now() - began;
  t.same(ran, ['process:m-run'], 'the handler ran once');
  t.equal((await backend.messages.get('m-run'))?.state, 'processed', 'the handler’s rows committed');
  t.same((await backend.messages.recipients('m-run')).map((r) => r.decision), ['deliver', 'deliver']);
  t.same((await backend.events.forMessage('m-run')).map((e) => e.type), ['received', 'decided', 'decided'], 'its events chained after the received one');
  t.comment(`intake to job outcome committed: ${ms} ms`);
});

t.test('ping: true, false while PostgreSQL is stopped (without throwing), true again once it runs', async (t) => {
  const { url, name } = await freshDatabase();
  const backend = await open(t, url, name);
  t.equal(await backend.ping(), true, 'answers');
  await server.stop();
  let restarted = false;
  t.teardown(async () => {
    if (!restarted) await server.start();
  });
  const began = Date.now();
  t.equal(await backend.ping(), false, 'stopped: false');
  t.equal(await backend.ping(), false, 'and again');
  const downMs = Date.now() - began;
  await server.start();
  restarted = true;
  const back = Date.now();
  await waitFor(() => backend.ping(), 10_000, 'ping to say true again');
  t.comment(`two pings while stopped: ${downMs} ms; true again ${Date.now() - back} ms after the start`);
  await backend.intake(message('m-after'), firstJob('m-after'));
  t.same(await counts(name, 'm-after'), { messages: 1, recipients: 2, jobs: 1, events: 1 }, 'writes again');
  await backend.close();
  t.equal(await backend.ping(), false, 'closed: false');
});

t.test('close releases everything: a process that opened, took in a message, ran its job and closed exits by itself', async (t) => {
  const { url, name } = await freshDatabase();
  const ts = import.meta.url.endsWith('.ts');
  const module = (path: string) => new URL(path, import.meta.url).href;
  const config = {
    backend: module('../src/store/pg/backend.js'),
    key: module('../src/crypto/storage-key.js'),
    url,
    passwordFile: server.passwordFile,
    redisUrl: redis.url,
    prefix: `z${name}`,
    app: `zegel-test-${name}`,
  };
  const code = `
    const c = JSON.parse(process.env.ZEGEL_TEST_CHILD);
    const { PgBackend } = await import(c.backend);
    const { StorageKey } = await import(c.key);
    const { randomBytes } = await import('node:crypto');
    const { pino } = await import('pino');
    const backend = await PgBackend.open({ url: c.url, passwordFile: c.passwordFile, storageKey: new StorageKey(randomBytes(32)), redisUrl: c.redisUrl,
      clock: { now: () => Date.now() }, log: pino({ level: 'silent' }), applicationName: c.app, queue: { prefix: c.prefix } });
    let ran = false;
    backend.queue.work('process', async () => { ran = true; return { status: 'done' }; }, { concurrency: 1 });
    await backend.intake({ id: 'm-child', receivedAt: Date.now(), mailFrom: '', size: 1, origin: 'ingress', recipients: [{ address: 'a@example.nl' }] },
      { id: 'process:m-child', kind: 'process', payload: null });
    while (!ran || (await backend.queue.get('process:m-child'))) await new Promise((r) => setTimeout(r, 20));
    await backend.close();
    process.stdout.write('closed\\n');
    // printed only if something still keeps the process alive (the timer itself does not)
    setTimeout(() => process.stderr.write('still open: ' + JSON.stringify(process.getActiveResourcesInfo()) + '\\n'), 3000).unref();
  `;
  const child = spawn(process.execPath, [...(ts ? ['--import', 'tsx'] : []), '--input-type=module', '-e', code], {
    cwd: repoRoot,
    env: { ...cleanEnv(), ZEGEL_TEST_CHILD: JSON.stringify(config) },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout.on('data', (d) => (output += d));
  child.stderr.on('data', (d) => (output += d));
  const exited = new Promise<number | string>((resolve) => child.on('exit', (code, signal) => resolve(code ?? signal ?? -1)));
  t.teardown(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    return exited;
  });
  await waitFor(() => output.includes('closed') || child.exitCode !== null, 20_000, 'the child to close its backend');
  t.ok(output.includes('closed'), `the child closed its backend${output.includes('closed') ? '' : `:\n${output}`}`);
  const closedAt = Date.now();
  await waitFor(() => child.exitCode !== null || child.signalCode !== null || output.includes('still open'), 5_000, 'the child to exit').catch(() => undefined);
  t.equal(child.exitCode, 0, `it exited by itself${output.includes('still open') ? `, but: ${output}` : ''}`);
  t.comment(`exit ${Date.now() - closedAt} ms after close resolved`);
  t.same(await counts(name, 'm-child'), { messages: 1, recipients: 1, jobs: 0, events: 1 }, 'its message committed and its job ran');
  await waitFor(async () => (await connections(config.app)) === 0, 5_000, 'its connections to end');
  t.pass('no connection of it left on the server');
});
