#!/usr/bin/env node
// MX delivery benchmark (issue 18, "Measured"): one relay (`node bin/zegel
// start`, a fresh process and data directory per path) delivering the same
// load to 20 recipient domains
//   - through one smarthost (`delivery.target: smtp://127.0.30.200:PORT`, one
//     TLS sink with a test-CA certificate for that IP, policy verify): the baseline;
//   - via `mx` (`delivery.target: mx`, `delivery.mx.dnsServers` at an
//     in-process dns2 server, each domain's one MX its own TLS sink on
//     127.0.30.N, a certificate of the test CA for the MX name, policy verify),
//     no MTA-STS policy published (the TXT lookup still happens per message);
//   - via `mx` with an MTA-STS policy (enforce, listing the domain's MX)
//     published for all 20 domains (HTTPS fixture on 127.0.30.250:443);
// and the cost of one `MtaSts.lookup` with an empty cache (cold: TXT, A,
// HTTPS fetch) and with the policy cached (warm: TXT only).
//
// Run with `npm run bench:mx` (it builds first; root is needed for port 443).
// Everything runs on loopback (127.0.0.1 and 127.0.30.0/24). The DNS server,
// test CA, TLS sinks and MTA-STS server are the tests' own fixtures
// (dist/test/helpers/{dns-server,test-pki,tls-sink,mta-sts-server,mx-world}.js)
// and run in this process; the load is Postfix's smtp-source (one per domain,
// one session each, so 20 sessions in all). Results go to stdout and into
// bench/README.md (between the mx-results markers; newest run first).
//
// Knobs (environment):
//   BENCH_MESSAGES   messages per path (default 2000; rounded down to a multiple of 20)
//   BENCH_SIZE       smtp-source payload bytes per message (default 2048)
//   BENCH_STS_ROUNDS rounds of the MTA-STS lookup timing, 20 domains each (default 20)
//   BENCH_ONLY       comma list of smarthost,mx,mx-sts,lookup (default: all)
//   BENCH_LOG_LEVEL  log.level of the relay (default info)
//   BENCH_QUIET_WAIT seconds each path waits at most for a second in which the machine is
//                    quiet (< 0.25 busy cores) before it starts (default 20)
//   BENCH_NO_README  1: print only
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import tls from 'node:tls';
import { fileURLToPath } from 'node:url';
import { backgroundCores, commitLabel, fmt, intEnv, machine, median, processCpuSeconds, ratio, runMain, teardownScopes } from './common.mjs';
import { writeResults } from './results.mjs';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const README = path.join(root, 'bench', 'README.md');
const ZEGEL_BIN = path.join(root, 'bin', 'zegel');
const helpers = path.join(root, 'dist', 'test', 'helpers');
if (!fs.existsSync(path.join(helpers, 'mx-world.js')) || !fs.existsSync(path.join(root, 'dist', 'src', 'deliver', 'mx', 'mta-sts.js'))) {
  process.stderr.write('[bench] dist/ is missing: run `npm run build` (npm run bench:mx does)\n');
  process.exit(1);
}
const relay = await import('./relay.mjs');
const { startMxWorld } = await import(path.join(helpers, 'mx-world.js'));
const { startTlsSink } = await import(path.join(helpers, 'tls-sink.js'));
const { startMtaStsServer, policyText } = await import(path.join(helpers, 'mta-sts-server.js'));
const { MtaSts } = await import(path.join(root, 'dist', 'src', 'deliver', 'mx', 'mta-sts.js'));
const { MxResolver } = await import(path.join(root, 'dist', 'src', 'deliver', 'mx', 'dns.js'));
const { log, startChild, stopChild, running, freePort, waitForPort, cleanEnv } = relay;

