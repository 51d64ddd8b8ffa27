#!/usr/bin/env node
// Reader benchmark: the recipient's reader (src/reader/server.ts, startReader)
// under 20 concurrent clients against a static file served by the same
// Fastify instance, the e-mail-code path, and one 200 MiB attachment download
// against reading the same file from disk, with the reader's RSS growth.
// Run with `npm run bench:reader` (it builds first). Everything runs on
// 127.0.0.x; the reader child is stopped and the temporary directory removed
// at the end, also on failure or Ctrl-C. Results go to stdout and into
// bench/README.md (between the reader-results markers; newest run first).
//
// How the secure messages are made: with the relay's own code from dist/, not
// by SMTP. The script writes what the secure job (src/pipeline/secure-job.ts)
// leaves behind: a SecureContent body (src/crypto/content.ts) encrypted with
// encryptBytes and an attachment encrypted with encryptStream
// (src/crypto/payload.ts: OpenPGP SEIPDv2, AES-256-GCM under a fresh content
// key), both written through BlobStore.write (src/store/blobs.ts); the message
// row through MessageRepository.insertReceived and the secure message and its
// links (wrap and K_srv from src/crypto/key-schedule.ts) through
// SecureStore.insert, all on SqliteBackend (src/store/sqlite-backend.ts, the
// relay's store). Then a child process opens that data directory and runs
// startReader with SqliteBackend as its store, createSecureReader, the system
// clock, a pino logger at info into a file, and the configuration parsed by
// parseConfig, as src/relay.ts does. Differences from the relay: the mailer
// hands the one-time code to this script over IPC instead of composing and
// queueing a mail (as test/helpers/reader-fixture.ts records it), and there is
// no status service. Rate limits stay on (their hooks are part of the cost),
// with every limit raised so that the load is never refused.
//
// Measured:
//  1. latency: BENCH_CLIENTS clients, each from its own 127.0.0.x address with
//     one keep-alive connection and its own link (check `none`, verified once
//     before the timing), repeat the sequence page (GET /m/<id>) + open
//     (POST /api/links/<id>/open with X-Zegel-Reader: 1 and the session
//     cookie) + the body blob (GET /api/links/<id>/blobs/<body>, ~50 KB of
//     ciphertext). Baseline in the same run, same clients, same connections
//     pattern: GET /assets/<file> of the same reader instance, a static file of
//     exactly the blob's size in the reader's assets directory (the reader's
//     own static route, its hooks and rate-limit check included), three
//     requests per sequence. Reference (no target): a plain Fastify with one
//     route streaming the same file, in the reader's process. Phases
//     alternate (static, reader, plain) for BENCH_ROUNDS rounds after a
//     warm-up; percentiles are over all rounds.
//     Target: p99 of the reader ≤ 3× p99 of the static file, per request and
//     per sequence (sequence against three static requests).
//  2. e-mail code: each client, on fresh links (one per try: codes are
//     limited per link), opens the link, asks for a code (POST …/code) and
//     verifies it (POST …/verify); the code comes from the mailer callback.
//     Reported separately, no target.
//  3. big download: a BENCH_BIG_MB MiB attachment (ciphertext) through the
//     reader's blob route for one verified client, against fs.createReadStream
//     of the same blob file (its defaults: 64 KiB reads) into a discarding sink
//     in this process; BENCH_BIG_REPEAT rounds, medians. The client is the
//     script's own `download()`: a fresh connection, the answer's head parsed
//     by hand, the body read with net's `onread` into one reused 1 MiB buffer
//     and counted against Content-Length (before the rounds, one download is
//     SHA-256-hashed against the file). Node's http client costs more CPU than
//     the reader on 2 shared cores (a buffer and a 'data' event per 64 KiB), so
//     it is only a reference row now. Each round also runs, in this order,
//     `curl -o /dev/null` of the same URL (cross-check), Node's http client,
//     and three plain Fastify routes in the reader's process streaming the
//     same file without checks (fs.createReadStream with 64 KiB and with
//     1 MiB reads, BlobReadStream), with the reader's CPU (user, system) and
//     minor page faults per transfer. The reader child's peak RSS is reset
//     before each download through the reader (/proc/<pid>/clear_refs, "5")
//     and read from VmHWM after it (VmRSS is also sampled every 20 ms).
//     Targets: download ≥ 0.5× the disk read's speed; reader RSS growth
//     ≤ 150 MB. BENCH_ONLY=big runs only this part.
//
// Knobs (environment):
//   BENCH_CLIENTS     concurrent clients                        (default 20)
//   BENCH_ADDRESSES   client source addresses 127.0.0.2 …       (default 20; 0: all from 127.0.0.1)
//   BENCH_SEQUENCES   sequences per client per phase and round  (default 100)
//   BENCH_ROUNDS      rounds of static / reader / plain          (default 3)
//   BENCH_WARMUP      warm-up sequences per client per phase    (default 10)
//   BENCH_BODY_KB     size of the body blob, KiB                (default 50)
//   BENCH_VERIFY      e-mail-code tries per client              (default 10; 0 skips)
//   BENCH_BIG_MB      attachment size, MiB                      (default 200; 0 skips)
//   BENCH_BIG_REPEAT  rounds of the big download                (default 5)
//   BENCH_ONLY        comma list of latency,verify,big          (default: all)
//   BENCH_LOG_LEVEL   the reader's log level                    (default info)
//   BENCH_BLOB_HWM    experiment: the reader's blob streams are fs.createReadStream with this
//                     highWaterMark (a BlobStore subclass in the bench; 1048576 is how the reader
//                     read before BlobReadStream, commit b4eb617); default: the shipped BlobStore.
//                     The section says when it was set
//   BENCH_CPU_PROF    a directory: run the reader child with --cpu-prof there
//   BENCH_NO_README   1: print only, leave bench/README.md alone
import { execFile, spawn } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { clkTck, intEnv, machine, machineCpuSeconds, median, processCpuSeconds, procStatus, runMain } from './common.mjs';
import { writeResults } from './results.mjs';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const README = path.join(root, 'bench', 'README.md');
const DIST = path.join(root, 'dist', 'src');
const ASSETS = path.join(root, 'dist', 'reader');
const SELF = fileURLToPath(import.meta.url);

const ONLY = new Set((process.env.BENCH_ONLY || 'latency,verify,big').split(',').map((s) => s.trim()));
const CLIENTS = Math.max(1, intEnv('BENCH_CLIENTS', 20));
const ADDRESSES = Math.min(250, intEnv('BENCH_ADDRESSES', 20));
const SEQUENCES = Math.max(1, intEnv('BENCH_SEQUENCES', 100));
const ROUNDS = Math.max(1, intEnv('BENCH_ROUNDS', 3));
const WARMUP = intEnv('BENCH_WARMUP', 10);
const BODY_KB = Math.max(1, intEnv('BENCH_BODY_KB', 50));
const VERIFY = ONLY.has('verify') ? intEnv('BENCH_VERIFY', 10) : 0;
const BIG_MB = ONLY.has('big') ? intEnv('BENCH_BIG_MB', 200) : 0;
const BIG_REPEAT = Math.max(1, intEnv('BENCH_BIG_REPEAT', 5));
const LOG_LEVEL = process.env.BENCH_LOG_LEVEL || 'info';
const BLOB_HWM = intEnv('BENCH_BLOB_HWM', 0);
const CPU_PROF = process.env.BENCH_CPU_PROF ? path.resolve(process.env.BENCH_CPU_PROF) : undefined;
const TARGET_P99_RATIO = 3;
const TARGET_BIG_SPEED = 0.5;
const TARGET_RSS_MB = 150;
const MiB = 1024 * 1024;
/** Every limit of reader.rateLimit, raised: the plugin still runs, nothing is refused. */
const RAISED = { perAddress: 1_000_000_000, perLink: 1_000_000_000, window: '1m' };

