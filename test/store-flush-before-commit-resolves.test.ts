import fs from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { pino } from 'pino';
import t, { type Test } from 'tap';
import { ManualClock } from '../src/clock.js';
import { ZegelError } from '../src/errors.js';
import { GroupCommitter } from '../src/store/group-commit.js';
import { SqliteBackend } from '../src/store/sqlite-backend.js';
import { WalSync } from '../src/store/wal-sync.js';
import { tempDir, waitFor } from './helpers/relay.js';

/**
 * The store commits with synchronous=NORMAL and flushes the WAL itself, off
 * the main thread (src/store/wal-sync.ts). What `synchronous=FULL` promised
 * must still hold: no caller hears of a commit (so no client hears `250`)
 * before an fdatasync of the -wal file that started after the COMMIT, with
 * the transaction's bytes already in that file. A failed flush refuses every
 * later write.
 */
const silent = pino({ level: 'silent' });

/** A flush the test holds open: each call records what the -wal file held, then waits for release(). */
function gatedFlush(walPath: string) {
  const calls: Array<{ walBytes: Buffer; release: (err?: Error) => void }> = [];
  const fdatasync = async (handle: FileHandle) => {
    const walBytes = fs.readFileSync(walPath);
    await new Promise<void>((resolve, reject) => calls.push({ walBytes, release: (err) => (err ? reject(err) : resolve()) }));
    await handle.datasync();
  };
  return { calls, fdatasync };
}

function setup(t: Test) {
  const dir = tempDir(t, 'zegel-flush-');
  const backend = new SqliteBackend(dir, new ManualClock(Date.now()), silent, { pollMs: 25 });
  const walPath = path.join(backend.db.name + '-wal');
  const gate = gatedFlush(walPath);
  const committer = new GroupCommitter(backend.db, { wal: new WalSync(backend.db.name, { fdatasync: gate.fdatasync }) });
  t.teardown(async () => {
    for (const call of gate.calls) call.release();
    await committer.close().catch(() => undefined);
    await backend.queue.close(10);
    await backend.close();
  });
  const write = (marker: string) => committer.transaction((tx) => backend.events.append(tx, { messageId: null, type: 'admin-action', detail: { marker } }));
  return { backend, committer, gate, write, walPath };
}

t.test('the connection runs WAL with synchronous=NORMAL: the flush is ours', async (t) => {
  const { backend } = setup(t);
  t.equal(backend.db.pragma('journal_mode', { simple: true }), 'wal');
  t.equal(backend.db.pragma('synchronous', { simple: true }), 1, 'NORMAL (1); FULL would be 2 and flush inside COMMIT on the main thread');
});

t.test('a transaction resolves only after the WAL holding it was flushed', async (t) => {
  const { gate, write } = setup(t);
  let resolved = false;
  const done = write('marker-one-4711').then(() => {
    resolved = true;
  });
  await waitFor(() => gate.calls.length === 1, 5_000, 'the flush to start');
  t.ok(gate.calls[0]!.walBytes.includes('marker-one-4711'), 'the committed frames are in the -wal file when the flush starts');
  // the flush is held: nothing may resolve meanwhile, whatever else the event loop does
  await new Promise((resolve) => setImmediate(resolve));
  await new Promise((resolve) => setTimeout(resolve, 20));
  t.equal(resolved, false, 'not resolved while the flush runs');
  gate.calls[0]!.release();
  await done;
  t.equal(resolved, true, 'resolved after the flush');
});

t.test('groups that commit during one flush share the next flush, and wait for it', async (t) => {
  const { gate, write } = setup(t);
  const first = write('group-a');
  await waitFor(() => gate.calls.length === 1, 5_000, 'the first flush');
  // while the first flush is held, more groups commit (the event loop is not blocked by the flush)
  const settled: string[] = [];
  const later = ['group-b', 'group-c', 'group-d'].map((m) => write(m).then(() => settled.push(m)));
  await new Promise((resolve) => setTimeout(resolve, 30));
  t.equal(gate.calls.length, 1, 'no second flush runs while the first is held');
  t.same(settled, [], 'later groups are committed but not resolved before their own flush');
  gate.calls[0]!.release();
  await first;
  await waitFor(() => gate.calls.length === 2, 5_000, 'the shared second flush');
  for (const m of ['group-b', 'group-c', 'group-d']) t.ok(gate.calls[1]!.walBytes.includes(m), `${m} is in the WAL when the second flush starts`);
  t.same(settled, [], 'still unresolved until the second flush ends');
  gate.calls[1]!.release();
  await Promise.all(later);
  t.same(settled.sort(), ['group-b', 'group-c', 'group-d']);
  t.equal(gate.calls.length, 2, 'four transactions, two flushes');
});

t.test('a failed flush rejects its callers and refuses every later write', async (t) => {
  const { gate, write, committer } = setup(t);
  const first = write('doomed');
  await waitFor(() => gate.calls.length === 1, 5_000, 'the flush');
  const during = write('committed-during-the-failed-flush');
  await new Promise((resolve) => setTimeout(resolve, 10));
  gate.calls[0]!.release(Object.assign(new Error('EIO: i/o error, fdatasync'), { code: 'EIO' }));
  const err = await first.then(() => undefined, (e: unknown) => e);
  t.ok(err instanceof ZegelError && err.code === 'ZEGEL_STORE_WRITE', 'the caller gets ZEGEL_STORE_WRITE');
  t.match((err as Error).message, /writes refused until a restart/);
  t.ok(committer.failed, 'the committer is marked failed');
  // a group already committed while the failed flush ran is not vouched for by a later flush
  await waitFor(() => gate.calls.length === 2, 5_000, 'the flush of the group committed meanwhile');
  gate.calls[1]!.release();
  const duringErr = await during.then(() => undefined, (e: unknown) => e);
  t.ok(duringErr instanceof ZegelError && duringErr.code === 'ZEGEL_STORE_WRITE', 'the group committed during the failed flush is refused too');
  const later = await write('after').then(() => undefined, (e: unknown) => e);
  t.ok(later instanceof ZegelError && later.code === 'ZEGEL_STORE_WRITE', 'a later write is refused at once');
});

t.test('the default flush is a real fdatasync of the -wal file and close waits for it', async (t) => {
  const dir = tempDir(t, 'zegel-flush-real-');
  const backend = new SqliteBackend(dir, new ManualClock(Date.now()), silent, { pollMs: 25 });
  await backend.transaction((tx) => backend.events.append(tx, { messageId: null, type: 'admin-action', detail: { marker: 'real' } }));
  t.ok(fs.readFileSync(backend.db.name + '-wal').includes('real'), 'the transaction is in the WAL');
  t.equal(await backend.ping(), true, 'ready');
  await backend.queue.close(10);
  await backend.close();
  t.pass('closed after its flushes');
});