const DOMAINS = 20;
const MESSAGES = Math.max(DOMAINS, Math.floor(intEnv('BENCH_MESSAGES', 2000, 1) / DOMAINS) * DOMAINS);
const SIZE = intEnv('BENCH_SIZE', 2048, 1);
const STS_ROUNDS = intEnv('BENCH_STS_ROUNDS', 20, 1);
const ONLY = new Set((process.env.BENCH_ONLY || 'smarthost,mx,mx-sts,lookup').split(',').map((s) => s.trim()));
const LOG_LEVEL = process.env.BENCH_LOG_LEVEL || 'info';
const QUIET_WAIT = intEnv('BENCH_QUIET_WAIT', 20);
const SMTP_SOURCE = '/usr/sbin/smtp-source';
const NET = '127.0.30';
const SMARTHOST_IP = `${NET}.200`;
const STS_IP = `${NET}.250`;
const FROM = 'sender@org.test';
const DELIVERY_TIMEOUT_MS = 120_000;

const domainName = (i) => `d${String(i + 1).padStart(2, '0')}.bench.test`;
const mxName = (i) => `mx.${domainName(i)}`;
const DOMAIN_LIST = Array.from({ length: DOMAINS }, (_, i) => domainName(i));

// ---------------------------------------------------------------- fixtures' lifetime