const log = (message) => process.stderr.write(`[bench] ${message}\n`);
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const dist = (file) => import(pathToFileURL(path.join(DIST, file)).href);

// ---------------------------------------------------------------- the reader child

/**
 * `node bench/reader.mjs --reader <data dir> <assets dir> <static file> [<big file>]`: the
 * reader as src/relay.ts starts it (see the header), plus a plain Fastify on
 * another port that streams the static file (reference only). Talks to the
 * parent over IPC: `ready` with both URLs, `code` for every one-time code.
 */
async function readerChild(dataDir, assetsDir, staticFile, bigFile) {
  const { parseConfig } = await dist('config/load.js');
  const { SqliteBackend } = await dist('store/sqlite-backend.js');
  const { BlobStore, BlobReadStream, BLOB_READ_BYTES } = await dist('store/blobs.js');
  const { createSecureReader } = await dist('secure/index.js');
  const { startReader } = await dist('reader/server.js');
  const { LogSmsDriver } = await dist('secure/sms.js');
  const { createLogger } = await dist('log.js');
  const { systemClock } = await dist('clock.js');
  const { pino } = await import('pino');
  const Fastify = (await import('fastify')).default;

  const logger = createLogger(LOG_LEVEL, pino.destination({ dest: path.join(dataDir, '..', 'reader.log'), sync: false }));
  const config = parseConfig({
    data: { dir: dataDir },
    organisation: { name: 'Zorggroep Noord' },
    reader: { listen: '127.0.0.1:0', rateLimit: { enabled: true, pages: RAISED, api: RAISED, checks: RAISED } },
  });
  const backend = new SqliteBackend(dataDir, systemClock, logger);
  const secure = { store: backend, events: backend.events, repos: backend.secure, clock: systemClock };
  const reader = await startReader({
    config,
    secure: createSecureReader(secure),
    clock: systemClock,
    log: logger,
    secret: crypto.randomBytes(32),
    blobs: BLOB_HWM ? new (blobStoreWithReadSize(BlobStore))(dataDir) : new BlobStore(dataDir),
    sms: new LogSmsDriver(logger),
    accessCodes: async () => [],
    assetsDir,
    mailer: {
      // the relay composes a mail here and queues it (spool fsync + commit); the bench hands the code over
      sendCode: async (link, code) => {
        process.send({ type: 'code', linkId: link.id, code });
      },
      notifyForgot: async () => undefined,
    },
  });
  const size = fs.statSync(staticFile).size;
  const plain = Fastify({ logger: false });
  plain.get('/static.bin', async (_request, reply) => reply.type('application/octet-stream').header('content-length', size).send(fs.createReadStream(staticFile)));
  // the big attachment's blob file, streamed without any of the reader's checks (references): Fastify's usual
  // way (fs.createReadStream, 64 KiB reads), the reader's stream before BlobReadStream (1 MiB reads, a fresh
  // buffer each), and BlobReadStream itself
  if (bigFile) {
    const bigSize = fs.statSync(bigFile).size;
    const send = (stream) => async (_request, reply) => reply.type('application/octet-stream').header('content-length', bigSize).send(stream());
    plain.get('/big-64k.bin', send(() => fs.createReadStream(bigFile)));
    plain.get('/big-1m.bin', send(() => fs.createReadStream(bigFile, { highWaterMark: BLOB_READ_BYTES })));
    plain.get('/big-blob.bin', send(() => new BlobReadStream(bigFile)));
  }
  await plain.listen({ host: '127.0.0.1', port: 0 });
  const plainUrl = `http://127.0.0.1:${plain.server.address().port}`;
  process.on('message', async (m) => {
    if (m?.type !== 'stop') return;
    await plain.close();
    await reader.close();
    await backend.close();
    logger.flush?.();
    process.exit(0);
  });
  process.send({ type: 'ready', url: reader.url, plainUrl });
}

/** The experiment BENCH_BLOB_HWM: open() is fs.createReadStream reading BLOB_HWM bytes at a time, a fresh buffer each (not the shipped code). */
function blobStoreWithReadSize(BlobStore) {
  return class extends BlobStore {
    open(secureId, blobId) {
      for (const id of [secureId, blobId]) if (!/^[A-Za-z0-9_-]{1,64}$/.test(id)) throw new RangeError('invalid blob id');
      return fs.createReadStream(path.join(this.dir, secureId, `${blobId}.pgp`), { highWaterMark: BLOB_HWM });
    }
  };
}

// ---------------------------------------------------------------- plumbing

let tmpRoot;
let child;

function cleanup() {
  if (child && child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  if (tmpRoot) fs.rmSync(tmpRoot, { recursive: true, force: true });
  tmpRoot = undefined;
}

const percentile = (sorted, p) => (sorted.length ? sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] : NaN);
function stats(samples) {
  const s = [...samples].sort((a, b) => a - b);
  return { n: s.length, p50: percentile(s, 50), p90: percentile(s, 90), p99: percentile(s, 99), max: s[s.length - 1] ?? NaN };
}

// ---------------------------------------------------------------- HTTP client

/**
 * One client: its own source address and one keep-alive connection (as a
 * browser tab would reuse it), a cookie jar for the reader's session cookie.
 */
class Client {
  constructor(index, base) {
    this.base = new URL(base);
    this.address = ADDRESSES ? `127.0.0.${2 + (index % ADDRESSES)}` : '127.0.0.1';
    this.agent = new http.Agent({ keepAlive: true, maxSockets: 1, localAddress: this.address });
    this.cookie = undefined;
  }

  /** Resolves when the whole answer is read: { status, ms, bytes, json }. The body is discarded unless JSON. */
  request(method, urlPath, { body, base = this.base, sink } = {}) {
    const headers = {};
    if (method === 'POST') headers['x-zegel-reader'] = '1';
    if (body !== undefined) headers['content-type'] = 'application/json';
    if (this.cookie) headers.cookie = `zegel_rs=${this.cookie}`;
    const payload = body === undefined ? undefined : JSON.stringify(body);
    if (payload !== undefined) headers['content-length'] = Buffer.byteLength(payload);
    const t0 = performance.now();
    return new Promise((resolve, reject) => {
      const req = http.request({ host: base.hostname, port: base.port, method, path: urlPath, headers, agent: this.agent }, (res) => {
        const headersMs = performance.now() - t0;
        const set = res.headers['set-cookie'];
        for (const c of set ?? []) {
          const m = /^zegel_rs=([^;]*)/.exec(c);
          if (m) this.cookie = m[1];
        }
        const json = /json/.test(res.headers['content-type'] ?? '');
        const chunks = [];
        let bytes = 0;
        res.on('data', (chunk) => {
          bytes += chunk.length;
          if (json) chunks.push(chunk);
          sink?.(chunk);
        });
        res.on('end', () => {
          const ms = performance.now() - t0;
          let parsed;
          if (json) {
            try {
              parsed = JSON.parse(Buffer.concat(chunks).toString('utf8'));
            } catch {
              parsed = undefined;
            }
          }
          resolve({ status: res.statusCode, ms, headersMs, bytes, json: parsed });
        });
        res.on('error', reject);
      });
      req.on('error', reject);
      req.end(payload);
    });
  }

