import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import v8 from 'node:v8';
import vm from 'node:vm';
import t from 'tap';
import { OriginSigner } from '../src/crypto/origin.js';
import { StorageKey } from '../src/crypto/storage-key.js';
import type { ZegelError } from '../src/errors.js';
import { Intake } from '../src/smtp/intake.js';
import { Spool } from '../src/spool/spool.js';
import type { MessageSpool } from '../src/spool/types.js';
import type { PgPool } from '../src/store/pg/connect.js';
import { PgSpool } from '../src/store/pg/pg-spool.js';
import { SPOOL_CHUNK_BYTES } from '../src/store/pg/spool-chunks.js';
import { migratedDatabase } from './helpers/pg-database.js';
import { tempDir, waitFor } from './helpers/relay.js';

/**
 * SMTP intake (src/smtp/intake.ts) on the PostgreSQL spool
 * (src/store/pg/pg-spool.ts): a small message is one sealed chunk, a 20 MiB
 * one is sealed and inserted chunk by chunk as DATA arrives, the source
 * paused while two inserts are outstanding, with resident memory bounded; a
 * message refused mid-DATA and a client gone mid-DATA leave no chunk once
 * the ingress's discard ran, because the intake settles only when no insert
 * is in flight. The refusals run on the file spool too: one interface, the
 * same outcome. Inserts are counted on the way to a real PostgreSQL.
 */
const db = await migratedDatabase(t, 'spoolintake');
const key = new StorageKey(randomBytes(32));

/**
 * The pool as the spool sees it, counting INSERTs in flight; while `inserts.gate`
 * is set they wait for it before they go to the (real) server, so a test can
 * hold them in flight.
 */
const inserts: { now: number; max: number; gate: Promise<void> | undefined } = { now: 0, max: 0, gate: undefined };
const countingPool = new Proxy(db.pool, {
  get(target, prop, receiver) {
    if (prop !== 'query') return Reflect.get(target, prop, receiver) as unknown;
    return async (text: string, params?: unknown[]) => {
      const insert = text.startsWith('INSERT INTO spool_chunks');
      if (insert) inserts.max = Math.max(inserts.max, ++inserts.now);
      try {
        if (insert) await inserts.gate;
        return await target.query(text, params);
      } finally {
        if (insert) inserts.now--;
      }
    };
  },
}) as PgPool;

/** Holds the spool's INSERTs until `release`. */
function holdInserts(): { release: () => void } {
  let release!: () => void;
  inserts.gate = new Promise((resolve) => (release = resolve));
  return {
    release: () => {
      inserts.gate = undefined;
      release();
    },
  };
}
const pgSpool = new PgSpool(countingPool, key, { draftDir: path.join(tempDir(t), 'drafts') });
const fileSpool = new Spool(tempDir(t));

const chunksOf = async (id: string): Promise<number> => (await db.server.query<{ n: number }>('SELECT count(*)::int AS n FROM spool_chunks WHERE message_id = $1', [id], 'spoolintake'))[0]!.n;
const filesOf = (id: string): number => (fs.existsSync(fileSpool.pathOf(id)) ? 1 : 0);

v8.setFlagsFromString('--expose-gc');
const gcNow = vm.runInNewContext('gc') as () => void;

const RECEIVED = 'Received: from probe.test ([127.0.0.1])\r\n\tby relay.test (Zegel) with ESMTP id Q1;\r\n\tFri, 4 Dec 2026 18:00:00 +0000\r\n';
const RCPT = 'klant@example.com';
const HEAD = 'From: <jan@org.test>\r\nTo: <klant@example.com>\r\nSubject: uitslag\r\nMessage-ID: <pg.1@org.test>\r\n\r\n';
const signer = new OriginSigner(randomBytes(32));

function intakeOf(spool: MessageSpool, id: string, source: Readable, maxBytes = 64 * 1024 * 1024): Intake {
  return new Intake(source, { spool, id, maxBytes, bareLineEndings: 'reject', header: { signer, recipients: [RCPT], received: RECEIVED, maxHeaderBytes: 1024 * 1024 } });
}

/** What the ingress does with an intake (src/smtp/ingress.ts): wait for it, and discard what it stored when it failed. */
async function settle(spool: MessageSpool, id: string, intake: Intake): Promise<ZegelError | undefined> {
  try {
    await intake.done;
    return undefined;
  } catch (err) {
    if (intake.created) await spool.discard(id);
    return err as ZegelError;
  }
}