/** The fixtures register their clean-up with a test's `t.teardown`; a scope collects them (run last-in first-out). */
const { open: openScope, closeAll: closeScopes } = teardownScopes(log);

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** Polls `check` every 10 ms until it is true; rejects with `what()` after `timeoutMs`. */
async function until(check, timeoutMs, what) {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs / 1000} s: ${what()}`);
    await sleep(10);
  }
  return performance.now();
}

// ---------------------------------------------------------------- the world

/**
 * The loopback Internet: the MX world of the tests (test CA, dns2 server,
 * the internal sink for DSNs), one MX TLS sink per domain on 127.0.30.N:port,
 * the smarthost TLS sink on 127.0.30.200 (certificate with that IP), and the
 * MTA-STS HTTPS server on 127.0.30.250:443 (policies served only once
 * `publishSts` has put the TXT records in the zone).
 */
async function startWorld(scope) {
  const world = await startMxWorld(scope.t);
  const mx = [];
  for (let i = 0; i < DOMAINS; i++) {
    mx.push(await world.host(mxName(i), `${NET}.${i + 1}`));
    world.mx(domainName(i), [[mxName(i), 10]]);
  }
  const pair = world.pki.leaf(['smarthost.bench.test'], { ips: [SMARTHOST_IP] });
  const smarthost = await startTlsSink(scope.t, { host: SMARTHOST_IP, port: world.port, key: pair.key, cert: pair.cert });
  const sts = await startMtaStsServer(scope.t, STS_IP, world.pki);
  for (let i = 0; i < DOMAINS; i++) {
    sts.set(domainName(i), { body: policyText('enforce', [mxName(i)]) });
    world.dns.zone.set(`mta-sts.${domainName(i)}`, { A: [STS_IP] });
  }
  return {
    world,
    mx,
    smarthost,
    sts,
    publishSts(on) {
      for (const d of DOMAIN_LIST) {
        if (on) world.dns.zone.set(`_mta-sts.${d}`, { TXT: [['v=STSv1; id=20261204T000000']] });
        else world.dns.zone.delete(`_mta-sts.${d}`);
      }
    },
  };
}

/** What the sinks have seen so far: messages, connections, sessions that carried a message, plain-text messages, misrouted ones. */
function sinkCounts(sinks, { checkDomain } = {}) {
  let messages = 0;
  let connections = 0;
  let plain = 0;
  let misrouted = 0;
  const sessions = new Set();
  sinks.forEach((sink, i) => {
    messages += sink.messages.length;
    connections += sink.connections;
    for (const m of sink.messages) {
      sessions.add(`${i}|${m.sessionId}`);
      if (!m.secure) plain++;
      if (checkDomain && !m.to.every((a) => a.endsWith(`@${domainName(i)}`))) misrouted++;
    }
  });
  return { messages, connections, sessions, plain, misrouted };
}

// ---------------------------------------------------------------- the relay

/** `node bin/zegel start --config FILE` (JSON is YAML), as bench/relay.mjs starts it; counts its log lines. */
async function startZegel(name, dir, config) {
  fs.mkdirSync(dir, { recursive: true });
  const configFile = path.join(dir, 'zegel.yaml');
  fs.writeFileSync(configFile, `${JSON.stringify(config, null, 2)}\n`);
  const counts = { lines: 0, warn: 0, error: 0, enforce: 0, stsFetched: 0 };
  const problems = [];
  let started = false;
  let partial = '';
  const onStderr = (chunk) => {
    const lines = (partial + chunk).split('\n');
    partial = lines.pop() ?? '';
    for (const line of lines) {
      counts.lines++;
      if (line.includes('"relay started"')) started = true;
      if (line.includes('"mtaSts":"enforce"')) counts.enforce++;
      const level = Number(/"level":(\d+)/.exec(line)?.[1] ?? 0);
      if (level >= 50) counts.error++;
      else if (level >= 40) counts.warn++;
      if (level >= 40 && problems.length < 5 && !line.includes('sender-domain check is off') && !line.includes('made an audit signing key')) problems.push(line.slice(0, 400));
    }
  };
  const entry = startChild(name, process.execPath, [ZEGEL_BIN, 'start', '--config', configFile], { env: cleanEnv(), onStderr, onStdout: onStderr });
  const port = Number(config.smtp.listen.split(':').pop());
  if (!['fatal', 'error', 'warn', 'silent'].includes(LOG_LEVEL)) {
    await until(() => started || !running(entry), 30_000, () => `${name} did not say "relay started":\n${entry.tail.text}`);
    if (!started) throw new Error(`${name} exited early:\n${entry.tail.text}`);
  }
  await waitForPort(port, entry);
  return { entry, port, pid: entry.proc.pid, counts, problems, stop: () => stopChild(entry, 40_000) };
}

function relayConfig(env, dir, port, target) {
  const config = env.world.config({
    smtp: { listen: `127.0.0.1:${port}`, hostname: 'zegel.bench.test' },
    organisation: { name: 'Zegel bench', domains: ['org.test'] },
    delivery: { concurrency: 20, mx: { mtaSts: { ca: env.world.pki.ca.certFile } } },
    data: { dir: path.join(dir, 'data') },
    log: { level: LOG_LEVEL },
  });
  config.delivery.target = target;
  return config;
}

/**
 * One path: a fresh relay, then one smtp-source per domain (-s 1, MESSAGES/20
 * messages to rcpt@dNN, one message per connection), all at once; delivered =
 * MESSAGES / time from the start of the sources until the sinks counted them
 * all (polled every 10 ms). Relay CPU is read from /proc just before the
 * sources start and at that moment; this process's CPU (the sinks, DNS and
 * MTA-STS servers) likewise.
 */
async function runPath(env, name, { target, sts }) {
  const dir = fs.mkdtempSync(path.join(tmpRoot, `${name}-`));
  env.publishSts(sts);
  const sinks = target === 'mx' ? env.mx : [env.smarthost];
  const others = target === 'mx' ? [env.smarthost] : env.mx;
  const port = await freePort();
  const zegel = await startZegel(`zegel (${name})`, dir, relayConfig(env, dir, port, target === 'mx' ? 'mx' : `smtp://${SMARTHOST_IP}:${env.world.port}`));
  try {
    // other work on the machine skews the figures: wait (up to QUIET_WAIT s, one-second samples) for a quiet second
    const quietDeadline = Date.now() + QUIET_WAIT * 1000;
    let background;
    let relayBusy;
    do {
      const idle0 = processCpuSeconds(zegel.pid);
      background = await backgroundCores();
      relayBusy = processCpuSeconds(zegel.pid) - idle0;
    } while (background > 0.25 && Date.now() < quietDeadline);
    if (background > 0.25) log(`${name}: warning: ${background.toFixed(2)} cores busy before the run (the relay itself ${relayBusy.toFixed(2)} s of it) after waiting ${QUIET_WAIT} s for a quiet second`);
    const before = sinkCounts(sinks);
    const othersBefore = sinkCounts(others).messages;
    const internalBefore = env.world.internal.messages.length;
    const stsBefore = DOMAIN_LIST.reduce((sum, d) => sum + env.sts.count(d), 0);
    const dnsBefore = env.world.dns.queries.length;
    const cpu0 = processCpuSeconds(zegel.pid);
    const self0 = process.cpuUsage();
    const perDomain = MESSAGES / DOMAINS;
    log(`${name}: ${DOMAINS} × smtp-source -s 1 -m ${perDomain} -l ${SIZE} -f ${FROM} -t rcpt@dNN.bench.test 127.0.0.1:${port}`);
    const started = performance.now();
    const sources = DOMAIN_LIST.map((d) =>
      startChild(`smtp-source → ${d}`, SMTP_SOURCE, ['-s', '1', '-m', String(perDomain), '-l', String(SIZE), '-f', FROM, '-t', `rcpt@${d}`, `127.0.0.1:${port}`]),
    );
    const codes = await Promise.all(sources.map((s) => s.exited));
    const acceptedAt = performance.now();
    const failed = codes.findIndex((c) => c !== 0);
    if (failed >= 0) throw new Error(`smtp-source → ${DOMAIN_LIST[failed]} exited with ${codes[failed]}:\n${sources[failed].tail.text}`);
    const deliveredAt = await until(
      () => sinkCounts(sinks).messages - before.messages >= MESSAGES,
      DELIVERY_TIMEOUT_MS,
      () => `${name}: sinks counted ${sinkCounts(sinks).messages - before.messages} of ${MESSAGES}; relay said:\n${zegel.entry.tail.text.slice(-3000)}`,
    );
    const cpu1 = processCpuSeconds(zegel.pid);
    const self = process.cpuUsage(self0);
    const after = sinkCounts(sinks, { checkDomain: target === 'mx' });
    const sessions = [...after.sessions].filter((s) => !before.sessions.has(s)).length;
    const acceptSec = (acceptedAt - started) / 1000;
    const deliverSec = (deliveredAt - started) / 1000;
    const result = {
      name,
      background,
      acceptSec,
      deliverSec,
      accepted: MESSAGES / acceptSec,
      delivered: MESSAGES / deliverSec,
      relayCpu: cpu1 - cpu0,
      benchCpu: (self.user + self.system) / 1e6,
      connections: after.connections - before.connections,
      sessions,
      plain: after.plain - before.plain,
      misrouted: after.misrouted,
      elsewhere: sinkCounts(others).messages - othersBefore,
      internal: env.world.internal.messages.length - internalBefore,
      stsFetches: DOMAIN_LIST.reduce((sum, d) => sum + env.sts.count(d), 0) - stsBefore,
      dnsQueries: env.world.dns.queries.length - dnsBefore,
      logs: zegel.counts,
      problems: zegel.problems,
    };
    log(
      `${name}: accepted ${result.accepted.toFixed(0)} msg/s (${acceptSec.toFixed(2)} s), delivered ${result.delivered.toFixed(0)} msg/s (${deliverSec.toFixed(2)} s); ` +
        `relay CPU ${ms(result.relayCpu)} ms/msg; sessions at the sinks ${result.connections} (${result.sessions} carried mail); DNS questions ${result.dnsQueries}; policy fetches ${result.stsFetches}`,
    );
    return result;
  } finally {
    const code = await zegel.stop();
    if (code !== 0) log(`${name}: relay exited with ${code} on SIGTERM`);
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

// ---------------------------------------------------------------- MTA-STS lookup cost

const quantile = (values, q) => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)];
};