  close() {
    this.agent.destroy();
  }
}

function expect(res, status, what) {
  if (res.status !== status) throw new Error(`${what}: HTTP ${res.status}${res.json ? ` ${JSON.stringify(res.json)}` : ''} (expected ${status})`);
  return res;
}

// ---------------------------------------------------------------- setup

/** Text of roughly `bytes` characters for a message body (Dutch office prose, ASCII). */
function bodyText(bytes) {
  const words = 'de het een en van in is op te dat met voor zijn aan niet er om ook als bij maar uit dan nog wel afspraak behandeling verslag patient huisarts verwijzing controle week maandag dinsdag uitslag'.split(' ');
  const out = [];
  let n = 0;
  let i = 0;
  while (n < bytes) {
    const w = words[(i * 7919 + (i >> 3)) % words.length];
    const piece = i % 14 === 13 ? `${w}.\r\n` : `${w} `;
    out.push(piece);
    n += piece.length;
    i++;
  }
  return out.join('').slice(0, bytes);
}

/**
 * Writes the secure messages into a fresh data directory the way the secure
 * job leaves them (see the header). Returns the links and blobs per purpose.
 */
async function makeData(dataDir) {
  const { SqliteBackend } = await dist('store/sqlite-backend.js');
  const { BlobStore } = await dist('store/blobs.js');
  const { newKey, newSecureId, wrapKey } = await dist('crypto/key-schedule.js');
  const { encryptBytes, encryptStream } = await dist('crypto/payload.js');
  const { createLogger } = await dist('log.js');
  const { systemClock } = await dist('clock.js');
  const logger = createLogger('warn');
  const backend = new SqliteBackend(dataDir, systemClock, logger);
  const blobs = new BlobStore(dataDir);
  const now = Date.now();

  /** One secure message with `recipients` links of `method`; attachmentBytes > 0 adds an attachment blob. */
  async function message(recipients, method, { textBytes, attachmentBytes = 0 }) {
    const queueId = `bench${crypto.randomBytes(6).toString('hex')}`;
    const secureId = newSecureId();
    const contentKey = newKey();
    const stored = [];
    const attachments = [];
    if (attachmentBytes) {
      const id = newSecureId();
      const chunk = crypto.randomBytes(MiB);
      async function* plaintext() {
        for (let left = attachmentBytes; left > 0; left -= chunk.length) yield left >= chunk.length ? chunk : chunk.subarray(0, left);
      }
      const bytes = await blobs.write(secureId, id, await encryptStream(contentKey, Readable.from(plaintext())));
      stored.push({ id, bytes });
      attachments.push({ blob: id, name: 'scan.pdf', contentType: 'application/pdf', size: attachmentBytes });
    }
    const content = {
      v: 1,
      from: 'Jan de Vries <jan@noord.nl>',
      to: recipients.map((_, i) => `ontvanger${i}@voorbeeld.nl`),
      cc: [],
      date: new Date(now).toISOString(),
      subject: 'Uitslag onderzoek',
      text: bodyText(textBytes),
      attachments,
    };
    const bodyBlob = newSecureId();
    const ciphertext = await encryptBytes(contentKey, Buffer.from(JSON.stringify(content), 'utf8'));
    const bodyBytes = await blobs.write(secureId, bodyBlob, Readable.from([Buffer.from(ciphertext)]));
    stored.unshift({ id: bodyBlob, bytes: bodyBytes });
    const links = recipients.map((address, idx) => {
      const linkId = newSecureId();
      const kSrv = newKey();
      return { id: linkId, recipientIdx: idx, address, method, language: 'nl', wrap: wrapKey(contentKey, newKey(), kSrv, secureId, linkId), kSrv, notificationId: `${queueId}-n${idx}` };
    });
    await backend.transaction(async (tx) => {
      await backend.messages.insertReceived(tx, { id: queueId, receivedAt: now, mailFrom: 'jan@noord.nl', size: textBytes + attachmentBytes, origin: 'ingress', recipients: recipients.map((address) => ({ address })) });
      await backend.secure.secure.insert(tx, { id: secureId, queueId, sender: 'jan@noord.nl', createdAt: now, expiresAt: now + 30 * 86400e3, bodyBlob, blobs: stored, threadId: secureId }, links);
    });
    return { secureId, bodyBlob, bodyBytes, attachment: stored[1], links: links.map((l) => l.id) };
  }

  // the body blob should come out at BODY_KB KiB: the OpenPGP framing adds a few dozen bytes
  const target = BODY_KB * 1024;
  const probe = await encryptBytes(newKey(), Buffer.from(JSON.stringify({ v: 1, from: 'Jan de Vries <jan@noord.nl>', to: ['ontvanger0@voorbeeld.nl'], cc: [], date: new Date(now).toISOString(), subject: 'Uitslag onderzoek', text: '', attachments: [] }), 'utf8'));
  const textBytes = Math.max(0, target - probe.length);
  const latency = [];
  for (let i = 0; i < CLIENTS; i++) latency.push(await message([`ontvanger${i}@voorbeeld.nl`], 'none', { textBytes }));
  const verify = [];
  if (VERIFY) {
    // one link per try (codes are limited per link), 20 recipients per message
    const total = CLIENTS * VERIFY;
    for (let made = 0; made < total; made += 20) {
      const n = Math.min(20, total - made);
      const m = await message(Array.from({ length: n }, (_, i) => `ontvanger${made + i}@voorbeeld.nl`), 'email-code', { textBytes: 2000 });
      verify.push(...m.links);
    }
  }
  const big = BIG_MB ? await message(['groot@voorbeeld.nl'], 'none', { textBytes: 2000, attachmentBytes: BIG_MB * MiB }) : undefined;
  await backend.close();
  return { latency, verify, big, blobPath: (secureId, blobId) => path.join(blobs.dir, secureId, `${blobId}.pgp`) };
}

