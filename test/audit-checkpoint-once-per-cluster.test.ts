import { spawn } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { pino } from 'pino';
import t from 'tap';
import { AuditCheckpointWorker } from '../src/audit/checkpoint-job.js';
import { soleLeader, type PeriodicLeader } from '../src/audit/leader.js';
import { systemClock } from '../src/clock.js';
import { PgAuditTrail } from '../src/store/pg/audit.js';
import { openPgPool, type PgPool } from '../src/store/pg/connect.js';
import { PgEventLog } from '../src/store/pg/events.js';
import { PgTransactor } from '../src/store/pg/tx.js';
import { cleanEnv } from './helpers/child-relay.js';
import { migratedDatabase } from './helpers/pg-database.js';
import { pgAuditWorker } from './helpers/pg-audit-worker.js';
import { repoRoot } from './helpers/repo-root.js';
import { tempDir, waitFor } from './helpers/relay.js';

/*
 * Periodic work once per cluster (docs/cluster.md): three nodes, each with
 * its own pool and its own AuditCheckpointWorker on one PostgreSQL database,
 * sign one checkpoint per interval between them, not three; when the leading
 * node is killed (SIGKILL, a process of its own) another takes over within
 * an interval, and when that one stops the last one does. The control at the
 * end runs the same three workers without the leader guard and sees about
 * three checkpoints per interval, so the counts above do measure the guard.
 * A writer appends a record every 30 ms, so every interval has a new head to sign.
 */
const INTERVAL = 300;
const db = await migratedDatabase(t, 'audit_leader');
const log = pino({ level: process.env.ZEGEL_TEST_LOG ?? 'silent' });
const keyDir = tempDir(t, 'zegel-audit-leader-');
const keyFile = path.join(keyDir, 'audit-signing.pem');
const { privateKey, publicKey } = crypto.generateKeyPairSync('ed25519');
fs.writeFileSync(keyFile, privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600 });

const writer = new PgEventLog(db.pool, systemClock);
const writerTx = new PgTransactor(db.pool);
let writing = true;
const written = (async () => {
  while (writing) {
    // a failed append (the server restarting, below) is simply not there
    await writerTx.transaction((tx) => writer.append(tx, { messageId: null, type: 'rules-reloaded', detail: { rules: 1 } })).catch(() => undefined);
    await new Promise((resolve) => setTimeout(resolve, 30));
  }
})();
t.teardown(async () => {
  writing = false;
  await written;
});

interface Node {
  name: string;
  pool: PgPool;
  leader: PeriodicLeader & { leading?: boolean };
  worker: AuditCheckpointWorker;
}

async function node(name: string, guarded = true): Promise<Node> {
  const pool = await openPgPool({ url: db.url, passwordFile: db.server.passwordFile, applicationName: name });
  const { worker, leader } = pgAuditWorker(pool, { signingKeyFile: keyFile, intervalMs: INTERVAL, retentionMs: 365 * 86400e3, log, ...(guarded ? {} : { leader: soleLeader }) });
  const n = { name, pool, leader, worker };
  t.teardown(() => stopNode(n));
  return n;
}

async function stopNode(n: Node): Promise<void> {
  n.worker.stop();
  await n.pool.close();
}

