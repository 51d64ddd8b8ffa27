#!/usr/bin/env node
// Cluster benchmark (issue 17, "Measured"): plain mail through 1, 2 and 3
// cluster nodes (`zegel start --role all`, PostgreSQL store, BullMQ/Redis
// queue) against the direct smtp-source → smtp-sink baseline, the embedded
// default (one process, SQLite) and a private Postfix, all in one run; the
// PostgreSQL statements and Redis commands each message costs; and the kill
// tests at the same size (kill -9 one of three nodes at a third of the load;
// Redis killed and restarted empty at a third of the load).
//
// Run with `npm run bench:cluster` (it builds first; run it as root for the
// Postfix path). Everything runs on 127.0.0.1. The load, the sinks, the
// embedded and Postfix paths are bench/relay.mjs's (imported); the private
// PostgreSQL, redis-server, keys and node configurations are the tests' own
// (dist/test/helpers/cluster.js, as test/cluster-*.test.ts start them).
// Results go to stdout and into bench/README.md (between the cluster-results
// markers; newest run first).
//
// Knobs (environment):
//   BENCH_MESSAGES   messages per run (default 3000)
//   BENCH_SESSIONS   parallel SMTP sessions in all (default 20; split over the nodes)
//   BENCH_NODES      cluster sizes, comma list (default 1,2,3)
//   BENCH_ONLY       comma list of direct,embedded,postfix,cluster,kill-node,kill-redis (default: all)
//   BENCH_LOG_LEVEL  log.level of every relay (default info)
//   BENCH_NO_README  1: print only
process.env.BENCH_MESSAGES ||= '3000';

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { backgroundCores, commitLabel, fmt, intEnv, machineCpuSeconds, processCpuSeconds, runMain, teardownScopes } from './common.mjs';
import { writeResults } from './results.mjs';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const README = path.join(root, 'bench', 'README.md');
const helpers = path.join(root, 'dist', 'test', 'helpers');
if (!fs.existsSync(path.join(helpers, 'cluster.js'))) {
  process.stderr.write('[bench] dist/ is missing: run `npm run build` (npm run bench:cluster does)\n');
  process.exit(1);
}
const relay = await import('./relay.mjs');
const { startCluster, submit, receivedTags } = await import(path.join(helpers, 'cluster.js'));
const { default: Redis } = await import('ioredis');

const MESSAGES = intEnv('BENCH_MESSAGES', 3000, 1);
const SESSIONS = intEnv('BENCH_SESSIONS', 20, 1);
const NODES = (process.env.BENCH_NODES || '1,2,3').split(',').map((s) => Number(s.trim()));
const ONLY = new Set((process.env.BENCH_ONLY || 'direct,embedded,postfix,cluster,kill-node,kill-redis').split(',').map((s) => s.trim()));
const LOG_LEVEL = process.env.BENCH_LOG_LEVEL || 'info';
const IS_ROOT = process.getuid?.() === 0;
const DELIVERY_TIMEOUT_MS = 10 * 60_000;
const { log } = relay;

// ---------------------------------------------------------------- a cluster's lifetime

/**
 * The cluster helper registers its clean-up with a test's `t.teardown`; here
 * a scope collects them and runs them last-in first-out (nodes, then the
 * servers, then the temp dir). Every open scope is closed by cleanup().
 */
const { open: openScope, closeAll: closeScopes } = teardownScopes(log);

/**
 * A cluster with `pg_stat_statements` loaded (a server restart, before any
 * node connects) and `n` nodes of role `all`. The extension counts every
 * statement a node sends, BEGIN and COMMIT included (track_utility is on by
 * default); node-postgres sends one statement per round trip, so its calls
 * are the round trips.
 */
async function startMeasuredCluster(scope, n, config) {
  const cluster = await startCluster(scope.t, { config });
  await cluster.pg.query("ALTER SYSTEM SET shared_preload_libraries = 'pg_stat_statements'");
  await cluster.pg.stop();
  await cluster.pg.start();
  await cluster.query('CREATE EXTENSION IF NOT EXISTS pg_stat_statements');
  for (let i = 1; i <= n; i++) await cluster.startNode(`node${i}`);
  const redis = new Redis(cluster.redis.url, { lazyConnect: true, maxRetriesPerRequest: 1, retryStrategy: () => 200 });
  await redis.connect();
  scope.t.teardown(() => redis.disconnect());
  return { cluster, redis };
}