function startReaderChild(dataDir, assetsDir, staticFile, bigFile) {
  const args = [...(CPU_PROF ? ['--cpu-prof', `--cpu-prof-dir=${CPU_PROF}`] : []), SELF, '--reader', dataDir, assetsDir, staticFile, ...(bigFile ? [bigFile] : [])];
  child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe', 'ipc'], env: { ...process.env, NODE_ENV: 'production' } });
  let errors = '';
  child.stdout.resume();
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (d) => {
    errors = (errors + d).slice(-8000);
  });
  const codes = new Map();
  const waiting = new Map();
  child.on('message', (m) => {
    if (m?.type !== 'code') return;
    const w = waiting.get(m.linkId);
    if (w) {
      waiting.delete(m.linkId);
      w(m.code);
    } else codes.set(m.linkId, m.code);
  });
  const ready = new Promise((resolve, reject) => {
    child.on('message', (m) => m?.type === 'ready' && resolve(m));
    child.on('exit', (code) => reject(new Error(`reader child exited (${code}): ${errors}`)));
  });
  return {
    proc: child,
    ready,
    /** The one-time code the mailer got for a link. */
    code(linkId) {
      const c = codes.get(linkId);
      if (c !== undefined) {
        codes.delete(linkId);
        return Promise.resolve(c);
      }
      return new Promise((resolve) => waiting.set(linkId, resolve));
    },
    async stop() {
      if (child.exitCode !== null) return;
      const exited = new Promise((resolve) => child.once('exit', resolve));
      child.send({ type: 'stop' });
      await Promise.race([exited, sleep(10_000)]);
      if (child.exitCode === null) child.kill('SIGKILL');
    },
  };
}

// ---------------------------------------------------------------- phases

/** Runs `fn(client, i)` SEQUENCES times per client, all clients at once; returns the wall time and CPU use. */
async function phase(clients, count, fn, readerPid) {
  const cpu0 = processCpuSeconds(readerPid);
  const m0 = machineCpuSeconds();
  const t0 = performance.now();
  await Promise.all(clients.map(async (c, ci) => {
    for (let i = 0; i < count; i++) await fn(c, ci, i);
  }));
  const seconds = (performance.now() - t0) / 1000;
  return { seconds, readerCpu: processCpuSeconds(readerPid) - cpu0, busyCores: (machineCpuSeconds() - m0) / seconds };
}

async function latencyBench(urls, data, staticName, readerPid) {
  const clients = data.latency.map((_, i) => new Client(i, urls.url));
  // each client verifies its link once (check none): afterwards its session is verified, as for a returning reader
  const verifyNone = [];
  await Promise.all(clients.map(async (c, i) => {
    const { links } = data.latency[i];
    expect(await c.request('GET', `/m/${links[0]}`), 200, 'page');
    const open = expect(await c.request('POST', `/api/links/${links[0]}/open`), 200, 'open');
    if (open.json?.state !== 'pending-check') throw new Error(`open: state ${open.json?.state}`);
    const v = expect(await c.request('POST', `/api/links/${links[0]}/verify`), 200, 'verify (none)');
    verifyNone.push(v.ms);
  }));
  const plainBase = new URL(urls.plainUrl);
  const plainClients = clients.map((c, i) => new Client(i, urls.plainUrl));
  const samples = {
    static: { seq: [], req: [] },
    plain: { seq: [], req: [] },
    reader: { seq: [], page: [], open: [], blob: [] },
  };
  const runs = { static: [], plain: [], reader: [] };
  const staticSeq = (record) => async (c) => {
    const t0 = performance.now();
    for (let k = 0; k < 3; k++) {
      const r = expect(await c.request('GET', `/assets/${staticName}`), 200, 'static');
      record?.req.push(r.ms);
    }
    record?.seq.push(performance.now() - t0);
  };
  const plainSeq = (record) => async (c) => {
    const t0 = performance.now();
    for (let k = 0; k < 3; k++) {
      const r = expect(await c.request('GET', '/static.bin', { base: plainBase }), 200, 'plain');
      record?.req.push(r.ms);
    }
    record?.seq.push(performance.now() - t0);
  };
  const readerSeq = (record) => async (c, ci) => {
    const { links, bodyBlob, bodyBytes } = data.latency[ci];
    const id = links[0];
    const t0 = performance.now();
    const page = expect(await c.request('GET', `/m/${id}`), 200, 'page');
    const open = expect(await c.request('POST', `/api/links/${id}/open`), 200, 'open');
    if (open.json?.state !== 'verified') throw new Error(`open: state ${open.json?.state}, expected verified`);
    const blob = expect(await c.request('GET', `/api/links/${id}/blobs/${bodyBlob}`), 200, 'body blob');
    if (blob.bytes !== bodyBytes) throw new Error(`body blob: ${blob.bytes} bytes, expected ${bodyBytes}`);
    if (record) {
      record.seq.push(performance.now() - t0);
      record.page.push(page.ms);
      record.open.push(open.ms);
      record.blob.push(blob.ms);
    }
  };
  if (WARMUP) {
    log(`warm-up: ${WARMUP} sequences per client per phase`);
    await phase(clients, WARMUP, staticSeq(), readerPid);
    await phase(clients, WARMUP, readerSeq(), readerPid);
    await phase(plainClients, WARMUP, plainSeq(), readerPid);
  }
  for (let r = 0; r < ROUNDS; r++) {
    const s = await phase(clients, SEQUENCES, staticSeq(samples.static), readerPid);
    runs.static.push(s);
    const z = await phase(clients, SEQUENCES, readerSeq(samples.reader), readerPid);
    runs.reader.push(z);
    const p = await phase(plainClients, SEQUENCES, plainSeq(samples.plain), readerPid);
    runs.plain.push(p);
    log(`round ${r + 1}/${ROUNDS}: static ${(s.seconds).toFixed(2)} s, reader ${(z.seconds).toFixed(2)} s, plain ${(p.seconds).toFixed(2)} s (${CLIENTS} × ${SEQUENCES} sequences each)`);
  }
  for (const c of [...clients, ...plainClients]) c.close();
  return {
    verifyNone: stats(verifyNone),
    static: { seq: stats(samples.static.seq), req: stats(samples.static.req) },
    plain: { seq: stats(samples.plain.seq), req: stats(samples.plain.req) },
    reader: { seq: stats(samples.reader.seq), page: stats(samples.reader.page), open: stats(samples.reader.open), blob: stats(samples.reader.blob) },
    runs,
    bodyBytes: data.latency[0].bodyBytes,
  };
}

async function verifyBench(urls, data, reader, readerPid) {
  const samples = { open: [], code: [], verify: [], seq: [], delivered: [] };
  const clients = Array.from({ length: CLIENTS }, (_, i) => new Client(i, urls.url));
  const run = await phase(clients, VERIFY, async (c, ci, i) => {
    const id = data.verify[ci * VERIFY + i];
    c.cookie = undefined; // a fresh visitor: a new pre-session
    const t0 = performance.now();
    const open = expect(await c.request('POST', `/api/links/${id}/open`), 200, 'open');
    if (open.json?.state !== 'pending-check') throw new Error(`open: state ${open.json?.state}`);
    const sent = expect(await c.request('POST', `/api/links/${id}/code`), 200, 'code');
    const t1 = performance.now();
    const code = await reader.code(id);
    samples.delivered.push(performance.now() - t1);
    const t2 = performance.now();
    const verified = expect(await c.request('POST', `/api/links/${id}/verify`, { body: { code } }), 200, 'verify');
    if (verified.json?.state !== 'verified') throw new Error('verify: not verified');
    samples.seq.push(t1 - t0 + (performance.now() - t2));
    samples.open.push(open.ms);
    samples.code.push(sent.ms);
    samples.verify.push(verified.ms);
  }, readerPid);
  for (const c of clients) c.close();
  return { run, tries: samples.seq.length, open: stats(samples.open), code: stats(samples.code), verify: stats(samples.verify), seq: stats(samples.seq), delivered: stats(samples.delivered) };
}

