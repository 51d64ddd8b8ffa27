#!/usr/bin/env node
// Relay benchmark: Zegel against a direct smtp-source → smtp-sink baseline and a
// private Postfix relay, Zegel's secure path (a BSN, two external recipients:
// two notifications and a receipt per message), plus Zegel's peak RSS while
// relaying one 500 MB message.
// Run with `npm run bench:relay` (it builds first). Everything runs on
// 127.0.0.1; every child is stopped and every temporary directory removed at
// the end, also on failure or Ctrl-C. Results go to stdout and into
// bench/README.md (between the results markers; newest run first).
//
// Knobs (environment), for trying things out; the README records what was used:
//   BENCH_MESSAGES  messages per throughput run   (default 5000)
//   BENCH_SESSIONS  parallel smtp-source sessions (default 20)
//   BENCH_SIZE      payload bytes per message     (default 2048)
//   BENCH_BIG_MB    size of the big message, MiB  (default 500; 0 skips it)
//   BENCH_REPEAT    throughput runs per path; the table shows medians (default 1)
//   BENCH_ONLY      comma list of direct,zegel,secure,postfix,big (default: all)
//   BENCH_LOG_LEVEL Zegel's log.level for the throughput run (default info, as in production)
//   BENCH_CPU_PROF  a directory: run the Zegel throughput child with --cpu-prof there
//                   (the secure path's child writes into DIR/secure)
//   BENCH_NO_README 1: print only, leave bench/README.md alone
//   BENCH_BASELINE  path of another checkout's bin/zegel (built): runs it as an extra path,
//                   alternating with this one, to compare two versions in the same run
//   BENCH_BASELINE_LABEL  its name in the table (default: the checkout's git commit)
import { spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { backgroundCores, clkTck, intEnv, machine, machineCpuSeconds, median, processCpuSeconds, procStatus, ratio, runMain } from './common.mjs';
import { writeResults } from './results.mjs';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const README = path.join(root, 'bench', 'README.md');
const ZEGEL_BIN = path.join(root, 'bin', 'zegel');

const SMTP_SINK = '/usr/sbin/smtp-sink';
const SMTP_SOURCE = '/usr/sbin/smtp-source';
const POSTFIX = '/usr/sbin/postfix';
const POSTCONF = '/usr/sbin/postconf';

const MESSAGES = intEnv('BENCH_MESSAGES', 5000);
const SESSIONS = intEnv('BENCH_SESSIONS', 20);
const SIZE = intEnv('BENCH_SIZE', 2048);
const BIG_MB = intEnv('BENCH_BIG_MB', 500);
const REPEAT = Math.max(1, intEnv('BENCH_REPEAT', 1));
const ONLY = new Set((process.env.BENCH_ONLY || 'direct,zegel,secure,postfix,big').split(',').map((s) => s.trim()));
const LOG_LEVEL = process.env.BENCH_LOG_LEVEL || 'info';
const CPU_PROF = process.env.BENCH_CPU_PROF ? path.resolve(process.env.BENCH_CPU_PROF) : undefined;
const FROM = 'sender@org.test';
const TO = 'rcpt@example.com';
// The secure path: smtp-source -r 2 sends to TO and 2TO (2rcpt@example.com), both
// external; the body carries a BSN that passes the 11-check (the shipped rule
// `bsn` encrypts it), so each message yields two notifications and the sender's receipt.
const SECURE_RECIPIENTS = 2;
const SECURE_MAILS = SECURE_RECIPIENTS + 1;
const SECURE_BSN = '123456782';
const IS_ROOT = process.getuid?.() === 0;
const RUN_TIMEOUT_MS = 10 * 60_000;
const BASELINE_BIN = process.env.BENCH_BASELINE ? path.resolve(process.env.BENCH_BASELINE) : undefined;
const BASELINE_LABEL =
  process.env.BENCH_BASELINE_LABEL ||
  (BASELINE_BIN ? spawnSync('git', ['-C', path.dirname(BASELINE_BIN), 'rev-parse', '--short', 'HEAD'], { encoding: 'utf8' }).stdout?.trim() || 'baseline' : undefined);

// ---------------------------------------------------------------- plumbing

/** Every child we started, so that cleanup can stop what is still running. */
const children = new Set();
/** Postfix instances (config dirs) that may still run. */
const postfixInstances = new Set();
let tmpRoot;
/** Where runs make their directories (bench/cluster.mjs, which imports this module, sets it). */
export function setTmpRoot(dir) {
  tmpRoot = dir;
}

export function log(message) {
  process.stderr.write(`[bench] ${message}\n`);
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** A bounded tail of a stream's text, for error messages. */
function tailKeeper(limit = 64 * 1024) {
  let text = '';
  return {
    add(chunk) {
      text += chunk;
      if (text.length > 2 * limit) text = text.slice(-limit);
    },
    get text() {
      return text.slice(-limit);
    },
  };
}

/**
 * Starts a child and registers it. stdout/stderr are piped and always drained
 * (a child blocked on a full pipe would distort the figures); `onStdout` and
 * `onStderr` see every chunk. With `logFile`, both go to that file instead
 * (Node's pipes are socketpairs, and a program that opens /dev/stdout, as
 * Postfix's maillog_file does, cannot open a socket that way).
 */
export function startChild(name, command, args, { env = process.env, onStdout, onStderr, logFile } = {}) {
  let fd;
  if (logFile) fd = fs.openSync(logFile, 'a');
  const proc = spawn(command, args, { stdio: ['ignore', fd ?? 'pipe', fd ?? 'pipe'], env });
  if (fd !== undefined) fs.closeSync(fd);
  const tail = logFile ? fileTail(logFile) : tailKeeper();
  const entry = { name, proc, tail, exited: undefined };
  entry.exited = new Promise((resolve) => {
    proc.on('exit', (code, signal) => {
      children.delete(entry);
      resolve(code ?? signal ?? -1);
    });
    proc.on('error', (err) => {
      tail.add(`\nspawn error: ${err.message}\n`);
      children.delete(entry);
      resolve(-1);
    });
  });
  if (!logFile) {
    proc.stdout.setEncoding('latin1');
    proc.stderr.setEncoding('latin1');
    proc.stdout.on('data', (d) => {
      tail.add(d);
      onStdout?.(d);
    });
    proc.stderr.on('data', (d) => {
      tail.add(d);
      onStderr?.(d);
    });
  }
  children.add(entry);
  return entry;
}

/** The last `limit` bytes of a log file, for error messages. */
function fileTail(file, limit = 64 * 1024) {
  let extra = '';
  return {
    add(text) {
      extra += text;
    },
    get text() {
      try {
        const size = fs.statSync(file).size;
        const fd = fs.openSync(file, 'r');
        const buffer = Buffer.alloc(Math.min(size, limit));
        fs.readSync(fd, buffer, 0, buffer.length, size - buffer.length);
        fs.closeSync(fd);
        return buffer.toString('latin1') + extra;
      } catch {
        return extra;
      }
    },
  };
}

export const running = (entry) => entry.proc.exitCode === null && entry.proc.signalCode === null;

/** SIGTERM, then SIGKILL after `graceMs`; resolves when the child is gone. */
export async function stopChild(entry, graceMs = 5_000) {
  if (!running(entry)) return entry.exited;
  entry.proc.kill('SIGTERM');
  const timer = setTimeout(() => {
    if (running(entry)) entry.proc.kill('SIGKILL');
  }, graceMs);
  const code = await entry.exited;
  clearTimeout(timer);
  return code;
}

/** A free loopback port (listen on 0, read it, close). */
export async function freePort() {
  const server = net.createServer();
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  const { port } = server.address();
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** Resolves once something accepts TCP connections on 127.0.0.1:port. */
export async function waitForPort(port, entry, timeoutMs = 20_000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const ok = await new Promise((resolve) => {
      const socket = net.connect({ host: '127.0.0.1', port });
      socket.once('connect', () => {
        socket.destroy();
        resolve(true);
      });
      socket.once('error', () => resolve(false));
    });
    if (ok) return;
    if (entry && !running(entry)) throw new Error(`${entry.name} exited before listening on ${port}:\n${entry.tail.text}`);
    if (Date.now() > deadline) throw new Error(`nothing listens on 127.0.0.1:${port} after ${timeoutMs} ms${entry ? `:\n${entry.tail.text}` : ''}`);
    await sleep(25);
  }
}

/** The environment for a child that must run as a user would run it. */
export function cleanEnv() {
  const env = { ...process.env };
  delete env.NODE_OPTIONS;
  for (const key of Object.keys(env)) if (key.startsWith('TAP') || key.startsWith('_TAPJS')) delete env[key];
  return env;
}

// ---------------------------------------------------------------- smtp-sink

/**
 * A Postfix smtp-sink on a free loopback port. With -c it prints running
 * counters, `sess=N quit=N mesg=N` followed by CR, each time a session ends, a
 * QUIT arrives or the "." that ends DATA is received; `mesg` is what we count.
 * (It must drop root privileges, hence -u nobody when we run as root.)
 */
export async function startSink(name) {
  const port = await freePort();
  let count = 0;
  let partial = '';
  const waiters = [];
  const onStdout = (chunk) => {
    const records = (partial + chunk).split(/[\r\n]/);
    partial = records.pop() ?? '';
    for (const record of records) {
      const m = /mesg=(\d+)/.exec(record);
      if (m) count = Math.max(count, Number(m[1]));
    }
    const now = performance.now();
    for (let i = waiters.length - 1; i >= 0; i--) {
      if (count >= waiters[i].target) {
        waiters[i].resolve(now);
        waiters.splice(i, 1);
      }
    }
  };
  const args = [...(IS_ROOT ? ['-u', 'nobody'] : []), '-c', `127.0.0.1:${port}`, '256'];
  const entry = startChild(name, SMTP_SINK, args, { onStdout });
  await waitForPort(port, entry);
  return {
    entry,
    port,
    get count() {
      return count;
    },
    /** Resolves with performance.now() of the moment the counter reached `target`. */
    reached(target, timeoutMs = RUN_TIMEOUT_MS) {
      if (count >= target) return Promise.resolve(performance.now());
      return new Promise((resolve, reject) => {
        const waiter = { target, resolve };
        waiters.push(waiter);
        const timer = setTimeout(() => {
          const i = waiters.indexOf(waiter);
          if (i >= 0) waiters.splice(i, 1);
          reject(new Error(`${name}: counted ${count} of ${target} messages after ${timeoutMs / 1000} s`));
        }, timeoutMs);
        timer.unref();
        entry.exited.then(() => reject(new Error(`${name} exited after counting ${count} messages:\n${entry.tail.text}`)));
      });
    },
    stop: () => stopChild(entry),
  };
}

// ---------------------------------------------------------------- the common measurement

/**
 * CPU seconds (user + system) of this process's children that have exited and
 * been reaped (cutime + cstime of /proc/self/stat): over a span in which only
 * smtp-source exits, the difference is smtp-source's own CPU time.
 */
function reapedChildrenCpuSeconds() {
  try {
    const stat = fs.readFileSync('/proc/self/stat', 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[13]) + Number(fields[14])) / clkTck();
  } catch {
    return NaN;
  }
}

/**
 * Runs smtp-source with the fixed arguments against `port` and waits until the
 * sink has counted every message. Accepted = messages / smtp-source wall time;
 * delivered = messages / time from smtp-source start until the sink's count.
 * `watchPid` (optional): a process whose CPU time is reported too.
 * `sourceArgs` (optional): extra smtp-source arguments (the secure path's -r and -F).
 * `port` may be a list of ports (bench/cluster.mjs: one per node): then one
 * smtp-source per port runs at the same time, each with its share of the
 * messages and sessions (connections spread round robin, as a load balancer
 * would), and accepted is measured until the last of them has finished.
 * `mailsPerMessage`: what the sink must count per message sent (the secure
 * path: two notifications and a receipt), so delivered = messages / time until
 * the sink counted messages × mailsPerMessage.
 */
export async function measure(label, port, sink, { watchPid, sourceArgs = ['-l', String(SIZE)], mailsPerMessage = 1 } = {}) {
  const background = await backgroundCores();
  if (background > 0.25) log(`${label}: warning: ${background.toFixed(2)} cores busy before the run (other processes); figures will be low`);
  const ports = Array.isArray(port) ? port : [port];
  const share = (total, i) => Math.floor(total / ports.length) + (i < total % ports.length ? 1 : 0);
  const argsFor = (p, i) => ['-s', String(Math.max(1, share(SESSIONS, i))), '-m', String(share(MESSAGES, i)), ...sourceArgs, '-f', FROM, '-t', TO, `127.0.0.1:${p}`];
  const args = argsFor(ports[0], 0);
  const cpu0 = machineCpuSeconds();
  const proc0 = watchPid ? processCpuSeconds(watchPid) : NaN;
  const sink0 = processCpuSeconds(sink.entry.proc.pid);
  const reaped0 = reapedChildrenCpuSeconds();
  const baseline = sink.count;
  const expected = MESSAGES * mailsPerMessage;
  log(`${label}: smtp-source ${args.join(' ')}${ports.length > 1 ? ` (and ${ports.length - 1} more, one per port)` : ''}${mailsPerMessage > 1 ? ` (waiting for ${expected} mails at the sink)` : ''}`);
  const started = performance.now();
  const delivered = sink.reached(baseline + expected);
  delivered.catch(() => undefined);
  const sources = ports.map((p, i) => startChild(`smtp-source → ${label}${ports.length > 1 ? ` :${p}` : ''}`, SMTP_SOURCE, argsFor(p, i)));
  const source = sources[0];
  const timer = setTimeout(() => sources.forEach((s) => stopChild(s, 1000)), RUN_TIMEOUT_MS);
  const codes = await Promise.all(sources.map((s) => s.exited));
  const acceptedAt = performance.now();
  clearTimeout(timer);
  // smtp-source has been reaped by now (the exit event comes after waitpid)
  const sourceCpu = reapedChildrenCpuSeconds() - reaped0;
  const failed = codes.findIndex((code) => code !== 0);
  if (failed >= 0) throw new Error(`smtp-source into ${label} exited with ${codes[failed]}:\n${sources[failed].tail.text}`);
  const cpuAccepted = machineCpuSeconds();
  const deliveredAt = await delivered;
  const cpu1 = machineCpuSeconds();
  const proc1 = watchPid ? processCpuSeconds(watchPid) : NaN;
  const sink1 = processCpuSeconds(sink.entry.proc.pid);
  const acceptSec = (acceptedAt - started) / 1000;
  const deliverSec = (deliveredAt - started) / 1000;
  const result = {
    label,
    acceptSec,
    deliverSec,
    accepted: MESSAGES / acceptSec,
    delivered: MESSAGES / deliverSec,
    mailsPerMessage,
    // busy cores, machine-wide, over the whole run (accept + drain)
    cores: (cpu1 - cpu0) / Math.max(deliverSec, acceptSec),
    coresWhileAccepting: (cpuAccepted - cpu0) / acceptSec,
    processCpu: proc1 - proc0,
    sinkCpu: sink1 - sink0,
    sourceCpu,
    background,
    sourceOutput: sources.map((s) => s.tail.text.trim()).filter(Boolean).join('\n'),
  };
  log(
    `${label}: accepted ${result.accepted.toFixed(0)} msg/s (${acceptSec.toFixed(2)} s), delivered ${result.delivered.toFixed(0)} msg/s (${deliverSec.toFixed(2)} s), ${result.cores.toFixed(2)} cores busy` +
      `${watchPid ? `; relay CPU ${result.processCpu.toFixed(1)} s (${msPer(result.processCpu)} ms/msg)` : ''}; smtp-sink ${msPer(result.sinkCpu)} ms/msg, smtp-source ${msPer(result.sourceCpu)} ms/msg`,
  );
  if (result.sourceOutput) log(`${label}: smtp-source said: ${result.sourceOutput.slice(0, 500)}`);
  return result;
}

/** CPU seconds over the run → milliseconds per message sent, as text. */
export const msPer = (seconds) => (Number.isFinite(seconds) ? ((seconds * 1000) / MESSAGES).toFixed(2) : 'n/a');

// ---------------------------------------------------------------- 1. direct

export async function runDirect() {
  const sink = await startSink('smtp-sink (direct)');
  try {
    return await measure('direct', sink.port, sink);
  } finally {
    await sink.stop();
  }
}

// ---------------------------------------------------------------- 2. Zegel

/** Starts the built relay as a user would: `node bin/zegel start --config FILE`. */
async function startZegel(name, dir, config, { nodeArgs = [], bin = ZEGEL_BIN } = {}) {
  fs.mkdirSync(dir, { recursive: true });
  const configFile = path.join(dir, 'zegel.yaml');
  // JSON is YAML; no dependency needed
  fs.writeFileSync(configFile, `${JSON.stringify(config, null, 2)}\n`);
  let stderr = '';
  let started = false;
  const counts = { warn: 0, error: 0, lines: 0 };
  const firstProblems = [];
  let partial = '';
  const onStderr = (chunk) => {
    if (!started) {
      stderr += chunk;
      if (stderr.includes('"relay started"')) started = true;
    }
    const lines = (partial + chunk).split('\n');
    partial = lines.pop() ?? '';
    for (const line of lines) {
      counts.lines++;
      const m = /"level":(\d+)/.exec(line);
      const level = m ? Number(m[1]) : 0;
      if (level >= 50) counts.error++;
      else if (level >= 40) counts.warn++;
      if (level >= 40 && firstProblems.length < 5 && !line.includes('sender-domain check is off') && !line.includes('made an audit signing key')) firstProblems.push(line.slice(0, 400));
    }
  };
  // node directly (not through `env` or a shell), so entry.proc.pid is the relay's own pid
  const entry = startChild(name, process.execPath, [...nodeArgs, bin, 'start', '--config', configFile], { env: cleanEnv(), onStderr, onStdout: onStderr });
  const deadline = Date.now() + 30_000;
  const needLine = ['fatal', 'error', 'warn', 'silent'].includes(config.log?.level) === false;
  if (needLine) {
    while (!started) {
      if (!running(entry)) throw new Error(`${name} exited early:\n${entry.tail.text}`);
      if (Date.now() > deadline) throw new Error(`${name} did not say "relay started":\n${entry.tail.text}`);
      await sleep(25);
    }
  }
  const listen = config.smtp.listen;
  const port = Number(listen.slice(listen.lastIndexOf(':') + 1));
  await waitForPort(port, entry);
  return { entry, port, pid: entry.proc.pid, counts, firstProblems, stop: (graceMs = 40_000) => stopChild(entry, graceMs) };
}

function zegelConfig(dir, port, sinkPort, { level = 'info', maxMessageSize, readerPort } = {}) {
  return {
    organisation: { name: 'Zegel bench', domains: ['org.test'] },
    smtp: { listen: `127.0.0.1:${port}`, hostname: 'zegel.bench.test', ...(maxMessageSize ? { maxMessageSize } : {}) },
    delivery: { target: `smtp://127.0.0.1:${sinkPort}`, concurrency: 20 },
    data: { dir: path.join(dir, 'data') },
    log: { level },
    // the secure path: the links in the notifications point at this reader
    ...(readerPort ? { reader: { listen: `127.0.0.1:${readerPort}`, publicUrl: `http://127.0.0.1:${readerPort}` } } : {}),
  };
}

/**
 * The secure path's relay: a reader for the links, the sender's receipt on
 * (the default, stated here because the count depends on it), and relay-made
 * mail to the internal route on the same sink, so that one sink counts the two
 * notifications (external route) and the receipt (to sender@org.test, internal
 * route) of every message.
 */
function secureConfig(dir, port, sinkPort, readerPort, { level = 'info' } = {}) {
  const config = zegelConfig(dir, port, sinkPort, { level, readerPort });
  config.delivery.internalTarget = config.delivery.target;
  config.receipts = { sender: true };
  return config;
}

/**
 * The secure path's message for `smtp-source -F` (it sends the file's header
 * and body as they are, appending CRLF to each line): a BSN in the body and
 * filler lines like smtp-source's own up to about BENCH_SIZE bytes of body. No
 * Message-ID: every message is the same file, and the relay needs none.
 */
function secureMessageFile(dir) {
  const header = [`From: Bench <${FROM}>`, `To: <${TO}>, <${SECURE_RECIPIENTS}${TO}>`, 'Subject: Dossier overdracht', 'MIME-Version: 1.0', 'Content-Type: text/plain; charset=us-ascii', ''];
  const body = [`Graag uw reactie op het dossier van de client met BSN ${SECURE_BSN}.`];
  let bytes = body[0].length + 2;
  for (let i = 1; bytes < SIZE; i++) {
    const line = `${i}${'X'.repeat(79 - String(i).length)}`.slice(0, Math.max(1, SIZE - bytes - 2));
    body.push(line);
    bytes += line.length + 2;
  }
  const file = path.join(dir, 'secure-message.txt');
  fs.writeFileSync(file, `${[...header, ...body].join('\n')}\n`);
  return file;
}

/**
 * One throughput run through a fresh relay with a fresh sink and data
 * directory: `prepare` gives the relay's configuration and what `measure`
 * sends; the result carries the relay's memory, log counts and, counted after
 * the relay stopped, what reached the sink.
 */
async function runRelay(name, label, { bin = ZEGEL_BIN, profDir, prepare }) {
  const dir = fs.mkdtempSync(path.join(tmpRoot, `${label}-`));
  const sink = await startSink(`smtp-sink (${name} next hop)`);
  let relay;
  let result;
  try {
    const port = await freePort();
    if (profDir) fs.mkdirSync(profDir, { recursive: true });
    const nodeArgs = profDir ? ['--cpu-prof', `--cpu-prof-dir=${profDir}`] : [];
    const { config, measureOptions = {} } = await prepare(dir, port, sink.port);
    relay = await startZegel(name, dir, config, { nodeArgs, bin });
    result = await measure(label, relay.port, sink, { watchPid: relay.pid, ...measureOptions });
    result.rss = procStatus(relay.pid);
    result.logs = { ...relay.counts };
    result.problems = relay.firstProblems;
    return result;
  } finally {
    if (relay) {
      const code = await relay.stop();
      if (code !== 0) log(`${name} exited with ${code} on SIGTERM`);
    }
    // counted after the relay stopped: more mails than expected would be
    // something else (a DSN, a notice), and the report says so
    if (result) result.sinkCount = sink.count;
    await sink.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/** The plain path; `bin` is this checkout's relay or the baseline's (only this one is profiled). */
export function runZegel(bin = ZEGEL_BIN) {
  return runRelay('zegel', 'zegel', {
    bin,
    profDir: bin === ZEGEL_BIN ? CPU_PROF : undefined,
    prepare: async (dir, port, sinkPort) => ({ config: zegelConfig(dir, port, sinkPort, { level: LOG_LEVEL, readerPort: await freePort() }) }),
  });
}

// ---------------------------------------------------------------- 2b. Zegel, secure path

/**
 * Every message carries a BSN and goes to two external recipients, so the
 * relay encrypts it, stores the secure message and sends two notifications
 * and the sender's receipt. Delivered = messages / time until the sink counted
 * all three mails of every message (not the 250s).
 */
function runSecure() {
  return runRelay('zegel (secure)', 'secure', {
    profDir: CPU_PROF ? path.join(CPU_PROF, 'secure') : undefined,
    prepare: async (dir, port, sinkPort) => ({
      config: secureConfig(dir, port, sinkPort, await freePort(), { level: LOG_LEVEL }),
      measureOptions: { sourceArgs: ['-r', String(SECURE_RECIPIENTS), '-F', secureMessageFile(dir)], mailsPerMessage: SECURE_MAILS },
    }),
  });
}

// ---------------------------------------------------------------- 3. Postfix

/*
 * A private Postfix 3.7 instance next to whatever the host runs:
 *
 * - `postfix -c DIR` reads main.cf and master.cf from DIR. Run by root it needs
 *   no `alternate_config_directories` entry in /etc/postfix/main.cf: that list
 *   is consulted only by the set-gid commands (postdrop, postqueue, and so
 *   sendmail), which this benchmark never uses. It needs no `multi_instance_*`
 *   settings either: those are for instances managed with postmulti(1), and
 *   with -c postfix(1) operates on that one instance only (postfix(1): "With
 *   Postfix 2.6 and later, this option forces the postfix(1) command to operate
 *   on the specified Postfix instance only").
 * - What it does need: its own queue_directory (master.pid lives in
 *   $queue_directory/pid and the daemons' sockets in public/ and private/), its
 *   own data_directory (master.lock), its own listener address (master.cf),
 *   `postfix -c DIR set-permissions` to create the queue tree with the right
 *   owners, a data_directory owned by the mail_owner (postfix), and parent
 *   directories the postfix user can traverse (mkdtemp makes 0700; we chmod
 *   0755). Debian's master.cf chroots most daemons into queue_directory; that
 *   works here because nothing needs /etc inside the chroot (numeric
 *   relayhost, disable_dns_lookups, loopback only).
 * - `postfix -c DIR start-fg` keeps master in the foreground (a child we can
 *   wait on; Postfix ≥ 3.3) and maillog_file = /dev/stdout sends its log to our
 *   pipe via postlogd. `postfix -c DIR stop` stops it.
 * - Everything else is `postconf -d` (Postfix's defaults), including
 *   in_flow_delay = 1s and default_destination_concurrency_limit = 20.
 */
async function startPostfix(dir, sinkPort) {
  const conf = path.join(dir, 'conf');
  const queue = path.join(dir, 'queue');
  const data = path.join(dir, 'data');
  for (const d of [conf, queue, data]) fs.mkdirSync(d, { recursive: true });
  for (let d = dir; d.startsWith(tmpRoot) && d.length >= tmpRoot.length; d = path.dirname(d)) fs.chmodSync(d, 0o755);
  const port = await freePort();
  fs.writeFileSync(
    path.join(conf, 'main.cf'),
    [
      '# private benchmark instance (bench/relay.mjs); defaults from `postconf -d` otherwise',
      'compatibility_level = 3.6',
      'inet_interfaces = loopback-only',
      'mydestination =',
      `relayhost = [127.0.0.1]:${sinkPort}`,
      'disable_dns_lookups = yes',
      'smtpd_relay_restrictions = permit_mynetworks, reject',
      'mynetworks = 127.0.0.0/8',
      `queue_directory = ${queue}`,
      `data_directory = ${data}`,
      'maillog_file = /dev/stdout',
      'smtp_tls_security_level = none',
      'myhostname = bench.localdomain',
      '',
    ].join('\n'),
  );
  const master = fs.readFileSync('/etc/postfix/master.cf', 'utf8');
  const listener = /^smtp(\s+)inet(\s)/m;
  if (!listener.test(master)) throw new Error('/etc/postfix/master.cf has no "smtp inet" line to move to a loopback port');
  fs.writeFileSync(path.join(conf, 'master.cf'), master.replace(listener, `127.0.0.1:${port} inet$2`));
  const postfixUser = spawnSync('id', ['-u', 'postfix'], { encoding: 'utf8' });
  const postfixGroup = spawnSync('id', ['-g', 'postfix'], { encoding: 'utf8' });
  if (postfixUser.status !== 0) throw new Error('there is no postfix user (is Debian\'s postfix package installed?)');
  fs.chownSync(data, Number(postfixUser.stdout), Number(postfixGroup.stdout));
  const perms = spawnSync(POSTFIX, ['-c', conf, 'set-permissions'], { encoding: 'utf8' });
  if (perms.status !== 0) throw new Error(`postfix set-permissions failed:\n${perms.stdout}${perms.stderr}`);

  postfixInstances.add(conf);
  const logFile = path.join(dir, 'maillog');
  const entry = startChild('postfix', POSTFIX, ['-c', conf, 'start-fg'], { logFile });
  await waitForPort(port, entry, 30_000);
  return {
    entry,
    port,
    dir,
    /** Counts from Postfix's log (read after the run). */
    stats() {
      const stats = { sent: 0, deferred: 0, bounced: 0, warnings: [] };
      let text = '';
      try {
        text = fs.readFileSync(logFile, 'latin1');
      } catch {
        return stats;
      }
      for (const line of text.split('\n')) {
        if (line.includes(' status=sent')) stats.sent++;
        else if (line.includes(' status=deferred')) stats.deferred++;
        else if (line.includes(' status=bounced')) stats.bounced++;
        if (/(warning|error|fatal|panic):/.test(line) && !line.includes('dict_nis_init') && stats.warnings.length < 5) stats.warnings.push(line);
      }
      return stats;
    },
    stop: () => stopPostfix(conf, entry),
  };
}

async function stopPostfix(conf, entry) {
  if (!postfixInstances.has(conf)) return;
  const r = spawnSync(POSTFIX, ['-c', conf, 'stop'], { encoding: 'utf8', timeout: 30_000 });
  if (r.status !== 0) log(`postfix -c ${conf} stop: ${r.status} ${r.stdout ?? ''}${r.stderr ?? ''}`.trim());
  if (entry) {
    const timer = setTimeout(() => {
      if (running(entry)) {
        // last resort: the master's pid from its pid file, then the postfix-script child
        try {
          const queue = spawnSync(POSTCONF, ['-c', conf, '-h', 'queue_directory'], { encoding: 'utf8' }).stdout.trim();
          const pid = Number(fs.readFileSync(path.join(queue, 'pid', 'master.pid'), 'utf8').trim());
          if (pid > 1) process.kill(pid, 'SIGKILL');
        } catch {
          // gone already
        }
        if (running(entry)) entry.proc.kill('SIGKILL');
      }
    }, 15_000);
    await entry.exited;
    clearTimeout(timer);
  }
  postfixInstances.delete(conf);
}

export async function runPostfix() {
  const sink = await startSink('smtp-sink (postfix relayhost)');
  let postfix;
  try {
    postfix = await startPostfix(fs.mkdtempSync(path.join(tmpRoot, 'postfix-')), sink.port);
    const result = await measure('postfix', postfix.port, sink);
    await sleep(200);
    result.postfix = postfix.stats();
    return result;
  } finally {
    if (postfix) {
      await postfix.stop();
      fs.rmSync(postfix.dir, { recursive: true, force: true });
    }
    await sink.stop();
  }
}

// ---------------------------------------------------------------- 5. big message, peak RSS

/** Minimal SMTP client over a raw socket: reads replies, sends commands. */
class RawSmtp {
  #socket;
  #buffer = '';
  #waiting;
  #closed;

  constructor(socket) {
    this.#socket = socket;
    socket.setEncoding('latin1');
    socket.on('data', (d) => {
      this.#buffer += d;
      this.#deliver();
    });
    this.#closed = new Promise((resolve) => socket.once('close', resolve));
    socket.on('error', (err) => {
      this.#buffer += `\n#error ${err.message}\n`;
      this.#deliver(err);
    });
  }

  #deliver(err) {
    if (!this.#waiting) return;
    if (err) {
      const { reject } = this.#waiting;
      this.#waiting = undefined;
      reject(err);
      return;
    }
    // a complete reply: lines "NNN-..." then a last "NNN ..." line
    const lines = this.#buffer.split('\r\n');
    for (let i = 0; i < lines.length - 1; i++) {
      if (/^\d{3}( |$)/.test(lines[i])) {
        const reply = lines.slice(0, i + 1).join('\n');
        this.#buffer = lines.slice(i + 1).join('\r\n');
        const { resolve } = this.#waiting;
        this.#waiting = undefined;
        resolve(reply);
        return;
      }
    }
  }

  reply(timeoutMs = RUN_TIMEOUT_MS) {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no SMTP reply within ${timeoutMs / 1000} s`)), timeoutMs);
      this.#waiting = {
        resolve: (v) => {
          clearTimeout(timer);
          resolve(v);
        },
        reject: (e) => {
          clearTimeout(timer);
          reject(e);
        },
      };
      this.#deliver();
    });
  }

  async command(line, expect) {
    this.#socket.write(`${line}\r\n`);
    const reply = await this.reply();
    if (!reply.startsWith(String(expect))) throw new Error(`${line.split(' ')[0]}: expected ${expect}, got ${reply}`);
    return reply;
  }

  async write(chunk) {
    if (!this.#socket.write(chunk)) await Promise.race([once(this.#socket, 'drain'), this.#closed.then(() => Promise.reject(new Error('connection closed while sending DATA')))]);
  }

  end() {
    this.#socket.end();
    return this.#closed;
  }
}

/**
 * Sends one message of `totalBytes` (header included) in lines of 76
 * characters + CRLF, generated chunk by chunk while honouring the socket's
 * backpressure; nothing like the whole message is ever in memory here.
 */
async function sendBigMessage(port, totalBytes) {
  const socket = net.connect({ host: '127.0.0.1', port });
  await once(socket, 'connect');
  const smtp = new RawSmtp(socket);
  const greeting = await smtp.reply();
  if (!greeting.startsWith('220')) throw new Error(`greeting: ${greeting}`);
  await smtp.command('EHLO bench.localdomain', 250);
  await smtp.command(`MAIL FROM:<${FROM}> SIZE=${totalBytes + 80}`, 250);
  await smtp.command(`RCPT TO:<${TO}>`, 250);
  await smtp.command('DATA', 354);
  const header = Buffer.from(
    [
      `From: Bench <${FROM}>`,
      `To: <${TO}>`,
      `Subject: ${Math.round(totalBytes / 1024 / 1024)} MiB benchmark message`,
      `Date: ${new Date().toUTCString().replace('GMT', '+0000')}`,
      `Message-ID: <big-${Date.now()}@bench.localdomain>`,
      'MIME-Version: 1.0',
      'Content-Type: text/plain; charset=us-ascii',
      '',
      '',
    ].join('\r\n'),
    'latin1',
  );
  const started = performance.now();
  await smtp.write(header);
  let sent = header.length;
  // 862 different 78-byte lines (76 characters + CRLF), none starting with "."
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';
  const LINES_PER_CHUNK = 862;
  const LINE = 78;
  const chunkTemplate = Buffer.alloc(LINES_PER_CHUNK * LINE);
  for (let l = 0; l < LINES_PER_CHUNK; l++) {
    for (let c = 0; c < 76; c++) chunkTemplate[l * LINE + c] = alphabet.charCodeAt((l * 7 + c * 13) % 64);
    chunkTemplate[l * LINE + 76] = 0x0d;
    chunkTemplate[l * LINE + 77] = 0x0a;
  }
  let serial = 0;
  while (sent < totalBytes) {
    // a fresh buffer each time: the socket may hold on to it until it is written
    let chunk = Buffer.from(chunkTemplate);
    chunk.write(String(serial++).padStart(10, '0'), 0, 'latin1');
    const remaining = totalBytes - sent;
    // whole lines only: the message ends up at most one line (78 bytes) over the target
    if (chunk.length > remaining) chunk = chunk.subarray(0, Math.ceil(remaining / LINE) * LINE);
    await smtp.write(chunk);
    sent += chunk.length;
  }
  await smtp.write('.\r\n');
  const dataSent = performance.now();
  const reply = await smtp.reply();
  const answered = performance.now();
  if (!reply.startsWith('250')) throw new Error(`end of DATA: expected 250, got ${reply}`);
  await smtp.command('QUIT', 221).catch(() => undefined);
  await smtp.end();
  return { bytes: sent, reply, sendSec: (dataSent - started) / 1000, acceptSec: (answered - started) / 1000, started, answered };
}

async function runBig() {
  const dir = fs.mkdtempSync(path.join(tmpRoot, 'zegel-big-'));
  const sink = await startSink('smtp-sink (big next hop)');
  let relay;
  try {
    const port = await freePort();
    const bytes = BIG_MB * 1024 * 1024;
    const maxMessageSize = `${Math.max(600, Math.ceil(BIG_MB * 1.2))}MB`;
    relay = await startZegel('zegel (big)', dir, zegelConfig(dir, port, sink.port, { level: 'info', maxMessageSize, readerPort: await freePort() }));
    const background = await backgroundCores();
    const before = procStatus(relay.pid);
    log(`big: relay pid ${relay.pid} (${before.name}), VmHWM before ${mib(before.hwm)} MiB; sending ${BIG_MB} MiB`);
    const cpu0 = processCpuSeconds(relay.pid);
    const delivered = sink.reached(sink.count + 1);
    delivered.catch(() => undefined);
    const sent = await sendBigMessage(port, bytes);
    log(`big: 250 after ${sent.acceptSec.toFixed(1)} s (${sent.reply.trim()})`);
    const deliveredAt = await delivered;
    const after = procStatus(relay.pid);
    const cpu = processCpuSeconds(relay.pid) - cpu0;
    const result = {
      bytes: sent.bytes,
      acceptSec: sent.acceptSec,
      deliverSec: (deliveredAt - sent.started) / 1000,
      hwmBefore: before.hwm,
      hwm: after.hwm,
      rssAfter: after.rss,
      processName: after.name,
      cpu,
      background,
      problems: relay.firstProblems,
    };
    log(`big: delivered after ${result.deliverSec.toFixed(1)} s; VmHWM ${mib(result.hwm)} MiB (VmRSS now ${mib(result.rssAfter)} MiB)`);
    return result;
  } finally {
    if (relay) await relay.stop();
    await sink.stop();
  }
}

// ---------------------------------------------------------------- report

/** Several runs of one path: medians of the figures; the rest from the first run. */
function aggregate(runs) {
  if (runs.length === 1) return runs[0];
  const out = { ...runs[0], runs };
  for (const key of ['accepted', 'delivered', 'acceptSec', 'deliverSec', 'cores', 'coresWhileAccepting', 'processCpu', 'sinkCpu', 'sourceCpu']) out[key] = median(runs.map((r) => r[key]));
  out.background = Math.max(...runs.map((r) => r.background));
  return out;
}

const mib = (bytes) => (bytes / 1024 / 1024).toFixed(0);
const fmtRate = (r) => (r ? r.toFixed(0) : 'n/a');

export function runMachine() {
  // -d: the compiled-in value, also where /etc/postfix/main.cf does not exist
  // (Debian's package installed with "No configuration", as the tests do)
  const postfix = spawnSync(POSTCONF, ['-d', '-h', 'mail_version'], { encoding: 'utf8' }).stdout?.trim() || 'not found';
  return { ...machine(), postfix };
}

function report(results, m) {
  const { direct, zegel, secure, postfix, big, baseline } = results;
  const lines = [];
  lines.push(`### Run of ${m.date}`, '');
  lines.push(
    `Machine: ${m.nproc} cores (${m.model}), ${m.memGiB} GiB RAM, Linux ${m.kernel}; Node ${m.node}; Postfix ${m.postfix}; temp dirs on ${m.tmp}.`,
    `Load: smtp-source -s ${SESSIONS} -m ${MESSAGES} -l ${SIZE}, one message per connection; Zegel log.level ${LOG_LEVEL}${REPEAT > 1 ? `; ${REPEAT} runs per path, medians shown` : '; one run per path'}.` +
      (secure ? ` Secure path: smtp-source -s ${SESSIONS} -m ${MESSAGES} -r ${SECURE_RECIPIENTS} -F (a BSN in a ~${SIZE}-byte body, two external recipients); delivered = ${MESSAGES} / time until the sink counted ${MESSAGES * SECURE_MAILS} mails (two notifications and the sender's receipt per message).` : ''),
    '',
  );
  lines.push('| path | accepted msg/s | delivered msg/s | accept time | deliver time | busy cores¹ | relay CPU² |', '|---|---:|---:|---:|---:|---:|---:|');
  const row = (name, r) =>
    r
      ? `| ${name} | ${fmtRate(r.accepted)} | ${fmtRate(r.delivered)} | ${r.acceptSec.toFixed(2)} s | ${r.deliverSec.toFixed(2)} s | ${r.cores.toFixed(2)} | ${Number.isNaN(r.processCpu) ? '—' : `${r.processCpu.toFixed(1)} s`} |`
      : `| ${name} | not run | | | | | |`;
  lines.push(
    row('direct (smtp-source → smtp-sink)', direct),
    row('Zegel', zegel),
    ...(baseline ? [row(`Zegel at ${BASELINE_LABEL} (baseline)`, baseline)] : []),
    ...(ONLY.has('secure') ? [row('Zegel secure³', secure)] : []),
    row('Postfix', postfix),
    '',
  );
  lines.push(
    '¹ machine-wide busy CPU (of ' + m.nproc + ') averaged over the run, smtp-source and smtp-sink included. ² CPU seconds of the Zegel process itself.' +
      (ONLY.has('secure') ? ` ³ every message with a BSN to two external recipients; delivered = complete secure deliveries per second (both notifications and the receipt of a message at the sink).` : ''),
    '',
  );
  lines.push('| ratio | accepted | delivered |', '|---|---:|---:|');
  lines.push(`| Zegel / direct | ${ratio(zegel?.accepted, direct?.accepted)} | ${ratio(zegel?.delivered, direct?.delivered)} |`);
  if (baseline) {
    lines.push(`| Zegel at ${BASELINE_LABEL} / direct | ${ratio(baseline.accepted, direct?.accepted)} | ${ratio(baseline.delivered, direct?.delivered)} |`);
    lines.push(`| Zegel / Zegel at ${BASELINE_LABEL} | ${ratio(zegel?.accepted, baseline.accepted)} | ${ratio(zegel?.delivered, baseline.delivered)} |`);
  }
  lines.push(`| Postfix / direct | ${ratio(postfix?.accepted, direct?.accepted)} | ${ratio(postfix?.delivered, direct?.delivered)} |`);
  lines.push(`| **Zegel / Postfix** (target ≥ 1) | **${ratio(zegel?.accepted, postfix?.accepted)}** | **${ratio(zegel?.delivered, postfix?.delivered)}** |`);
  if (ONLY.has('secure')) lines.push(`| **Zegel secure / Zegel plain** (target ≥ 0.5 delivered) | ${ratio(secure?.accepted, zegel?.accepted)} | **${ratio(secure?.delivered, zegel?.delivered)}** |`);
  lines.push('');
  if (zegel && postfix) {
    const okA = zegel.accepted >= postfix.accepted;
    const okD = zegel.delivered >= postfix.delivered;
    lines.push(`Throughput target (Zegel ≥ Postfix): accepted ${okA ? 'met' : '**not met**'}, delivered ${okD ? 'met' : '**not met**'}.`, '');
  }
  if (secure && zegel) lines.push(`Secure target (Zegel secure ≥ 0.5× Zegel plain, delivered): ${secure.delivered >= 0.5 * zegel.delivered ? 'met' : '**not met**'}.`, '');
  if (zegel || secure || direct) {
    const perMsg = (r, key) => (r && Number.isFinite(r[key]) ? `${msPer(r[key])} ms` : 'n/a');
    const plainOk = zegel && Number.isFinite(zegel.processCpu) ? (zegel.processCpu * 1000) / MESSAGES <= 1.5 : undefined;
    lines.push(
      `CPU per message (process CPU seconds / ${MESSAGES} messages): **Zegel plain ${perMsg(zegel, 'processCpu')}** (target ≤ 1.5 ms: ${plainOk === undefined ? 'n/a' : plainOk ? 'met' : '**not met**'})` +
        `${baseline ? `, Zegel at ${BASELINE_LABEL} ${perMsg(baseline, 'processCpu')}` : ''}, Zegel secure ${perMsg(secure, 'processCpu')}; ` +
        `direct path of the same run: smtp-sink ${perMsg(direct, 'sinkCpu')}, smtp-source ${perMsg(direct, 'sourceCpu')}.`,
      '',
    );
  }
  if (big) {
    const ok = big.hwm <= 200 * 1024 * 1024;
    lines.push(
      `Peak RSS relaying one ${mib(big.bytes)} MiB message (${big.bytes} bytes) through Zegel: **VmHWM ${mib(big.hwm)} MiB** (target ≤ 200 MB: ${ok ? 'met' : '**not met**'}; ${mib(big.hwmBefore)} MiB after start-up). ` +
        `250 after ${big.acceptSec.toFixed(1)} s (${(big.bytes / 1024 / 1024 / big.acceptSec).toFixed(0)} MiB/s in), at the sink after ${big.deliverSec.toFixed(1)} s; relay CPU ${big.cpu.toFixed(1)} s.`,
      '',
    );
  } else {
    lines.push('Peak RSS: not run.', '');
  }
  lines.push(
    `Method: each path gets a fresh \`smtp-sink -c\` as next hop (and a fresh relay or Postfix with an empty queue); accepted = ${MESSAGES} / wall time of smtp-source (every message got its 250), delivered = ${MESSAGES} / time from the start of smtp-source until the sink counted ${MESSAGES} (the sink counts at the "." ending DATA, so "delivered" can come out a hair above "accepted" on the direct path). ` +
      'Zegel: `node bin/zegel start` with `delivery.concurrency: 20`, SQLite WAL flushed (fdatasync) before each commit is answered, spool fsync on; Postfix: Debian defaults plus the settings listed in bench/relay.mjs. ' +
      'Peak RSS: `VmHWM` from /proc/<pid>/status of the relay\'s Node process (started directly, not through a wrapper) after the big message reached the sink.',
    '',
  );
  const notes = [];
  const bg = Object.entries({ direct, zegel, secure, postfix, big }).filter(([, r]) => r && typeof r.background === 'number');
  if (bg.length) {
    const busy = bg.some(([, r]) => r.background > 0.25);
    notes.push(
      `${busy ? '**Other processes were busy: these figures are low and not comparable.** ' : ''}Busy cores in the second before each run (nothing of ours running): ${bg.map(([n, r]) => `${n} ${r.background.toFixed(2)}`).join(', ')}.`,
    );
  }
  if (zegel?.logs) notes.push(`Zegel logged ${zegel.logs.lines} lines (${zegel.logs.warn} warn, ${zegel.logs.error} error) and ended at VmHWM ${mib(zegel.rss.hwm)} MiB in the throughput run.`);
  if (zegel?.problems?.length) notes.push(`Zegel warnings: \`${zegel.problems[0].replace(/`/g, "'")}\``);
  if (secure?.logs) notes.push(`Zegel secure logged ${secure.logs.lines} lines (${secure.logs.warn} warn, ${secure.logs.error} error) and ended at VmHWM ${mib(secure.rss.hwm)} MiB; its sink counted ${secure.sinkCount} mails for ${MESSAGES * SECURE_MAILS} expected by the end of the run.`);
  if (secure?.problems?.length) notes.push(`Zegel secure warnings: \`${secure.problems[0].replace(/`/g, "'")}\``);
  if (postfix?.postfix) notes.push(`Postfix logged ${postfix.postfix.sent} status=sent, ${postfix.postfix.deferred} deferred, ${postfix.postfix.bounced} bounced.`);
  for (const [name, r] of Object.entries({ direct, zegel, baseline, secure, postfix })) {
    if (r?.runs) notes.push(`${name} runs (accepted/delivered msg/s): ${r.runs.map((x) => `${fmtRate(x.accepted)}/${fmtRate(x.delivered)}`).join(', ')}.`);
  }
  for (const [name, r] of Object.entries({ direct, zegel, secure, postfix })) if (r?.sourceOutput) notes.push(`smtp-source (${name}) printed: \`${r.sourceOutput.slice(0, 200).replace(/\s+/g, ' ')}\``);
  if (notes.length) lines.push(...notes.map((n) => `- ${n}`), '');
  return lines.join('\n');
}