/** PostgreSQL: statements and transactions of the cluster's database so far (pg_stat_statements). */
async function pgCounters(cluster) {
  const rows = await cluster.query(
    `SELECT s.query, s.calls::bigint AS calls FROM pg_stat_statements s JOIN pg_database d ON d.oid = s.dbid WHERE d.datname = current_database()`,
  );
  const byQuery = new Map();
  let statements = 0;
  let commits = 0;
  for (const row of rows) {
    const calls = Number(row.calls);
    // our own reads of the counters are not the relay's
    if (/pg_stat_statements/.test(row.query)) continue;
    statements += calls;
    if (/^\s*(COMMIT|ROLLBACK)\b/i.test(row.query)) commits += calls;
    byQuery.set(row.query, (byQuery.get(row.query) ?? 0) + calls);
  }
  return { statements, commits, byQuery };
}

/** Redis: calls per command so far (INFO commandstats) and the server's own CPU seconds (INFO cpu). */
async function redisCounters(redis) {
  const stats = await redis.info('commandstats');
  const byCommand = new Map();
  for (const m of stats.matchAll(/^cmdstat_([^:]+):calls=(\d+)/gm)) {
    if (m[1] === 'info') continue; // ours
    byCommand.set(m[1], Number(m[2]));
  }
  const cpu = await redis.info('cpu');
  const num = (key) => Number(new RegExp(`^${key}:([\\d.]+)`, 'm').exec(cpu)?.[1] ?? NaN);
  return { byCommand, calls: [...byCommand.values()].reduce((a, b) => a + b, 0), cpu: num('used_cpu_user') + num('used_cpu_sys') };
}

/** CPU seconds of the PostgreSQL server: the postmaster and every process it started (backends, walwriter, …). */
function pgCpuSeconds(cluster) {
  const postmaster = Number(fs.readFileSync(path.join(cluster.pg.dataDir, 'postmaster.pid'), 'utf8').split('\n')[0]);
  let total = processCpuSeconds(postmaster);
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = fs.readFileSync(`/proc/${entry}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid === postmaster) total += processCpuSeconds(Number(entry)) || 0;
    } catch {
      // gone in between
    }
  }
  return total;
}

/** Every counter the report divides by messages, at one moment. */
async function snapshot(cluster, redis) {
  return {
    pg: await pgCounters(cluster),
    redis: await redisCounters(redis),
    pgCpu: pgCpuSeconds(cluster),
    nodeCpu: cluster.nodes.map((node) => processCpuSeconds(node.child.pid)),
  };
}

function difference(map1, map0) {
  const out = new Map();
  for (const [key, value] of map1) {
    const d = value - (map0.get(key) ?? 0);
    if (d > 0) out.set(key, d);
  }
  return out;
}

// ---------------------------------------------------------------- throughput

/**
 * N nodes, a fresh PostgreSQL, Redis and smtp-sink: smtp-source's sessions
 * spread over the nodes' SMTP ports (relay.mjs `measure` with a list of
 * ports), delivered = the sink's count. The counters are read just before
 * smtp-source starts and as soon as the sink has counted the last message.
 */
async function runCluster(n) {
  const scope = openScope();
  const sink = await relay.startSink(`smtp-sink (cluster of ${n})`);
  try {
    const { cluster, redis } = await startMeasuredCluster(scope, n, {
      organisation: { domains: ['org.test'] },
      smtp: { hostname: 'zegel.bench.test' },
      delivery: { target: `smtp://127.0.0.1:${sink.port}`, concurrency: 20 },
      log: { level: LOG_LEVEL },
    });
    const before = await snapshot(cluster, redis);
    const result = await relay.measure(`cluster of ${n}`, cluster.nodes.map((node) => node.smtpPort), sink);
    const after = await snapshot(cluster, redis);
    result.nodes = n;
    result.nodeCpu = after.nodeCpu.map((cpu, i) => cpu - before.nodeCpu[i]);
    result.processCpu = result.nodeCpu.reduce((a, b) => a + b, 0);
    result.pgCpu = after.pgCpu - before.pgCpu;
    result.redisCpu = after.redis.cpu - before.redis.cpu;
    result.pgStatements = after.pg.statements - before.pg.statements;
    result.pgCommits = after.pg.commits - before.pg.commits;
    result.pgTop = [...difference(after.pg.byQuery, before.pg.byQuery)].sort((a, b) => b[1] - a[1]).slice(0, 6);
    result.redisCalls = after.redis.calls - before.redis.calls;
    result.redisByCommand = [...difference(after.redis.byCommand, before.redis.byCommand)].sort((a, b) => b[1] - a[1]);
    log(
      `cluster of ${n}: per message ${(result.pgStatements / MESSAGES).toFixed(1)} PostgreSQL statements (${(result.pgCommits / MESSAGES).toFixed(1)} commits), ` +
        `${(result.redisCalls / MESSAGES).toFixed(1)} Redis calls; CPU per message: nodes ${relay.msPer(result.processCpu)} ms, PostgreSQL ${relay.msPer(result.pgCpu)} ms, Redis ${relay.msPer(result.redisCpu)} ms`,
    );
    return result;
  } finally {
    await scope.close();
    await sink.stop();
  }
}