async function collect(stream: AsyncIterable<Buffer>): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const part of stream) parts.push(part);
  return Buffer.concat(parts);
}

/** CRLF lines of printable text, distinct per line, `bytes` long in all: a body the guards pass unchanged. */
function* bodyLines(bytes: number, seed = 0): Generator<Buffer> {
  const line = Buffer.alloc(1000, 'x');
  line.write('\r\n', 998);
  for (let n = 0, at = 0; at < bytes; n++, at += line.length) {
    line.write(`${seed}:${n}`.padEnd(20, ' '), 0, 'latin1');
    yield Buffer.from(line.subarray(0, Math.min(line.length, bytes - at)));
  }
}

t.test('a small message is one sealed chunk, written in one insert and read back with the Received field first', async (t) => {
  const source = new PassThrough();
  const intake = intakeOf(pgSpool, 'small1', source);
  const message = Buffer.from(`${HEAD}Hallo,\r\n\r\ntot morgen.\r\n`);
  source.end(message);
  t.equal(await settle(pgSpool, 'small1', intake), undefined);
  t.ok(intake.created);
  const expected = Buffer.concat([Buffer.from(RECEIVED), message]);
  t.same(intake.small, expected, 'held in memory for the node-local cache');
  t.equal(await chunksOf('small1'), 1);
  t.same(await collect(pgSpool.chunks.read('small1', { bytes: expected.length })), expected, 'the stored bytes are the message as accepted');
  const source2 = pgSpool.source('small1');
  t.ok('open' in source2, 'not cached (the ingress caches it): delivery streams from the chunks');
  if ('open' in source2) {
    t.equal(await source2.size?.(), expected.length, 'its size from the chunk lengths');
    t.same(await collect(source2.open()), expected);
  }
  pgSpool.cache.set('small1', expected);
  t.same(pgSpool.source('small1'), { bytes: expected }, 'cached: from memory');
  await pgSpool.remove('small1');
  t.equal(await chunksOf('small1'), 0);
  t.ok('open' in pgSpool.source('small1'), 'remove forgets the cached copy');
});

t.test('a 20 MiB message streams in chunk by chunk, two inserts at most in flight, with bounded memory', async (t) => {
  const total = 20 * 1024 * 1024;
  const sent = createHash('sha256').update(RECEIVED).update(HEAD);
  let produced = 0;
  // an SMTP data stream: 64 KiB pieces, produced only when the consumer reads (a paused intake stops it)
  const pieces = (function* () {
    yield Buffer.from(HEAD);
    let pending: Buffer[] = [];
    let size = 0;
    for (const line of bodyLines(total - HEAD.length)) {
      pending.push(line);
      size += line.length;
      if (size >= 64 * 1024) {
        const piece = Buffer.concat(pending);
        sent.update(piece);
        produced += piece.length;
        if (produced % (2 * 1024 * 1024) < piece.length) gcNow();
        yield piece;
        pending = [];
        size = 0;
      }
    }
    const last = Buffer.concat(pending);
    sent.update(last);
    yield last;
  })();
  const source = Readable.from(pieces, { objectMode: false, highWaterMark: 64 * 1024 });
  let pauses = 0;
  source.on('pause', () => pauses++);
  inserts.max = 0;
  gcNow();
  const base = process.memoryUsage().rss;
  let peak = base;
  const sampler = setInterval(() => (peak = Math.max(peak, process.memoryUsage().rss)), 5);
  const started = Date.now();
  const intake = intakeOf(pgSpool, 'big1', source);
  const err = await settle(pgSpool, 'big1', intake);
  const ms = Date.now() - started;
  clearInterval(sampler);
  t.equal(err, undefined);
  t.equal(intake.bytes, total, 'every DATA byte read');
  t.equal(intake.small, undefined, 'not held in memory');
  const stored = total + RECEIVED.length;
  t.equal(await chunksOf('big1'), Math.ceil(stored / SPOOL_CHUNK_BYTES), 'chunks of 256 KiB');
  t.equal(inserts.max, 2, 'two inserts in flight at most, and both used');
  t.ok(pauses > 0, `the source was paused while inserts were outstanding (${pauses} times)`);
  const mib = (n: number) => (n / 1048576).toFixed(1);
  t.comment(`20 MiB through Intake into PostgreSQL: ${ms} ms (${mib((total / ms) * 1000)} MiB/s), RSS growth peak ${mib(peak - base)} MiB`);
  t.ok(peak - base < 12 * 1048576, `resident memory grew by ${mib(peak - base)} MiB, well below the message's 20 MiB`);
  const got = createHash('sha256');
  let bytes = 0;
  for await (const piece of pgSpool.read('big1') as AsyncIterable<Buffer>) {
    got.update(piece);
    bytes += piece.length;
  }
  t.equal(bytes, stored);
  t.equal(got.digest('hex'), sent.digest('hex'), 'the same bytes in the same order');
  await pgSpool.remove('big1');
});