/** User and system CPU seconds and minor page faults of a process so far (/proc/<pid>/stat). */
function procTimes(pid) {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return { minflt: Number(f[7]), user: Number(f[11]) / clkTck(), system: Number(f[12]) / clkTck() };
}

// ---------------------------------------------------------------- download client

/**
 * The big download's client: one fresh connection from `localAddress`, the
 * answer parsed by hand (status line, headers, Content-Length; a chunked or
 * length-less answer is refused), the body read with net's `onread` into one
 * 1 MiB buffer that is reused for every read (no buffer per read, no 'data'
 * events, no HTTP parser per piece) and counted; with `hash`, also SHA-256
 * hashed. It resolves when Content-Length body bytes arrived (more is an
 * error). This is what a client that does nothing with the bytes costs: Node's
 * http client allocates a buffer per 64 KiB read and emits a 'data' event
 * for each, which on 2 shared cores took as much CPU as the reader itself.
 */
const downloadBuffer = Buffer.allocUnsafe(MiB);
function download(base, urlPath, { cookie, localAddress, hash = false }) {
  const url = new URL(base);
  const t0 = performance.now();
  return new Promise((resolve, reject) => {
    let head = Buffer.alloc(0);
    let res;
    let length = 0;
    let done = false;
    const sha = hash ? crypto.createHash('sha256') : undefined;
    const body = [];
    const fail = (err) => {
      if (done) return;
      done = true;
      socket.destroy();
      reject(err);
    };
    const onread = (n, buffer) => {
      if (done) return false;
      let piece = buffer.subarray(0, n);
      if (!res) {
        head = Buffer.concat([head, piece]);
        const end = head.indexOf('\r\n\r\n');
        if (end < 0) return true;
        const lines = head.subarray(0, end).toString('latin1').split('\r\n');
        const headers = {};
        for (const line of lines.slice(1)) {
          const colon = line.indexOf(':');
          headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
        }
        if (headers['transfer-encoding'] || headers['content-length'] === undefined) {
          fail(new Error(`download: an answer without Content-Length (${headers['transfer-encoding'] ?? 'no length'})`));
          return false;
        }
        res = { status: Number(lines[0].split(' ')[1]), headers, bytes: 0, headersMs: performance.now() - t0 };
        length = Number(headers['content-length']);
        piece = head.subarray(end + 4);
      }
      res.bytes += piece.length;
      sha?.update(piece);
      if (res.status !== 200) body.push(Buffer.from(piece));
      if (res.bytes > length) {
        fail(new Error(`download: more than Content-Length ${length} bytes`));
        return false;
      }
      if (res.bytes === length) {
        done = true;
        res.ms = performance.now() - t0;
        socket.destroy();
        if (sha) res.sha256 = sha.digest('hex');
        if (res.status !== 200) res.text = Buffer.concat(body).toString('utf8');
        resolve(res);
        return false;
      }
      return true;
    };
    const socket = net.connect({ host: url.hostname, port: Number(url.port), localAddress, onread: { buffer: downloadBuffer, callback: onread } });
    socket.on('error', fail);
    socket.on('end', () => fail(new Error(`download: connection ended after ${res?.bytes ?? 0} of ${length} body bytes`)));
    socket.write(`GET ${urlPath} HTTP/1.1\r\nHost: ${url.host}\r\n${cookie ? `Cookie: zegel_rs=${cookie}\r\n` : ''}Connection: close\r\n\r\n`);
  });
}

/** `curl -o /dev/null` of the same URL (an independent client, for comparison); undefined without curl. */
function curlDownload(base, urlPath, { cookie, localAddress }) {
  return new Promise((resolve, reject) => {
    const args = ['-sS', '-o', '/dev/null', '--interface', localAddress, '-w', '%{http_code} %{size_download} %{time_starttransfer} %{time_total}'];
    if (cookie) args.push('-H', `Cookie: zegel_rs=${cookie}`);
    args.push(`${base}${urlPath}`);
    const t0 = performance.now();
    execFile('curl', args, { encoding: 'utf8' }, (err, stdout) => {
      if (err) return err.code === 'ENOENT' ? resolve(undefined) : reject(err);
      const [status, bytes, firstByte, total] = stdout.trim().split(' ').map(Number);
      resolve({ status, bytes, ms: performance.now() - t0, curlMs: total * 1000, headersMs: firstByte * 1000 });
    });
  });
}

function sha256File(file) {
  return new Promise((resolve, reject) => {
    const hash = crypto.createHash('sha256');
    fs.createReadStream(file, { highWaterMark: MiB })
      .on('data', (chunk) => hash.update(chunk))
      .on('end', () => resolve(hash.digest('hex')))
      .on('error', reject);
  });
}

/**
 * The transfers of one big-download round, in this order, each of the whole
 * blob: key, what, and how (resolves { status, bytes, ms, headersMs }).
 */
function bigTransfers(urls, blobPath, opts, nodeClient) {
  const plain = (file) => () => download(urls.plainUrl, file, { localAddress: opts.localAddress });
  return [
    ['reader', "bench client → reader `GET /api/links/<id>/blobs/<attachment>` (**the target**)", () => download(urls.url, blobPath, opts)],
    ['curl', 'curl -o /dev/null → reader, same URL (cross-check; curl\'s own time_total)', () => curlDownload(urls.url, blobPath, opts)],
    ['node', "Node's http client ('data' events) → reader, same URL (the client this bench used before)", () => nodeClient.request('GET', blobPath)],
    ['plain64k', 'bench client → plain Fastify route, `fs.createReadStream` (64 KiB reads)', plain('/big-64k.bin')],
    ['plain1m', 'bench client → plain Fastify route, `fs.createReadStream` with 1 MiB reads (the reader\'s stream before)', plain('/big-1m.bin')],
    ['plainBlob', 'bench client → plain Fastify route, `BlobReadStream` (the reader\'s stream now)', plain('/big-blob.bin')],
  ];
}