// ---------------------------------------------------------------- kill tests

/**
 * The kill tests' load: MESSAGES plain messages, each with its own
 * X-Test-Tag, SESSIONS at a time, round robin over the nodes, one connection
 * per message (the cluster helper's `submit`). A message that does not get
 * its 250 is offered to the next node, up to five times, as a sending mail
 * server behind a load balancer would; `onProgress(sent)` runs after each
 * submission, so a fault can be injected at a point of the load.
 */
async function submitAll(nodes, onProgress) {
  const accepted = new Set();
  let refusals = 0;
  let given = 0;
  let next = 0;
  let rr = 0;
  const worker = async () => {
    for (;;) {
      const i = next++;
      if (i >= MESSAGES) return;
      const tag = `m${i}`;
      for (let attempt = 0; attempt < 5; attempt++) {
        const node = nodes[rr++ % nodes.length];
        const result = await submit(node, tag);
        if (result.code === 250) {
          accepted.add(tag);
          break;
        }
        refusals++;
      }
      if (!accepted.has(tag)) given++;
      await onProgress(i + 1);
    }
  };
  await Promise.all(Array.from({ length: SESSIONS }, worker));
  return { accepted, refusals, given };
}

/** Resolves when every accepted tag reached the sink (or the timeout passed); then the counts. */
async function countDeliveries(cluster, accepted, timeoutMs = DELIVERY_TIMEOUT_MS) {
  const deadline = Date.now() + timeoutMs;
  let seen = receivedTags(cluster.sink);
  while ([...accepted].some((tag) => !seen.has(tag)) && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 500));
    seen = receivedTags(cluster.sink);
  }
  const doneAt = performance.now();
  const lost = [...accepted].filter((tag) => !seen.has(tag)).length;
  const duplicates = [...seen.values()].reduce((sum, count) => sum + count - 1, 0);
  const delivered = [...seen.keys()].filter((tag) => accepted.has(tag)).length;
  // a message whose 250 was lost with its node may still be delivered: committed before the reply
  const unacknowledgedDelivered = [...seen.keys()].filter((tag) => !accepted.has(tag)).length;
  return { doneAt, lost, duplicates, delivered, unacknowledgedDelivered };
}

/** One kill test: three nodes, `fault(cluster)` at a third of the submissions. */
async function runKill(name, fault) {
  const scope = openScope();
  try {
    const { cluster } = await startMeasuredCluster(scope, 3, { delivery: { concurrency: 20 }, log: { level: LOG_LEVEL } });
    const background = await backgroundCores();
    const cpu0 = machineCpuSeconds();
    const started = performance.now();
    let faultAt;
    let faulted;
    const submitted = await submitAll(cluster.nodes, async (sent) => {
      if (sent === Math.floor(MESSAGES / 3) && !faulted) {
        faultAt = performance.now();
        log(`${name}: ${sent} of ${MESSAGES} submitted: ${name === 'kill-node' ? 'kill -9 node2' : 'kill -9 redis-server, start it again empty'}`);
        faulted = fault(cluster);
        await faulted;
      }
    });
    const acceptedAt = performance.now();
    log(`${name}: ${submitted.accepted.size} accepted, ${submitted.refusals} refused attempts, ${submitted.given} given up after 5 tries; waiting for the sink`);
    const counts = await countDeliveries(cluster, submitted.accepted);
    const cpu1 = machineCpuSeconds();
    const result = {
      name,
      background,
      accepted: submitted.accepted.size,
      refusals: submitted.refusals,
      given: submitted.given,
      ...counts,
      acceptSec: (acceptedAt - started) / 1000,
      deliverSec: (counts.doneAt - started) / 1000,
      faultSec: faultAt ? (faultAt - started) / 1000 : NaN,
      cores: (cpu1 - cpu0) / ((counts.doneAt - started) / 1000),
    };
    log(
      `${name}: accepted ${result.accepted}, delivered ${result.delivered}, lost ${result.lost}, duplicates ${result.duplicates}, ` +
        `delivered without a 250 ${result.unacknowledgedDelivered}; all at the sink ${result.deliverSec.toFixed(1)} s after the first submission`,
    );
    return result;
  } finally {
    await scope.close();
  }
}