/** Checkpoint times (ms) signed in [from, to). */
async function checkpointsBetween(from: number, to: number): Promise<number[]> {
  const rows = await db.pool.query<{ at: number }>('SELECT at FROM audit_checkpoints WHERE at >= $1 AND at < $2 ORDER BY at', [from, to]);
  return rows.rows.map((r) => r.at);
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const gaps = (ats: number[]): number[] => ats.slice(1).map((at, i) => at - ats[i]!);

/**
 * Lets the nodes run `intervals` intervals and returns the checkpoints signed
 * meanwhile. A window of n intervals holds n + 1 ticks at most, and a
 * checkpoint's time jitters with its queries (and a timer of a loaded machine
 * fires late, then on time: two checkpoints of one node can fall close
 * together), so counts are checked to ±2 and the sharp check is which nodes
 * signed: one; without the guard three nodes sign about 3n.
 */
async function observe(intervals: number): Promise<{ ats: number[]; elapsed: number }> {
  const from = Date.now();
  await sleep(intervals * INTERVAL);
  const to = Date.now();
  return { ats: await checkpointsBetween(from, to), elapsed: to - from };
}

t.test('three nodes: one checkpoint per interval; the killed leader is replaced, then the stopped one', async (t) => {
  // node C first, in a process of its own, so that it leads and can be killed as a node dies
  const child = spawn(process.execPath, [path.join(repoRoot, 'dist/test/helpers/audit-node.js'), db.url, db.server.passwordFile, keyFile, String(INTERVAL)], {
    env: cleanEnv(),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout.on('data', (d) => (out += d));
  child.stderr.on('data', (d) => (out += d));
  const exited = new Promise((resolve) => child.once('exit', resolve));
  t.teardown(async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    await exited;
  });
  await waitFor(() => out.includes('leading'), 15_000, `node C to lead (${out})`);
  const a = await node('node-a');
  const b = await node('node-b');
  a.worker.start();
  b.worker.start();

  const first = await observe(8);
  const expected = first.elapsed / INTERVAL;
  t.ok(first.ats.length >= expected - 2 && first.ats.length <= expected + 2, `about one checkpoint per interval: ${first.ats.length} in ${first.elapsed} ms (${expected.toFixed(1)} intervals)`);
  t.same([a.worker.stats.led, b.worker.stats.led], [0, 0], 'A and B only asked');
  t.ok(a.worker.stats.skipped >= 6 && b.worker.stats.skipped >= 6, 'and asked every interval');

  // C dies: its session ends with its sockets, and the lock with it
  const killedAt = Date.now();
  child.kill('SIGKILL');
  await exited;
  const successor = await waitFor(() => (a.leader.leading ? a : b.leader.leading ? b : undefined), 5 * INTERVAL, 'A or B to take the lead');
  const takeover = Date.now() - killedAt;
  t.ok(takeover <= 2 * INTERVAL + 200, `${successor.name} leads ${takeover} ms after C was killed`);
  const other = successor === a ? b : a;

  const second = await observe(6);
  t.ok(second.ats.length >= second.elapsed / INTERVAL - 2 && second.ats.length <= second.elapsed / INTERVAL + 2, `after the takeover still one per interval: ${second.ats.length} in ${second.elapsed} ms`);
  t.equal(other.worker.stats.led, 0, `${other.name} still only asks`);

  // the successor stops (gives the lead up) and its pool closes: the last node leads
  const stoppedAt = Date.now();
  await stopNode(successor);
  await waitFor(() => other.leader.leading, 5 * INTERVAL, `${other.name} to take the lead`);
  t.ok(Date.now() - stoppedAt <= 2 * INTERVAL + 200, `${other.name} leads ${Date.now() - stoppedAt} ms after ${successor.name} stopped`);
  const third = await observe(4);
  t.ok(third.ats.length >= third.elapsed / INTERVAL - 2, `the last node signs on its own: ${third.ats.length} in ${third.elapsed} ms`);

  const verified = await new PgAuditTrail(db.pool, new PgTransactor(db.pool), writer).verify(publicKey);
  t.ok(verified.ok, `the chain verifies with every checkpoint (${verified.ok ? verified.checkpoints : verified.problem})`);
  await stopNode(other);
});

t.test('PostgreSQL killed and started again: one node leads again, still one checkpoint per interval', async (t) => {
  const nodes = await Promise.all(['pg-a', 'pg-b', 'pg-c'].map((name) => node(name)));
  for (const n of nodes) n.worker.start();
  await waitFor(() => nodes.some((n) => n.leader.leading), 5 * INTERVAL, 'a node to lead');
  await db.server.kill();
  await db.server.start();
  const upAt = Date.now();
  // the old leader finds its connection broken at its next run; whoever asks first then leads
  await waitFor(async () => (await checkpointsBetween(upAt, Date.now() + 1)).length > 0, 10_000, 'a checkpoint after the restart');
  t.ok(Date.now() - upAt <= 3 * INTERVAL + 1_000, `signing again ${Date.now() - upAt} ms after the server was back`);
  const ledBefore = nodes.map((n) => n.worker.stats.led);
  const run = await observe(6);
  const signers = nodes.filter((n, i) => n.worker.stats.led > ledBefore[i]!).map((n) => n.name);
  t.ok(run.ats.length >= run.elapsed / INTERVAL - 2 && run.ats.length <= run.elapsed / INTERVAL + 2, `${run.ats.length} checkpoints in ${(run.elapsed / INTERVAL).toFixed(1)} intervals`);
  t.equal(signers.length, 1, `one node signed in that time (${signers.join(', ')})`);
  t.equal(nodes.filter((n) => n.leader.leading).length, 1, 'one node leads');
  for (const n of nodes) await stopNode(n);
});

t.test('control: the same three workers without the guard sign about three per interval', async (t) => {
  const nodes = await Promise.all(['free-a', 'free-b', 'free-c'].map((name) => node(name, false)));
  for (const [i, n] of nodes.entries()) setTimeout(() => n.worker.start(), (i * INTERVAL) / 3);
  await sleep(INTERVAL);
  const ledBefore = nodes.map((n) => n.worker.stats.led);
  const run = await observe(6);
  const signers = nodes.filter((n, i) => n.worker.stats.led > ledBefore[i]!).map((n) => n.name);
  t.ok(run.ats.length >= 2 * (run.elapsed / INTERVAL), `${run.ats.length} checkpoints in ${(run.elapsed / INTERVAL).toFixed(1)} intervals`);
  t.ok(Math.min(...gaps(run.ats)) < INTERVAL * 0.6, 'several in one interval');
  t.equal(signers.length, 3, 'every node signed');
  for (const n of nodes) await stopNode(n);
});