async function bigBench(urls, data, readerPid) {
  const { links, attachment } = data.big;
  const file = data.blobPath(data.big.secureId, attachment.id);
  const c = new Client(0, urls.url);
  const nodeClient = new Client(0, urls.url);
  expect(await c.request('GET', `/m/${links[0]}`), 200, 'page');
  expect(await c.request('POST', `/api/links/${links[0]}/open`), 200, 'open');
  expect(await c.request('POST', `/api/links/${links[0]}/verify`), 200, 'verify (none)');
  nodeClient.cookie = c.cookie;
  const blobPath = `/api/links/${links[0]}/blobs/${attachment.id}`;
  const opts = { cookie: c.cookie, localAddress: c.address };
  // the bytes: one download hashed against the file (untimed), then the timed ones count them
  const [fileSha, checked] = await Promise.all([sha256File(file), download(urls.url, blobPath, { ...opts, hash: true })]);
  if (checked.status !== 200 || checked.sha256 !== fileSha) throw new Error(`big: the download differs from the blob file (HTTP ${checked.status}, ${checked.bytes} bytes)`);
  log(`big: a download hashed against the blob file: the same ${checked.bytes} bytes (SHA-256 ${fileSha.slice(0, 16)}…)`);
  const canReset = (() => {
    try {
      fs.writeFileSync(`/proc/${readerPid}/clear_refs`, '5');
      return true;
    } catch {
      return false;
    }
  })();
  const clientCpu = () => {
    const u = process.cpuUsage();
    return (u.user + u.system) / 1e6;
  };
  const speed = (bytes, ms) => bytes / MiB / (ms / 1000);
  const transfers = bigTransfers(urls, blobPath, opts, nodeClient);
  let curlMissing = false;
  const rounds = [];
  for (let r = 0; r < BIG_REPEAT; r++) {
    const round = {};
    // disk: the same file with fs.createReadStream's defaults, into a sink that drops the bytes
    let diskBytes = 0;
    let cc = clientCpu();
    const d0 = performance.now();
    await pipeline(fs.createReadStream(file), new Writable({ write(chunk, _enc, cb) { diskBytes += chunk.length; cb(); } }));
    round.disk = { mbs: speed(diskBytes, performance.now() - d0), clientCpu: clientCpu() - cc };
    if (diskBytes !== attachment.bytes) throw new Error(`big: ${diskBytes} bytes from disk, expected ${attachment.bytes}`);
    for (const [key, what, run] of transfers) {
      if (key === 'curl' && curlMissing) continue;
      let rss;
      if (key === 'reader') {
        await sleep(200); // let the reader's heap settle after the previous transfer
        if (canReset) fs.writeFileSync(`/proc/${readerPid}/clear_refs`, '5');
        const before = procStatus(readerPid);
        rss = { before: before.rss, sampled: before.rss };
        rss.sampler = setInterval(() => {
          try {
            rss.sampled = Math.max(rss.sampled, procStatus(readerPid).rss);
          } catch {
            /* gone */
          }
        }, 20);
      }
      const t0 = procTimes(readerPid);
      cc = clientCpu();
      const res = await run();
      const ccpu = clientCpu() - cc;
      const t1 = procTimes(readerPid);
      if (res === undefined) {
        curlMissing = true;
        continue;
      }
      if (res.status !== 200 || res.bytes !== attachment.bytes) throw new Error(`big, ${what}: HTTP ${res.status}, ${res.bytes} bytes, expected ${attachment.bytes}`);
      const ms = res.curlMs ?? res.ms;
      round[key] = {
        mbs: speed(res.bytes, ms),
        headersMs: res.headersMs,
        streamMBs: speed(res.bytes, ms - res.headersMs),
        readerCpu: t1.user - t0.user + (t1.system - t0.system),
        readerUser: t1.user - t0.user,
        readerSystem: t1.system - t0.system,
        readerFaults: t1.minflt - t0.minflt,
        clientCpu: key === 'curl' ? NaN : ccpu,
      };
      if (rss) {
        clearInterval(rss.sampler);
        const after = procStatus(readerPid);
        const peak = Math.max(canReset ? after.hwm : 0, rss.sampled, after.rss);
        Object.assign(round[key], { rssBefore: rss.before, peak, growth: peak - rss.before });
      }
    }
    rounds.push(round);
    const R = round.reader;
    log(`big ${r + 1}/${BIG_REPEAT}: disk ${round.disk.mbs.toFixed(0)} MiB/s; download ${R.mbs.toFixed(0)} MiB/s (headers after ${R.headersMs.toFixed(0)} ms; reader CPU ${R.readerCpu.toFixed(2)} s, client ${R.clientCpu.toFixed(2)} s; RSS ${mib(R.rssBefore)} → ${mib(R.peak)} MiB); ` +
      transfers.slice(1).map(([key]) => `${key} ${round[key] ? round[key].mbs.toFixed(0) : '—'}`).join(', ') + ' MiB/s');
  }
  c.close();
  nodeClient.close();
  const med = (key, field) => median(rounds.map((r) => r[key]?.[field]).filter((v) => v !== undefined));
  const rows = transfers
    .filter(([key]) => rounds.some((r) => r[key]))
    .map(([key, what]) => ({ key, what, ...Object.fromEntries(['mbs', 'readerCpu', 'readerUser', 'readerSystem', 'readerFaults', 'clientCpu', 'headersMs', 'streamMBs'].map((f) => [f, med(key, f)])) }));
  return {
    bytes: attachment.bytes,
    curlMissing,
    canReset,
    rounds,
    rows,
    diskMBs: med('disk', 'mbs'),
    diskCpu: med('disk', 'clientCpu'),
    httpMBs: med('reader', 'mbs'),
    growth: Math.max(...rounds.map((r) => r.reader.growth)),
    growthMedian: med('reader', 'growth'),
  };
}

// ---------------------------------------------------------------- report

function runMachine() {
  const fastify = JSON.parse(fs.readFileSync(path.join(root, 'node_modules', 'fastify', 'package.json'), 'utf8')).version;
  return { ...machine(), fastify };
}

const ms = (v) => (Number.isFinite(v) ? (v >= 100 ? v.toFixed(0) : v.toFixed(1)) : '—');
const x = (v) => (Number.isFinite(v) ? `${v.toFixed(2)}×` : 'n/a');
const mib = (b) => (b / MiB).toFixed(0);
const met = (ok) => (ok ? 'met' : '**not met**');