const killNode = (cluster) => cluster.nodes[1].kill();
const killRedis = async (cluster) => {
  await cluster.redis.kill();
  await cluster.redis.start();
};

// ---------------------------------------------------------------- report

const per = (n) => fmt(n / MESSAGES, 1);

function report(results, m) {
  const { direct, embedded, postfix, clusters, kills } = results;
  const lines = [`### Run of ${m.date}`, ''];
  lines.push(
    `Machine: ${m.nproc} cores (${m.model}), ${m.memGiB} GiB RAM, Linux ${m.kernel}; Node ${m.node}; Postfix ${m.postfix}; temp dirs on ${m.tmp}. Commit ${m.commit}.`,
    `Load: ${MESSAGES} plain messages (smtp-source -l 2048, no sensitive content), ${SESSIONS} sessions in all, one message per connection; log.level ${LOG_LEVEL}; every relay with delivery.concurrency 20. ` +
      'A cluster of N: N nodes (`zegel start --role all`) on one private PostgreSQL and one redis-server, the sessions split evenly over the nodes\' SMTP ports (one smtp-source per node).',
    '',
    '| path | accepted msg/s | delivered msg/s | delivered / direct | per-node efficiency¹ | busy cores² | relay CPU per msg³ | PostgreSQL CPU per msg | Redis CPU per msg |',
    '|---|---:|---:|---:|---:|---:|---:|---:|---:|',
  );
  const one = clusters.find((c) => c.nodes === 1);
  const row = (name, r, extra = {}) =>
    r
      ? `| ${name} | ${fmt(r.accepted)} | ${fmt(r.delivered)} | ${direct ? `${(r.delivered / direct.delivered).toFixed(2)}×` : 'n/a'} | ${extra.efficiency ?? ''} | ${fmt(r.cores, 2)} | ${Number.isFinite(r.processCpu) ? `${relay.msPer(r.processCpu)} ms` : '—'} | ${r.pgCpu !== undefined ? `${relay.msPer(r.pgCpu)} ms` : '—'} | ${r.redisCpu !== undefined ? `${relay.msPer(r.redisCpu)} ms` : '—'} |`
      : `| ${name} | not run | | | | | | | |`;
  lines.push(row('direct (smtp-source → smtp-sink)', direct), row('embedded default (1 process, SQLite)', embedded), row('Postfix', postfix));
  for (const c of clusters) {
    const efficiency = one ? (c.delivered / c.nodes / one.delivered).toFixed(2) : 'n/a';
    lines.push(row(`cluster of ${c.nodes}`, c, { efficiency }));
  }
  lines.push(
    '',
    `¹ (delivered msg/s of N nodes / N) / delivered msg/s of 1 node. ² machine-wide busy CPU (of ${m.nproc}) over the run, load generator, sink, PostgreSQL and Redis included. ` +
      '³ CPU seconds of the relay process(es) / messages (all nodes together).',
    '',
  );
  if (clusters.length) {
    lines.push('| round trips per message | ' + clusters.map((c) => `cluster of ${c.nodes}`).join(' | ') + ' |', '|---|' + clusters.map(() => '---:').join('|') + '|');
    lines.push('| PostgreSQL statements (pg_stat_statements calls, BEGIN/COMMIT included) | ' + clusters.map((c) => per(c.pgStatements)).join(' | ') + ' |');
    lines.push('| of which COMMIT/ROLLBACK (transactions) | ' + clusters.map((c) => per(c.pgCommits)).join(' | ') + ' |');
    lines.push('| Redis commands (INFO commandstats calls, commands inside Lua scripts included) | ' + clusters.map((c) => per(c.redisCalls)).join(' | ') + ' |');
    lines.push('| of which script calls (EVALSHA/EVAL) | ' + clusters.map((c) => per((c.redisByCommand.find(([k]) => k === 'evalsha')?.[1] ?? 0) + (c.redisByCommand.find(([k]) => k === 'eval')?.[1] ?? 0))).join(' | ') + ' |', '');
    const last = clusters[clusters.length - 1];
    lines.push(
      `Most frequent statements (cluster of ${last.nodes}, calls per message): ` +
        last.pgTop.map(([q, calls]) => `\`${q.replace(/\s+/g, ' ').replace(/`/g, "'").slice(0, 90)}\` ${per(calls)}`).join('; ') +
        '.',
      '',
      `Redis commands (cluster of ${last.nodes}, calls per message): ` + last.redisByCommand.slice(0, 12).map(([k, v]) => `${k} ${per(v)}`).join(', ') + '.',
      '',
    );
  }
  if (kills.length) {
    lines.push(
      `Kill tests: 3 nodes, ${MESSAGES} plain messages submitted ${SESSIONS} at a time (one connection each, round robin; a message refused or cut off is offered to the next node, up to 5 tries), the fault at a third of the submissions; the sink is the tests' (it records each message's X-Test-Tag).`,
      '',
      '| fault | accepted (250) | refused attempts | given up | delivered | **lost** | duplicates | delivered without a 250 | fault at | all delivered after |',
      '|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
    );
    for (const k of kills) {
      const what = k.name === 'kill-node' ? '`kill -9` one node, never restarted' : 'redis-server `kill -9`, restarted empty';
      lines.push(
        `| ${what} | ${k.accepted} | ${k.refusals} | ${k.given} | ${k.delivered} | **${k.lost}** | ${k.duplicates} | ${k.unacknowledgedDelivered} | ${fmt(k.faultSec, 1)} s | ${fmt(k.deliverSec, 1)} s |`,
      );
    }
    lines.push('');
  }
  const bg = [['direct', direct], ['embedded', embedded], ['postfix', postfix], ...clusters.map((c) => [`cluster of ${c.nodes}`, c]), ...kills.map((k) => [k.name, k])].filter(([, r]) => r);
  if (bg.length) {
    const busy = bg.some(([, r]) => r.background > 0.25);
    lines.push(
      `- ${busy ? '**Other processes were busy: the absolute figures are low; compare within the run.** ' : ''}Busy cores in the second before each run (nothing of ours running): ${bg.map(([n, r]) => `${n} ${fmt(r.background, 2)}`).join(', ')}.`,
      '',
    );
  }
  return lines.join('\n');
}