/**
 * `MtaSts.lookup` of the 20 domains one after another, in this process
 * against the fixtures (DNS and HTTPS server in this process too): per round
 * a new MtaSts (empty cache; its secure context, built in the constructor, is
 * not timed), a cold lookup of every domain, then a warm one of every domain.
 * For scale: the MX route lookup (MX + A + AAAA) and a TXT query alone.
 */
async function runLookups(env) {
  env.publishSts(true);
  const [host, port] = env.world.dns.servers[0].split(':');
  const resolver = new MxResolver({ servers: [{ host, port: Number(port) }] });
  const ca = env.world.pki.ca.cert;
  const time = async (fn) => {
    const t0 = performance.now();
    const out = await fn();
    return [performance.now() - t0, out];
  };
  const cold = [];
  const warm = [];
  const route = [];
  const txt = [];
  const sources = { cold: new Map(), warm: new Map() };
  const note = (map, source) => map.set(source, (map.get(source) ?? 0) + 1);
  // one unmeasured round first: JIT, the resolver's first socket
  for (let round = -1; round < STS_ROUNDS; round++) {
    const sts = new MtaSts({ resolver, ca });
    for (const d of DOMAIN_LIST) {
      const [ms, found] = await time(() => sts.lookup(d));
      if (round >= 0) {
        cold.push(ms);
        note(sources.cold, found.source);
      }
    }
    for (const d of DOMAIN_LIST) {
      const [ms, found] = await time(() => sts.lookup(d));
      if (round >= 0) {
        warm.push(ms);
        note(sources.warm, found.source);
      }
    }
    for (const d of DOMAIN_LIST) {
      const [ms] = await time(() => resolver.route(d));
      if (round >= 0) route.push(ms);
      const [ms2] = await time(() => resolver.txt(`_mta-sts.${d}`));
      if (round >= 0) txt.push(ms2);
    }
  }
  // what every new SMTP session costs the relay before its handshake when delivery.tls.ca is set:
  // smtp-pool.ts passes `ca: [...tls.rootCertificates, ...ca]` to each connection, so tls.connect builds a context
  const context = { roots: [], plain: [] };
  for (let i = -1; i < STS_ROUNDS; i++) {
    const [a] = await time(() => tls.createSecureContext({ ca: [...tls.rootCertificates, ca] }));
    const [b] = await time(() => tls.createSecureContext({}));
    if (i >= 0) {
      context.roots.push(a);
      context.plain.push(b);
    }
  }
  const stats = (values) => ({ median: median(values), p95: quantile(values, 0.95), n: values.length });
  const result = { contextRoots: stats(context.roots), contextPlain: stats(context.plain), cold: stats(cold), warm: stats(warm), route: stats(route), txt: stats(txt), sources: { cold: Object.fromEntries(sources.cold), warm: Object.fromEntries(sources.warm) } };
  log(
    `MTA-STS lookup: cold median ${result.cold.median.toFixed(2)} ms (p95 ${result.cold.p95.toFixed(2)}), warm median ${result.warm.median.toFixed(2)} ms (p95 ${result.warm.p95.toFixed(2)}); ` +
      `sources cold ${JSON.stringify(result.sources.cold)}, warm ${JSON.stringify(result.sources.warm)}`,
  );
  return result;
}