function report(r, m) {
  const lines = [`### Run of ${m.date}`, ''];
  lines.push(
    `Machine: ${m.nproc} cores (${m.model}), ${m.memGiB} GiB RAM, Linux ${m.kernel}; Node ${m.node}; Fastify ${m.fastify}; temp dirs on ${m.tmp}.`,
    `Load: ${CLIENTS} clients from ${ADDRESSES ? `${Math.min(ADDRESSES, CLIENTS)} addresses (127.0.0.2 …)` : '127.0.0.1'}, one keep-alive connection each; ${SEQUENCES} sequences per client per phase, ${ROUNDS} rounds (static, reader, plain) after ${WARMUP} warm-up sequences; reader log.level ${LOG_LEVEL}; rate limits on, raised. Busy cores in the second before the run (nothing of ours running): ${r.busyBefore.toFixed(2)}.`,
    '',
  );
  if (BLOB_HWM) lines.push(`**Experiment BENCH_BLOB_HWM=${BLOB_HWM}**: the reader's blob streams are \`fs.createReadStream\` reading ${BLOB_HWM} bytes at a time into a fresh buffer each (a BlobStore subclass in the bench, not the shipped code).`, '');
  if (r.busyBefore > 0.25) lines.push(`**The machine was busy before the run** (${r.busyBefore.toFixed(2)} of ${m.nproc} cores): other processes share the cores with the reader and the clients; read the ratios, not the absolute figures.`, '');
  if (r.latency) {
    const L = r.latency;
    const row = (what, s, base) => `| ${what} | ${s.n} | ${ms(s.p50)} | ${ms(s.p90)} | ${ms(s.p99)} | ${ms(s.max)} | ${base ? x(s.p99 / base.p99) : ''} |`;
    lines.push(`**Latency** (ms, client side, until the last byte; body blob ${L.bodyBytes} bytes of ciphertext, static file the same size):`, '');
    lines.push('| what | n | p50 | p90 | p99 | max | p99 / static p99 |', '|---|---:|---:|---:|---:|---:|---:|');
    lines.push(row('static file: `GET /assets/<file>` (same reader instance), one request', L.static.req));
    lines.push(row('reader: page `GET /m/<id>`', L.reader.page, L.static.req));
    lines.push(row('reader: open `POST /api/links/<id>/open`', L.reader.open, L.static.req));
    lines.push(row('reader: body blob `GET /api/links/<id>/blobs/<body>`', L.reader.blob, L.static.req));
    lines.push(row('static file, sequence of three requests', L.static.seq));
    lines.push(row('**reader sequence: page + open + body blob**', L.reader.seq, L.static.seq));
    lines.push(row('reference: plain Fastify streaming the file (other port, same process), one request', L.plain.req, L.static.req));
    lines.push(row('reference: plain Fastify, sequence of three', L.plain.seq, L.static.seq));
    lines.push('');
    const ratios = [L.reader.page, L.reader.open, L.reader.blob].map((s) => s.p99 / L.static.req.p99);
    const seqRatio = L.reader.seq.p99 / L.static.seq.p99;
    const ok = ratios.every((v) => v <= TARGET_P99_RATIO) && seqRatio <= TARGET_P99_RATIO;
    lines.push(`Latency target (p99 ≤ ${TARGET_P99_RATIO}× the static file's p99, each request and the sequence): ${met(ok)}: sequence ${x(seqRatio)}; page ${x(ratios[0])}, open ${x(ratios[1])}, body blob ${x(ratios[2])}.`, '');
    const cpuPer = (runs, n) => (runs.reduce((a, b) => a + b.readerCpu, 0) / n) * 1000;
    const total = CLIENTS * SEQUENCES * ROUNDS;
    const wall = (runs) => runs.reduce((a, b) => a + b.seconds, 0);
    lines.push(
      `- Throughput: reader ${(total / wall(L.runs.reader)).toFixed(0)} sequences/s (${((3 * total) / wall(L.runs.reader)).toFixed(0)} requests/s), static ${((3 * total) / wall(L.runs.static)).toFixed(0)} requests/s, plain ${((3 * total) / wall(L.runs.plain)).toFixed(0)} requests/s.`,
      `- Reader process CPU: ${cpuPer(L.runs.reader, total).toFixed(2)} ms per sequence, ${cpuPer(L.runs.static, 3 * total).toFixed(2)} ms per static request, ${cpuPer(L.runs.plain, 3 * total).toFixed(2)} ms per plain request; busy cores (of ${m.nproc}, clients included): reader ${median(L.runs.reader.map((p) => p.busyCores)).toFixed(2)}, static ${median(L.runs.static.map((p) => p.busyCores)).toFixed(2)}.`,
      `- Check \`none\` (POST …/verify without a code, once per client before the timing, 20 at once): p50 ${ms(L.verifyNone.p50)} ms, max ${ms(L.verifyNone.max)} ms.`,
      '',
    );
  }
  if (r.verify) {
    const V = r.verify;
    lines.push(`**E-mail code** (no target): ${V.tries} tries, ${CLIENTS} clients at once, a fresh link and a fresh visitor each; ms, client side:`, '');
    lines.push('| request | p50 | p90 | p99 | max |', '|---|---:|---:|---:|---:|');
    for (const [what, s] of [['open `POST …/open`', V.open], ['code request `POST …/code` (mailer callback included)', V.code], ['verify `POST …/verify` with the code', V.verify], ['open + code + verify', V.seq]]) {
      lines.push(`| ${what} | ${ms(s.p50)} | ${ms(s.p90)} | ${ms(s.p99)} | ${ms(s.max)} |`);
    }
    lines.push('', `Reader CPU ${((V.run.readerCpu / V.tries) * 1000).toFixed(2)} ms per try (open + code + verify); ${(V.tries / V.run.seconds).toFixed(0)} tries/s. The relay's mailer would also compose the code mail and queue it (spool write with fsync and a commit) inside the code request; the bench's mailer hands the code over IPC.`, '');
  }
  if (r.big) {
    const B = r.big;
    const speed = B.httpMBs / B.diskMBs;
    const growthMB = B.growth / 1e6;
    const s2 = (v) => (Number.isFinite(v) ? v.toFixed(2) : '—');
    const curl = B.rows.find((row) => row.key === 'curl');
    lines.push(
      `**Big attachment**: ${(B.bytes / MiB).toFixed(1)} MiB of ciphertext (${BIG_MB} MiB plaintext), ${BIG_REPEAT} rounds, medians: download **${B.httpMBs.toFixed(0)} MiB/s**, \`fs.createReadStream\` of the same file **${B.diskMBs.toFixed(0)} MiB/s** → **${x(speed)}** (target ≥ ${TARGET_BIG_SPEED}×: ${met(speed >= TARGET_BIG_SPEED)}); ` +
        (curl ? `cross-check \`curl -o /dev/null\` ${curl.mbs.toFixed(0)} MiB/s → ${x(curl.mbs / B.diskMBs)}. ` : 'curl not found: no cross-check. ') +
        `Reader RSS growth during a download: **${mib(B.growth)} MiB** at most (${growthMB.toFixed(0)} MB; target ≤ ${TARGET_RSS_MB} MB: ${met(growthMB <= TARGET_RSS_MB)}), median ${mib(B.growthMedian)} MiB.`,
      '',
      `Each round, in this order (medians; CPU seconds per transfer of the whole file; reader = the reader's process, the plain Fastify routes run in it too; client = this script):`,
      '',
      '| transfer | MiB/s | × disk | reader CPU s (user + system) | reader minor faults | client CPU s |',
      '|---|---:|---:|---:|---:|---:|',
      `| disk: \`fs.createReadStream\` (64 KiB reads) into a sink that drops the bytes | ${B.diskMBs.toFixed(0)} | 1.00× | — | — | ${s2(B.diskCpu)} |`,
      ...B.rows.map((row) => `| ${row.what} | ${row.mbs.toFixed(0)} | ${x(row.mbs / B.diskMBs)} | ${s2(row.readerCpu)} (${s2(row.readerUser)} + ${s2(row.readerSystem)}) | ${row.readerFaults.toFixed(0)} | ${s2(row.clientCpu)} |`),
      '',
      `- The bench client: \`download()\` in bench/reader.mjs, one fresh connection from ${ADDRESSES ? '127.0.0.2' : '127.0.0.1'} per transfer, the answer's head parsed by hand, the body read with net's \`onread\` into one reused 1 MiB buffer and counted against Content-Length. Before the timed rounds one download through the reader was SHA-256-hashed against the blob file: the same bytes. The reader's answer headers came after ${ms(B.rows[0].headersMs)} ms (median: the link and session checks, the \`downloaded\` event and the link's touch); from there ${B.rows[0].streamMBs.toFixed(0)} MiB/s.`,
      `- Reader RSS: ${mib(r.rssStart)} MiB after start, ${mib(r.rssBeforeBig)} MiB before the first download (after the phases above); growth = peak during a download through the reader with the bench client − RSS just before it. Peak: ${B.canReset ? 'VmHWM after resetting it (clear_refs 5) before each download, and' : 'clear_refs not writable: only'} VmRSS sampled every 20 ms.`,
      `- Rounds (disk / download MiB/s, reader RSS before → peak MiB): ${B.rounds.map((x) => `${x.disk.mbs.toFixed(0)} / ${x.reader.mbs.toFixed(0)}, ${mib(x.reader.rssBefore)} → ${mib(x.reader.peak)}`).join('; ')}.`,
      '- All reads come from the page cache (the blob was just written); client and reader share the machine\'s cores.',
      '',
    );
  }
  const notes = [];
  if (r.readerLog) notes.push(`The reader logged ${r.readerLog.lines} lines (${r.readerLog.warn} warn, ${r.readerLog.error} error).`);
  notes.push('Method: see the header of bench/reader.mjs. Messages are made with the relay\'s code (SecureContent encrypted with encryptBytes, the attachment with encryptStream, BlobStore.write, MessageRepository.insertReceived, SecureStore.insert on SqliteBackend); the reader runs in a child process as src/relay.ts starts it, with SqliteBackend and the system clock; its mailer hands codes over IPC.');
  lines.push(...notes.map((n) => `- ${n}`), '');
  return lines.join('\n');
}

