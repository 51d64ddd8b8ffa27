import t from 'tap';
import { pino } from 'pino';
import { ManualClock } from '../src/clock.js';
import { SqliteBackend } from '../src/store/sqlite-backend.js';
import { queueContract, type QueueFixture } from './helpers/queue-contract.js';
import { tempDir } from './helpers/relay.js';

const silent = pino({ level: 'silent' });

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Where each fixture's database lives, so a second queue can open the same one. */
const dirs = new WeakMap<QueueFixture, string>();

// the job queue contract (test/helpers/queue-contract.ts) on SQLite
queueContract(t, {
  name: 'sqlite',
  async open(t, clock, same) {
    const dir = same ? dirs.get(same)! : tempDir(t, 'zegel-queue-');
    const backend = new SqliteBackend(dir, clock, silent, { pollMs: 25 });
    let closed = false;
    const fixture: QueueFixture = {
      queue: backend.queue,
      rows: async () => backend.db.prepare('SELECT id, kind, run_at AS runAt, attempts FROM jobs ORDER BY id').all() as Array<{ id: string; kind: string; runAt: number; attempts: number }>,
      close: async (timeoutMs = 10) => {
        if (closed) return;
        closed = true;
        await backend.queue.close(timeoutMs);
        backend.close();
      },
    };
    dirs.set(fixture, dir);
    t.teardown(() => fixture.close());
    return fixture;
  },
});

t.test('closing the backend stops the queue: no poll touches the closed database', async (t) => {
  const clock = new ManualClock();
  const dir = tempDir(t, 'zegel-queue-');
  const backend = new SqliteBackend(dir, clock, silent, { pollMs: 25 });
  t.teardown(() => backend.queue.close(0));
  backend.queue.work('k', async () => ({ status: 'done' }), { concurrency: 1 });
  // the poll timer calls this.poke(): catch what it throws, so a failure shows here and does not crash the file
  const errors: Error[] = [];
  const poke = backend.queue.poke.bind(backend.queue);
  backend.queue.poke = () => {
    try {
      poke();
    } catch (err) {
      errors.push(err as Error);
    }
  };
  await backend.queue.add([{ id: 'one', kind: 'k', payload: null }]);
  await backend.queue.idle();
  backend.close(); // Backend.close() alone, as the Backend interface offers it
  await sleep(150);
  t.same(
    errors.map((e) => e.message),
    [],
    'the poll timer does not run queries on the closed database',
  );
});
