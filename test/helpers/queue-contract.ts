import type { Test } from 'tap';
import { ManualClock } from '../../src/clock.js';
import type { Job, JobHandler, JobQueue, JobResult } from '../../src/queue/types.js';
import { waitFor } from './relay.js';

/**
 * The job queue contract (src/queue/types.ts), written once and run against
 * every driver: test/queue-sqlite.test.ts (SQLite) and
 * test/queue-bullmq.test.ts (PostgreSQL + BullMQ). A driver supplies a
 * factory; what only one driver does is tested in that driver's own file.
 */

/** A queue under test and a view of the rows its store holds. */
export interface QueueFixture {
  queue: JobQueue;
  /** The stored jobs, by id. */
  rows(): Promise<Array<{ id: string; kind: string; runAt: number; attempts: number }>>;
  /** Closes the queue (`queue.close(timeoutMs)`, default 10 ms) and its store; once. Teardown closes it otherwise. */
  close(timeoutMs?: number): Promise<void>;
}

export interface QueueDriver {
  name: string;
  /**
   * A queue on a fresh store; with `same`, a new queue on the store of that
   * earlier fixture (closed by then), as after a restart.
   */
  open(t: Test, clock: ManualClock, same?: QueueFixture): Promise<QueueFixture>;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** A promise with its resolve function, to hold a handler until the test lets it go. */
function gate(): { promise: Promise<void>; open: () => void } {
  let open!: () => void;
  const promise = new Promise<void>((resolve) => (open = resolve));
  return { promise, open };
}

export function queueContract(t: Test, driver: QueueDriver): void {
  t.test('add() with an id already queued is a no-op: the job runs once', async (t) => {
    const clock = new ManualClock();
    const { queue, rows } = await driver.open(t, clock);
    const runs: Array<Job<{ n: number }>> = [];
    const hold = gate();
    await queue.add([{ id: 'same', kind: 'k', payload: { n: 1 } }]);
    await queue.add([{ id: 'same', kind: 'k', payload: { n: 2 } }]);
    await Promise.all([queue.add([{ id: 'same', kind: 'k', payload: { n: 3 } }]), queue.add([{ id: 'same', kind: 'k', payload: { n: 4 } }])]);
    t.equal((await rows()).length, 1, 'one row for the id');
    queue.work<{ n: number }>(
      'k',
      async (job) => {
        runs.push(job);
        await hold.promise;
        return { status: 'done' };
      },
      { concurrency: 4 },
    );
    await waitFor(() => runs.length === 1, 2_000, 'first run');
    // while it runs, adding it again changes nothing either
    await queue.add([{ id: 'same', kind: 'k', payload: { n: 5 } }]);
    await sleep(100);
    t.equal(runs.length, 1, 'not started a second time while running');
    hold.open();
    await queue.idle();
    await sleep(100);
    t.equal(runs.length, 1, 'ran exactly once');
    t.same(runs[0]!.payload, { n: 1 }, 'the first payload is kept');
    t.equal(runs[0]!.id, 'same');
    t.equal(runs[0]!.kind, 'k');
    t.equal(runs[0]!.attempts, 0);
    t.equal(runs[0]!.createdAt, clock.now());
    t.same((await rows()), [], 'a finished job is removed');
  });

  t.test('a retry does not run before its runAt, runs after it, and attempts count up', async (t) => {
    const clock = new ManualClock();
    const { queue, rows } = await driver.open(t, clock);
    const seen: Array<{ attempts: number; at: number }> = [];
    const retryAt: number[] = [];
    queue.work(
      'r',
      async (job): Promise<JobResult> => {
        seen.push({ attempts: job.attempts, at: clock.now() });
        if (job.attempts < 2) {
          const runAt = clock.now() + (job.attempts + 1) * 60_000;
          retryAt.push(runAt);
          return { status: 'retry', runAt };
        }
        return { status: 'done' };
      },
      { concurrency: 1 },
    );
    const start = clock.now();
    await queue.add([{ id: 'r1', kind: 'r', payload: null }]);
    // the row is visible at COMMIT; the worker lets go of the job only once the commit's WAL flush resolved
    await waitFor(async () => seen.length === 1 && (await rows())[0]?.attempts === 1 && (await queue.counts())[0]?.running === 0, 2_000, 'first run stored');
    t.same((await rows()), [{ id: 'r1', kind: 'r', runAt: start + 60_000, attempts: 1 }], 'stored with the new runAt and one attempt');
    t.same(await queue.counts(), [{ kind: 'r', ready: 0, delayed: 1, running: 0, oldestCreatedAt: start }], 'counted as delayed');

    clock.set(retryAt[0]! - 1);
    queue.poke();
    await sleep(150);
    t.equal(seen.length, 1, 'not run 1 ms before runAt');

    // no poke: the poll timer notices the clock on its own
    clock.set(retryAt[0]!);
    await waitFor(() => seen.length === 2, 2_000, 'second run');
    t.same(seen[1], { attempts: 1, at: retryAt[0] }, 'second run at runAt with attempts 1');
    await waitFor(async () => (await rows())[0]?.attempts === 2, 2_000, 'second retry stored');

    clock.set(retryAt[1]! - 1);
    queue.poke();
    await sleep(150);
    t.equal(seen.length, 2, 'not run before the second runAt');
    clock.set(retryAt[1]! + 5_000);
    queue.poke();
    await waitFor(() => seen.length === 3, 2_000, 'third run');
    t.equal(seen[2]!.attempts, 2, 'attempts 2 on the third run');
    await queue.idle();
    t.same((await rows()), [], 'done after the third run');
    t.same(await queue.counts(), []);
  });

  t.test('next jobs are added when a job completes', async (t) => {
    const clock = new ManualClock();
    const { queue, rows } = await driver.open(t, clock);
    const order: string[] = [];
    let seenRowsAtB: Array<{ id: string }> = [];
    queue.work(
      'a',
      async (job) => {
        order.push(job.id);
        return {
          status: 'done',
          next: [
            { id: 'b1', kind: 'b', payload: { from: job.id } },
            { id: 'b-later', kind: 'b', payload: { from: job.id, later: true }, runAt: clock.now() + 10_000 },
          ],
        };
      },
      { concurrency: 1 },
    );
    const payloads: unknown[] = [];
    queue.work(
      'b',
      async (job) => {
        order.push(job.id);
        payloads.push(job.payload);
        seenRowsAtB = await rows();
        return { status: 'done' };
      },
      { concurrency: 1 },
    );
    await queue.add([{ id: 'a1', kind: 'a', payload: {} }]);
    await waitFor(() => order.length === 2, 2_000, 'a then b');
    t.same(order, ['a1', 'b1'], 'the next job runs after its parent');
    t.same(payloads, [{ from: 'a1' }], 'with its payload');
    t.notOk(seenRowsAtB.some((r) => r.id === 'a1'), 'the parent was already removed when the next job ran');
    await queue.idle();
    t.same(
      (await rows()).map((r) => r.id),
      ['b-later'],
      'a next job with a later runAt waits',
    );
    clock.advance(10_000);
    queue.poke();
    await waitFor(() => order.length === 3, 2_000, 'delayed next job');
    t.same(payloads[1], { from: 'a1', later: true });
    await queue.idle();
    t.same((await rows()), []);
  });

  t.test('a handler that throws is retried after a backoff and does not stop the queue', async (t) => {
    const clock = new ManualClock();
    const { queue, rows } = await driver.open(t, clock);
    const runs: Array<{ id: string; attempts: number; at: number }> = [];
    const handler = ((job: Job) => {
      runs.push({ id: job.id, attempts: job.attempts, at: clock.now() });
      if (job.id === 'sync-throw' && job.attempts === 0) throw new Error('synchronous failure');
      if (job.id === 'async-throw' && job.attempts < 2) return Promise.reject(Object.assign(new Error('asynchronous failure'), { code: 'EBOOM' }));
      return Promise.resolve({ status: 'done' } as JobResult);
    }) as JobHandler;
    queue.work('t', handler, { concurrency: 1 });
    const start = clock.now();
    await queue.add([
      { id: 'async-throw', kind: 't', payload: null },
      { id: 'sync-throw', kind: 't', payload: null },
      { id: 'fine', kind: 't', payload: null },
    ]);
    await waitFor(() => runs.length === 3, 2_000, 'all three ran once');
    await waitFor(async () => (await rows()).length === 2, 2_000, 'the good job finished');
    t.same(
      (await rows()).map((r) => [r.id, r.runAt - start, r.attempts]),
      [
        ['async-throw', 30_000, 1],
        ['sync-throw', 30_000, 1],
      ],
      'both failures rescheduled 30 s later with one attempt',
    );

    clock.set(start + 30_000 - 1);
    queue.poke();
    await sleep(150);
    t.equal(runs.length, 3, 'not retried before the backoff');

    clock.set(start + 30_000);
    queue.poke();
    await waitFor(() => runs.length === 5, 2_000, 'retries');
    await waitFor(async () => (await rows()).length === 1, 2_000, 'sync-throw finished on its retry');
    const row = (await rows())[0]!;
    t.equal(row.id, 'async-throw');
    t.equal(row.attempts, 2);
    t.equal(row.runAt, start + 30_000 + 60_000, 'the backoff doubles: 60 s after the second failure');

    clock.set(start + 90_000);
    queue.poke();
    await waitFor(() => runs.length === 6, 2_000, 'third try');
    await queue.idle();
    t.same((await rows()), [], 'everything finished in the end');
    t.same(
      runs.filter((r) => r.id === 'async-throw').map((r) => r.attempts),
      [0, 1, 2],
    );

    // the queue still takes new work
    await queue.add([{ id: 'after', kind: 't', payload: null }]);
    await waitFor(() => runs.some((r) => r.id === 'after'), 2_000, 'new work after failures');
  });

  t.test('at most `concurrency` jobs of a kind run at once', async (t) => {
    const clock = new ManualClock();
    const { queue } = await driver.open(t, clock);
    let running = 0;
    let peak = 0;
    const gates = new Map<string, () => void>();
    const done: string[] = [];
    queue.work(
      'c',
      async (job) => {
        running++;
        peak = Math.max(peak, running);
        await new Promise<void>((resolve) => gates.set(job.id, resolve));
        running--;
        done.push(job.id);
        return { status: 'done' };
      },
      { concurrency: 3 },
    );
    // another kind has its own limit
    let otherRunning = 0;
    const otherGate = gate();
    queue.work(
      'other',
      async () => {
        otherRunning++;
        await otherGate.promise;
        return { status: 'done' };
      },
      { concurrency: 2 },
    );
    await queue.add(Array.from({ length: 10 }, (_, i) => ({ id: `c${i}`, kind: 'c', payload: i })));
    await queue.add(Array.from({ length: 4 }, (_, i) => ({ id: `o${i}`, kind: 'other', payload: i })));
    await waitFor(() => running === 3 && otherRunning === 2, 2_000, 'workers saturated');
    await sleep(150);
    t.equal(running, 3, 'three of ten running');
    t.equal(otherRunning, 2, 'two of the other kind');
    const counts = await queue.counts();
    t.same(
      counts.map((c) => [c.kind, c.ready, c.delayed, c.running]),
      [
        ['c', 7, 0, 3],
        ['other', 2, 0, 2],
      ],
    );
    while (done.length < 10) {
      const open = [...gates.entries()];
      gates.clear();
      for (const [, release] of open) release();
      await waitFor(() => gates.size > 0 || done.length === 10, 2_000, 'next batch');
      await sleep(20);
      t.ok(running <= 3, `never more than three (${running})`);
    }
    t.equal(peak, 3, 'the peak was exactly the limit');
    t.equal(new Set(done).size, 10, 'all ten ran once');
    otherGate.open();
    await queue.idle();
  });

  t.test('jobs survive close and reopen; a job left running runs again', async (t) => {
    const clock = new ManualClock();
    const first = await driver.open(t, clock);
    const started: string[] = [];
    first.queue.work(
      'd',
      async (job) => {
        started.push(job.id);
        return new Promise<JobResult>(() => undefined); // never finishes
      },
      { concurrency: 1 },
    );
    await first.queue.add([
      { id: 'stuck', kind: 'd', payload: { keep: 'me' } },
      { id: 'queued', kind: 'd', payload: { n: 2 } },
      { id: 'later', kind: 'd', payload: { n: 3 }, runAt: clock.now() + 60_000 },
    ]);
    await waitFor(() => started.length === 1, 2_000, 'a job started');
    const stuckId = started[0]!;
    const began = Date.now();
    await first.close(10);
    t.ok(Date.now() - began < 1_000, 'close() does not wait for the stuck job beyond its timeout');
    t.same(started, [stuckId], 'only one job started before the close');

    const second = await driver.open(t, clock, first);
    t.same(
      (await second.queue.counts()).map((c) => [c.kind, c.ready, c.delayed, c.running]),
      [['d', 2, 1, 0]],
      'after reopening: the job that was running and the queued one are ready, the later one delayed',
    );
    const runs: Job[] = [];
    second.queue.work(
      'd',
      async (job) => {
        runs.push(job);
        return { status: 'done' };
      },
      { concurrency: 1 },
    );
    await waitFor(() => runs.length === 2, 2_000, 'both ready jobs run after reopening');
    t.same(runs.map((j) => j.id).sort(), ['queued', 'stuck'], 'the interrupted job runs again');
    t.same(runs.find((j) => j.id === 'stuck')!.payload, { keep: 'me' }, 'with its payload');
    t.comment(`attempts of the interrupted job after restart: ${runs.find((j) => j.id === 'stuck')!.attempts}`);
    clock.advance(60_000);
    second.queue.poke();
    await waitFor(() => runs.length === 3, 2_000, 'the delayed job runs at its time');
    await second.queue.idle();
    t.same(await second.rows(), []);
  });

  t.test('counts() reports ready, delayed and running; idle() resolves when nothing is due or running', async (t) => {
    const clock = new ManualClock();
    const { queue } = await driver.open(t, clock);
    const hold = gate();
    let started = 0;
    const start = clock.now();
    await queue.add([
      { id: 'x1', kind: 'x', payload: null },
      { id: 'x2', kind: 'x', payload: null },
      { id: 'x3', kind: 'x', payload: null, runAt: start + 1_000 },
    ]);
    clock.advance(10);
    await queue.add([{ id: 'y1', kind: 'y', payload: null, runAt: start + 5_000 }]);
    t.same(await queue.counts(), [
      { kind: 'x', ready: 2, delayed: 1, running: 0, oldestCreatedAt: start },
      { kind: 'y', ready: 0, delayed: 1, running: 0, oldestCreatedAt: start + 10 },
    ]);
    queue.work(
      'x',
      async () => {
        started++;
        await hold.promise;
        return { status: 'done' };
      },
      { concurrency: 1 },
    );
    queue.work('y', async () => ({ status: 'done' }), { concurrency: 1 });
    await waitFor(() => started === 1, 2_000, 'one x running');
    t.same(
      (await queue.counts()).map((c) => [c.kind, c.ready, c.delayed, c.running]),
      [
        ['x', 1, 1, 1],
        ['y', 0, 1, 0],
      ],
    );

    let idle = false;
    const idlePromise = queue.idle().then(() => (idle = true));
    await sleep(150);
    t.notOk(idle, 'idle() waits while a job runs');
    hold.open();
    await Promise.race([idlePromise, sleep(3_000)]);
    t.ok(idle, 'idle() resolves once the due jobs are done, with delayed jobs left');
    t.equal(started, 2);
    t.same(
      (await queue.counts()).map((c) => [c.kind, c.ready, c.delayed, c.running]),
      [
        ['x', 0, 1, 0],
        ['y', 0, 1, 0],
      ],
    );
    clock.set(start + 5_000);
    await queue.idle();
    t.equal(started, 3, 'idle() after the clock moved runs the jobs that became due');
    t.same(await queue.counts(), [], 'nothing left');
  });
}