const START = '<!-- results:start (bench/relay.mjs writes below; newest run first) -->';
const END = '<!-- results:end -->';
const MARKERS = { start: START, end: END, heading: '## Results' };
const writeReadme = (section) => writeResults(README, MARKERS, section);

// ---------------------------------------------------------------- main

let cleaning;
export async function cleanup() {
  cleaning ??= (async () => {
    for (const conf of [...postfixInstances]) {
      const entry = [...children].find((c) => c.name === 'postfix');
      await stopPostfix(conf, entry).catch((err) => log(`stopping postfix: ${err.message}`));
    }
    await Promise.all([...children].map((c) => stopChild(c, c.name.startsWith('zegel') ? 10_000 : 3_000)));
    if (tmpRoot) fs.rmSync(tmpRoot, { recursive: true, force: true, maxRetries: 3 });
  })();
  return cleaning;
}


async function main() {
  for (const tool of [SMTP_SINK, SMTP_SOURCE]) if (!fs.existsSync(tool)) throw new Error(`${tool} not found (Debian package postfix)`);
  if (!fs.existsSync(path.join(root, 'dist', 'src', 'cli', 'main.js'))) throw new Error('dist/ is missing: run `npm run build` (npm run bench:relay does)');
  tmpRoot = fs.mkdtempSync(path.join(os.tmpdir(), 'zegel-bench-'));
  const m = runMachine();
  log(`${m.date}; ${m.nproc} cores; Node ${m.node}; Postfix ${m.postfix}; temp ${tmpRoot}`);
  const results = {};
  const repeated = async (run) => {
    const runs = [];
    for (let i = 0; i < REPEAT; i++) runs.push(await run());
    return aggregate(runs);
  };
  if (ONLY.has('direct')) results.direct = await repeated(runDirect);
  if (ONLY.has('zegel') && BASELINE_BIN) {
    // alternating, so drift in the machine's speed hits both versions alike
    const runs = { zegel: [], baseline: [] };
    for (let i = 0; i < REPEAT; i++) {
      runs.zegel.push(await runZegel());
      runs.baseline.push(await runZegel(BASELINE_BIN));
    }
    results.zegel = aggregate(runs.zegel);
    results.baseline = aggregate(runs.baseline);
  } else if (ONLY.has('zegel')) results.zegel = await repeated(() => runZegel());
  if (ONLY.has('secure')) results.secure = await repeated(runSecure);
  if (ONLY.has('postfix')) {
    if (!IS_ROOT) log('postfix: skipped (a private Postfix master must be started by root)');
    else results.postfix = await repeated(runPostfix);
  }
  if (ONLY.has('big') && BIG_MB > 0) results.big = await runBig();
  const section = report(results, m);
  process.stdout.write(`\n${section}\n`);
  if (process.env.BENCH_NO_README !== '1') {
    writeReadme(section);
    log(`results written to ${path.relative(process.cwd(), README) || README}`);
  }
}

// bench/cluster.mjs imports this module for its plumbing, sinks and load; only
// `node bench/relay.mjs` runs the relay benchmark itself
if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) await runMain(main, cleanup, log);
