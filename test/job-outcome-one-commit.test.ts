import nodemailer from 'nodemailer';
import { pino } from 'pino';
import t, { type Test } from 'tap';
import { ManualClock } from '../src/clock.js';
import type { JobResult } from '../src/queue/types.js';
import { SqliteBackend } from '../src/store/sqlite-backend.js';
import { startRelay, tempDir, waitFor } from './helpers/relay.js';
import { startSink } from './helpers/sink.js';
import { storeView } from './helpers/store-view.js';

/**
 * A job's own rows and its new state commit together (JobResult.record), and
 * what must follow the commit (removing a released spool file) runs only
 * after it (afterCommit). This is what makes a plain message cost three
 * store writes (intake, process, deliver) instead of five; it must never cost
 * a row written without the job's completion, or a completion without its rows.
 */
const silent = pino({ level: 'silent' });

function backendFor(t: Test, clock: ManualClock): SqliteBackend {
  const backend = new SqliteBackend(tempDir(t, 'zegel-outcome-'), clock, silent, { pollMs: 25 });
  t.teardown(async () => {
    await backend.queue.close(10);
    await backend.close();
  });
  return backend;
}

const jobIds = (backend: SqliteBackend) => (backend.db.prepare('SELECT id FROM jobs ORDER BY id').all() as Array<{ id: string }>).map((r) => r.id);

t.test("a job's rows, its completion and its next job are one write; afterCommit follows it", async (t) => {
  const clock = new ManualClock(Date.now());
  const backend = backendFor(t, clock);
  const order: string[] = [];
  backend.queue.work<unknown>(
    'process',
    async (job): Promise<JobResult> => ({
      status: 'done',
      next: [{ id: `deliver:${job.id}`, kind: 'deliver', payload: null }],
      record: async (tx) => {
        order.push('record');
        await backend.events.append(tx, { messageId: 'm1', type: 'classified', detail: { job: job.id } });
      },
      afterCommit: async () => {
        order.push(`afterCommit: ${jobIds(backend).join(',')}; events ${storeView(backend).events('m1').length}`);
      },
    }),
    { concurrency: 1 },
  );
  // counted from before the add: the add's commit resolves only after its WAL
  // flush, and by then the poll may already have run the job and committed it
  const before = backend.committer.stats.writes;
  await backend.queue.add([{ id: 'process:m1', kind: 'process', payload: null }]);
  await waitFor(() => order.length === 2, 5_000, 'the job to finish');
  t.same(order, ['record', 'afterCommit: deliver:process:m1; events 1'], 'afterCommit sees the committed rows, the completed job and its next job');
  t.equal(backend.committer.stats.writes - before, 2, 'the add, then one write for the rows, the completion and the next job');
});

t.test('when the rows cannot be written, neither is the completion, and afterCommit does not run', async (t) => {
  const clock = new ManualClock(Date.now());
  const backend = backendFor(t, clock);
  let runs = 0;
  let cleaned = 0;
  backend.queue.work<unknown>(
    'process',
    async (): Promise<JobResult> => {
      runs++;
      const attempt = runs;
      return {
        status: 'done',
        next: [{ id: 'deliver:m2', kind: 'deliver', payload: null }],
        record: async (tx) => {
          await backend.events.append(tx, { messageId: 'm2', type: 'classified', detail: { attempt } });
          if (attempt === 1) throw new Error('disk full');
        },
        afterCommit: async () => {
          cleaned++;
        },
      };
    },
    { concurrency: 1 },
  );
  await backend.queue.add([{ id: 'process:m2', kind: 'process', payload: null }]);
  await waitFor(() => runs === 1, 5_000, 'the first run');
  await backend.committer.transaction(() => undefined);
  t.same(jobIds(backend), ['process:m2'], 'the job is still there, its next job is not');
  t.same(storeView(backend).events('m2'), [], "the failed run's event was rolled back with it");
  t.equal(cleaned, 0, 'afterCommit did not run');

  // the job runs again after its cool-down, and this time everything commits
  clock.advance(6_000);
  backend.queue.poke();
  await waitFor(() => cleaned === 1, 5_000, 'the second run to commit');
  t.equal(runs, 2);
  t.same(jobIds(backend), ['deliver:m2']);
  t.same(storeView(backend).events('m2').map((e) => e.detail), [{ attempt: 2 }], 'only the committed run left its event');
});

t.test('a plain message costs three store writes: intake, process, deliver', async (t) => {
  const sink = await startSink(t);
  const { relay, port } = await startRelay(t, { delivery: { target: sink.url } }, { clock: new ManualClock(Date.now()) });
  const { committer } = relay.sqlite;
  // the audit checkpoint the relay signs at start: let it land first
  let last = -1;
  await waitFor(
    async () => {
      await committer.transaction(() => undefined);
      const now = committer.stats.writes;
      const settled = now === last + 1;
      last = now;
      return settled;
    },
    5_000,
    'start-up writes to settle',
  );
  const before = committer.stats.writes;
  const transport = nodemailer.createTransport({ host: '127.0.0.1', port, secure: false, ignoreTLS: true });
  t.teardown(() => transport.close());
  const ids: string[] = [];
  for (let i = 0; i < 4; i++) {
    const info = await transport.sendMail({ from: 'jan@org.test', to: 'a@example.com', subject: `plain ${i}`, text: 'Tot morgen.' });
    ids.push(/queued as (\S+)$/.exec(info.response)![1]!);
  }
  const view = storeView(relay.sqlite);
  await waitFor(() => ids.every((id) => view.getMessage(id)?.state === 'done'), 10_000, 'all four delivered');
  t.equal(committer.stats.writes - before, 12, 'three writes per message (five before the outcome and its rows shared a commit)');
  for (const id of ids) {
    t.same(
      view.events(id).map((e) => e.type),
      ['received', 'classified', 'decided', 'delivered', 'spool-removed'],
      'every message still leaves its whole audit trail',
    );
  }
});