const MARKERS = { start: '<!-- cluster-results:start (bench/cluster.mjs writes below; newest run first) -->', end: '<!-- cluster-results:end -->', heading: '## Cluster results' };

// ---------------------------------------------------------------- main

let tmpRoot;
async function cleanup() {
  await closeScopes();
  await relay.cleanup();
  if (tmpRoot) fs.rmSync(tmpRoot, { recursive: true, force: true, maxRetries: 3 });
}

async function main() {
  tmpRoot = fs.mkdtempSync(path.join(os.tmpdir(), 'zegel-bench-cluster-'));
  relay.setTmpRoot(tmpRoot);
  const m = { ...relay.runMachine(), commit: commitLabel(root, ['src', 'bench/relay.mjs', 'bench/cluster.mjs', 'bench/common.mjs']) };
  log(`${m.date}; ${m.nproc} cores; Node ${m.node}; ${MESSAGES} messages; temp ${tmpRoot}`);
  const results = { clusters: [], kills: [] };
  if (ONLY.has('direct')) results.direct = await relay.runDirect();
  if (ONLY.has('embedded')) results.embedded = await relay.runZegel();
  if (ONLY.has('postfix')) {
    if (IS_ROOT) results.postfix = await relay.runPostfix();
    else log('postfix: skipped (a private Postfix master must be started by root)');
  }
  if (ONLY.has('cluster')) for (const n of NODES) results.clusters.push(await runCluster(n));
  if (ONLY.has('kill-node')) results.kills.push(await runKill('kill-node', killNode));
  if (ONLY.has('kill-redis')) results.kills.push(await runKill('kill-redis', killRedis));
  const section = report(results, m);
  process.stdout.write(`\n${section}\n`);
  if (process.env.BENCH_NO_README !== '1') {
    writeResults(README, MARKERS, section);
    log(`results written to ${path.relative(process.cwd(), README) || README}`);
  }
  const lost = results.kills.reduce((sum, k) => sum + k.lost, 0);
  if (lost) {
    log(`${lost} accepted messages lost in the kill tests`);
    process.exitCode = 2;
  }
}

await runMain(main, cleanup, log);