// ---------------------------------------------------------------- report

const ms = (seconds) => (Number.isFinite(seconds) ? ((seconds * 1000) / MESSAGES).toFixed(2) : 'n/a');

/** The new SMTP sessions of two paths (each a TCP connection, a TLS handshake and a certificate check). */
function sessionsNote(a, b, nameA, nameB) {
  if (a.connections === b.connections) return `New SMTP sessions: ${a.connections} on both (${nameA}, ${nameB}). `;
  return `New SMTP sessions: ${a.connections} (${nameA}) against ${b.connections} (${nameB}). `;
}

function report(results, m) {
  const { smarthost, mx, mxSts, lookups } = results;
  const lines = [`### Run of ${m.date}`, ''];
  lines.push(
    `Machine: ${m.nproc} cores (${m.model}), ${m.memGiB} GiB RAM, Linux ${m.kernel}; Node ${m.node}; temp dirs on ${m.tmp}. Commit ${m.commit}.`,
    `Load: ${MESSAGES} plain messages per path (smtp-source -l ${SIZE}), ${DOMAINS} recipient domains, one smtp-source per domain (-s 1 -m ${MESSAGES / DOMAINS}, one recipient, one message per connection), so 20 sessions into the relay; ` +
      `relay \`node bin/zegel start\`, log.level ${LOG_LEVEL}, delivery.concurrency 20, delivery.mx.maxConnectionsPerDomain 5 (default), TLS policy verify against the test CA (delivery.tls.ca). ` +
      'Sinks, dns2 server and MTA-STS server: the tests\' fixtures, in the benchmark\'s own Node process.',
    '',
    '| path | accepted msg/s | delivered msg/s | delivered / smarthost | last delivery after last 250 | relay CPU per msg¹ | relay CPU / smarthost | sink-side CPU per msg² | SMTP sessions at the sinks³ | msgs per session | DNS questions per msg | policy fetches |',
    '|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
  );
  const row = (name, r) =>
    r
      ? `| ${name} | ${fmt(r.accepted)} | ${fmt(r.delivered)} | ${ratio(r.delivered, smarthost?.delivered)} | ${fmt((r.deliverSec - r.acceptSec) * 1000)} ms | ${ms(r.relayCpu)} ms | ${ratio(r.relayCpu, smarthost?.relayCpu)} | ${ms(r.benchCpu)} ms | ${r.connections} | ${fmt(MESSAGES / r.sessions, 1)} | ${fmt(r.dnsQueries / MESSAGES, 1)} | ${r.stsFetches} |`
      : `| ${name} | not run | | | | | | | | | | |`;
  lines.push(
    row('smarthost (smtp://127.0.30.200, one TLS sink)', smarthost),
    row('mx, no MTA-STS policy published', mx),
    row('mx, MTA-STS enforce for all 20 domains', mxSts),
    '',
    '¹ CPU seconds of the relay process / messages. ² CPU seconds of the benchmark process (TLS sinks, dns2, MTA-STS server, polling) / messages. ' +
      '³ connections accepted by the sinks during the run (a pooled session carries up to 100 messages, src/deliver/smtp-pool.ts). ' +
      'When the last-delivery column is small, delivery kept up with intake: delivered msg/s is then bounded by how fast the relay accepts, and relay CPU per message is the figure that tells the paths apart.',
    '',
  );
  if (mx && smarthost) {
    lines.push(
      `**mx / smarthost: delivered ${ratio(mx.delivered, smarthost.delivered)}, relay CPU per message ${ratio(mx.relayCpu, smarthost.relayCpu)}.** ` +
        sessionsNote(mx, smarthost, 'mx', 'smarthost') +
        (mxSts ? `**MTA-STS enforce / none (mx): delivered ${ratio(mxSts.delivered, mx.delivered)}, relay CPU per message ${ratio(mxSts.relayCpu, mx.relayCpu)}** (difference ${ms(mxSts.relayCpu - mx.relayCpu)} ms per message). ${sessionsNote(mxSts, mx, 'with MTA-STS', 'without')}` : ''),
      '',
    );
  }
  if (lookups) {
    const s = (x) => `${x.median.toFixed(2)} ms | ${x.p95.toFixed(2)} ms`;
    lines.push(
      `MTA-STS lookup (\`MtaSts.lookup\`, in process, ${STS_ROUNDS} rounds × ${DOMAINS} domains after one warm-up round; each round a new MtaSts with an empty cache, every domain cold, then every domain warm):`,
      '',
      '| lookup | median | p95 | n |',
      '|---|---:|---:|---:|',
      `| cold: TXT \`_mta-sts\`, A/AAAA \`mta-sts.\`, HTTPS fetch (new TLS connection), parse | ${s(lookups.cold)} | ${lookups.cold.n} |`,
      `| warm: TXT \`_mta-sts\`, same id, cache hit | ${s(lookups.warm)} | ${lookups.warm.n} |`,
      `| for scale: the MX route (MX, then A and AAAA of the MX) | ${s(lookups.route)} | ${lookups.route.n} |`,
      `| for scale: one TXT query alone | ${s(lookups.txt)} | ${lookups.txt.n} |`,
      `| for scale: \`tls.createSecureContext({ ca: [...tls.rootCertificates, testCa] })\`⁴ | ${s(lookups.contextRoots)} | ${lookups.contextRoots.n} |`,
      `| for scale: \`tls.createSecureContext({})\` (system CAs only) | ${s(lookups.contextPlain)} | ${lookups.contextPlain.n} |`,
      '',
      '⁴ what each new SMTP session would cost if its TLS context were built per session with delivery.tls.ca set; src/deliver/smtp-pool.ts builds it once per CA set (since 253fd41), as MtaSts does.',
      '',
      `Lookup sources: cold ${Object.entries(lookups.sources.cold).map(([k, v]) => `${k} ${v}`).join(', ')}; warm ${Object.entries(lookups.sources.warm).map(([k, v]) => `${k} ${v}`).join(', ')}.`,
      '',
    );
  }
  const notes = [];
  const runs = Object.entries({ smarthost, mx, 'mx + MTA-STS': mxSts }).filter(([, r]) => r);
  if (runs.length) {
    const busy = runs.some(([, r]) => r.background > 0.25);
    notes.push(`${busy ? '**Other processes were busy: compare within the run.** ' : ''}Busy cores in the second before each path (nothing of ours running; each path waits up to ${QUIET_WAIT} s for a quiet second): ${runs.map(([n, r]) => `${n} ${fmt(r.background, 2)}`).join(', ')}.`);
    notes.push(
      `Checks: ${runs.map(([n, r]) => `${n}: ${r.plain} messages in plain text, ${r.misrouted} at the wrong MX, ${r.elsewhere} at the other path's sinks, ${r.internal} at the internal sink (DSNs)`).join('; ')}.`,
    );
    notes.push(`Relay log lines (warn/error): ${runs.map(([n, r]) => `${n} ${r.logs.lines} (${r.logs.warn}/${r.logs.error})`).join(', ')}${mxSts ? `; lines naming mtaSts enforce in the MTA-STS run: ${mxSts.logs.enforce}` : ''}.`);
    for (const [n, r] of runs) if (r.problems.length) notes.push(`${n} warnings: \`${r.problems[0].replace(/`/g, "'")}\``);
  }
  if (notes.length) lines.push(...notes.map((n) => `- ${n}`), '');
  return lines.join('\n');
}