const drivers: Array<[string, MessageSpool, (id: string) => Promise<number> | number]> = [
  ['postgres', pgSpool, chunksOf],
  ['file', fileSpool, filesOf],
];

for (const [name, spool, storedOf] of drivers) {
  t.test(`${name}: a message refused mid-DATA (size limit) leaves nothing once discarded`, async (t) => {
    const id = `over-${name}`;
    const source = new PassThrough();
    const intake = intakeOf(spool, id, source, 3 * 1024 * 1024);
    let storedMidway = 0;
    source.write(HEAD);
    let written = 0;
    for (const line of bodyLines(5 * 1024 * 1024, 1)) {
      if (!source.write(line)) await new Promise((resolve) => source.once('drain', resolve));
      written += line.length;
      if (written === 2 * 1024 * 1000) storedMidway = await storedOf(id);
    }
    source.end();
    const err = await settle(spool, id, intake);
    t.equal(err?.code, 'ZEGEL_MESSAGE_TOO_BIG');
    t.ok(storedMidway > 0, `bytes were stored before the limit was passed (${storedMidway})`);
    t.equal(inserts.now, 0, 'nothing in flight once the intake settled');
    t.equal(await storedOf(id), 0, 'nothing left');
    t.notOk((await spool.list()).includes(id));
  });

  t.test(`${name}: a client gone mid-DATA leaves nothing once discarded, also with inserts in flight`, async (t) => {
    const id = `gone-${name}`;
    const source = new PassThrough();
    const intake = intakeOf(spool, id, source);
    // on PostgreSQL, the writer's two inserts are held in flight when the client goes
    const held = spool === pgSpool ? holdInserts() : undefined;
    source.write(HEAD);
    for (const line of bodyLines(1024 * 1024, 2)) source.write(line);
    if (held) await waitFor(() => inserts.now === 2, 10_000, 'two inserts in flight');
    else await waitFor(() => storedOf(id), 10_000, 'the spool file');
    // smtp-server destroys the data stream of a connection that closed: it never ends
    source.destroy();
    let settled = false;
    const outcome = settle(spool, id, intake).finally(() => (settled = true));
    if (held) {
      for (let i = 0; i < 10; i++) await new Promise((resolve) => setImmediate(resolve));
      t.notOk(settled, 'the intake waits for the inserts in flight');
      held.release();
    }
    const err = await outcome;
    t.equal(err?.code, 'ECONNECTION');
    t.ok(intake.created, 'something was stored before the client left');
    t.equal(inserts.now, 0, 'nothing in flight once the intake settled');
    t.equal(await storedOf(id), 0, 'nothing left: the held inserts committed before the discard');
    t.notOk((await spool.list()).includes(id));
  });
}

t.test('postgres: a relay-made mail replaces what an earlier run left under its id, as the file spool truncates', async (t) => {
  // a DSN's id is derived from what it reports: a run that died between the spool write and its commit left chunks
  await pgSpool.chunks.writeBytes('dsn-1', Buffer.concat([Buffer.alloc(300 * 1024, 'a'), Buffer.from('old')]));
  t.equal(await chunksOf('dsn-1'), 2);
  const fresh = Buffer.from('From: MAILER-DAEMON\r\nSubject: Undelivered\r\n\r\nnew\r\n');
  await pgSpool.write('dsn-1', fresh);
  t.equal(await chunksOf('dsn-1'), 1);
  pgSpool.cache.delete('dsn-1');
  t.same(await collect(pgSpool.read('dsn-1')), fresh, 'the new bytes, nothing of the old');
  t.equal((await pgSpool.readHeaderBlock('dsn-1')).toString(), 'From: MAILER-DAEMON\r\nSubject: Undelivered\r\n');
  await t.rejects(pgSpool.chunks.size('none'), { code: 'ZEGEL_SPOOL_MISSING' }, 'no size for a message without chunks');
  await pgSpool.remove('dsn-1');
});