const START = '<!-- reader-results:start (bench/reader.mjs writes below; newest run first) -->';
const END = '<!-- reader-results:end -->';
const MARKERS = {
  start: START,
  end: END,
  heading: [
    '# Reader benchmark',
    '',
    '```sh',
    'npm run bench:reader       # builds, then runs bench/reader.mjs (about 3 minutes)',
    '```',
    '',
    '`bench/reader.mjs` measures the recipient reader (startReader over SqliteBackend, messages encrypted with the',
    "relay's own code) in a child process, on loopback: (1) 20 clients from 127.0.0.2 … each repeating page +",
    'open + a ~50 KB body blob on a verified check-`none` link, against a static file of the same size served by',
    "the same Fastify instance (the reader's `/assets/` route), same clients, alternating rounds; target p99 ≤ 3×",
    "the static file's p99; (2) the e-mail-code path (open + code + verify, the code from the mailer callback),",
    'no target; (3) a 200 MiB attachment download against `fs.createReadStream` of the same blob file, target',
    "≥ 0.5× its speed, with the reader's RSS growth (VmHWM after clear_refs) ≤ 150 MB; the client is the bench's",
    "own lean one (net `onread` into one reused buffer), with `curl -o /dev/null` and Node's http client in the same",
    'rounds for comparison. Method and knobs: the header of `bench/reader.mjs` and docs/benchmarks.md ("Reader',
    'benchmark"). Each run adds a section below',
    '(newest first, the last five kept).',
    '',
    '## Reader results',
  ].join('\n'),
};

async function main() {
  for (const f of [path.join(DIST, 'reader', 'server.js'), path.join(ASSETS, 'index.html')]) {
    if (!fs.existsSync(f)) throw new Error(`${path.relative(root, f)} is missing: run \`npm run build\` (npm run bench:reader does)`);
  }
  tmpRoot = fs.mkdtempSync(path.join(os.tmpdir(), 'zegel-bench-reader-'));
  const m = runMachine();
  log(`${m.date}; ${m.nproc} cores; Node ${m.node}; Fastify ${m.fastify}; temp ${tmpRoot}`);
  const dataDir = path.join(tmpRoot, 'data');
  const assetsDir = path.join(tmpRoot, 'assets');
  fs.mkdirSync(assetsDir);
  for (const f of fs.readdirSync(ASSETS)) if (fs.statSync(path.join(ASSETS, f)).isFile()) fs.copyFileSync(path.join(ASSETS, f), path.join(assetsDir, f));

  const t0 = performance.now();
  log(`making messages: ${CLIENTS} with a ${BODY_KB} KiB body (check none), ${CLIENTS * VERIFY} e-mail-code links${BIG_MB ? `, one with a ${BIG_MB} MiB attachment` : ''}`);
  const data = await makeData(dataDir);
  const staticName = `static-${data.latency[0].bodyBytes}.bin`;
  const staticFile = path.join(assetsDir, staticName);
  fs.writeFileSync(staticFile, crypto.randomBytes(data.latency[0].bodyBytes));
  log(`made in ${((performance.now() - t0) / 1000).toFixed(1)} s; body blob ${data.latency[0].bodyBytes} bytes`);

  const bigFile = data.big ? data.blobPath(data.big.secureId, data.big.attachment.id) : undefined;
  const reader = startReaderChild(dataDir, assetsDir, staticFile, bigFile);
  const urls = await reader.ready;
  const pid = reader.proc.pid;
  log(`reader ${urls.url} (pid ${pid}), plain Fastify ${urls.plainUrl}; RSS ${mib(procStatus(pid).rss)} MiB`);
  // busy cores machine-wide in one second in which the bench does nothing: other work that skews the figures
  const c0 = machineCpuSeconds();
  await sleep(1000);
  const result = { busyBefore: machineCpuSeconds() - c0, rssStart: procStatus(pid).rss };
  if (ONLY.has('latency')) {
    result.latency = await latencyBench(urls, data, staticName, pid);
    const L = result.latency;
    log(`latency p99 (ms): static ${ms(L.static.req.p99)}, page ${ms(L.reader.page.p99)}, open ${ms(L.reader.open.p99)}, blob ${ms(L.reader.blob.p99)}; sequence ${ms(L.reader.seq.p99)} vs static ${ms(L.static.seq.p99)}`);
  }
  if (VERIFY) {
    result.verify = await verifyBench(urls, data, reader, pid);
    log(`e-mail code p99 (ms): code ${ms(result.verify.code.p99)}, verify ${ms(result.verify.verify.p99)}`);
  }
  if (BIG_MB) {
    result.rssBeforeBig = procStatus(pid).rss;
    result.big = await bigBench(urls, data, pid);
  }
  await reader.stop();
  try {
    const text = fs.readFileSync(path.join(tmpRoot, 'reader.log'), 'utf8');
    const lines = text.split('\n').filter(Boolean);
    result.readerLog = { lines: lines.length, warn: lines.filter((l) => l.includes('"level":40')).length, error: lines.filter((l) => /"level":(50|60)/.test(l)).length };
  } catch {
    /* no log */
  }
  const section = report(result, m);
  process.stdout.write(`\n${section}\n`);
  if (process.env.BENCH_NO_README !== '1') {
    writeResults(README, MARKERS, section);
    log(`results written to ${path.relative(process.cwd(), README) || README}`);
  }
}

if (process.argv[2] === '--reader') {
  await readerChild(process.argv[3], process.argv[4], process.argv[5], process.argv[6]);
} else {
  await runMain(main, cleanup, log);
}