const MARKERS = { start: '<!-- mx-results:start (bench/mx.mjs writes below; newest run first) -->', end: '<!-- mx-results:end -->', heading: '## MX delivery results' };

// ---------------------------------------------------------------- main

let tmpRoot;
async function cleanup() {
  await closeScopes();
  await relay.cleanup();
  if (tmpRoot) fs.rmSync(tmpRoot, { recursive: true, force: true, maxRetries: 3 });
}

async function main() {
  if (!fs.existsSync(SMTP_SOURCE)) throw new Error(`${SMTP_SOURCE} not found (Debian package postfix)`);
  tmpRoot = fs.mkdtempSync(path.join(os.tmpdir(), 'zegel-bench-mx-'));
  relay.setTmpRoot(tmpRoot);
  const m = { ...machine(), commit: commitLabel(root, ['src', 'bench/mx.mjs']) };
  log(`${m.date}; ${m.nproc} cores; Node ${m.node}; ${MESSAGES} messages per path; temp ${tmpRoot}`);
  const scope = openScope();
  const env = await startWorld(scope);
  const results = {};
  if (ONLY.has('smarthost')) results.smarthost = await runPath(env, 'smarthost', { target: 'smarthost', sts: false });
  if (ONLY.has('mx')) results.mx = await runPath(env, 'mx', { target: 'mx', sts: false });
  if (ONLY.has('mx-sts')) results.mxSts = await runPath(env, 'mx-sts', { target: 'mx', sts: true });
  if (ONLY.has('lookup')) results.lookups = await runLookups(env);
  await scope.close();
  const section = report(results, m);
  process.stdout.write(`\n${section}\n`);
  if (process.env.BENCH_NO_README !== '1') {
    writeResults(README, MARKERS, section);
    log(`results written to ${path.relative(process.cwd(), README) || README}`);
  }
}

await runMain(main, cleanup, log);
