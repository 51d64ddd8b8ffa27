import t from 'tap';
import { deliveredTags, startCluster, submit, type Submission } from './helpers/cluster.js';
import { waitFor } from './helpers/relay.js';

/*
 * Issue 17: three nodes on one PostgreSQL and one Redis; one of them is
 * killed with SIGKILL in the middle of the load and never restarted. Every
 * message a node acknowledged with 250 is delivered (the bytes and the job
 * were committed in PostgreSQL before the 250, so no node's disk or memory
 * is needed); the dead node's jobs are taken over by the others once their
 * leases run out. Duplicates (a job whose delivery succeeded on the dead
 * node but whose outcome was not committed) are counted and reported, not
 * hidden.
 */

// a checkpoint every second: with three nodes running, still one per interval (one node leads)
const CHECKPOINT_MS = 1_000;
const cluster = await startCluster(t, { config: { delivery: { concurrency: 4 }, audit: { checkpointInterval: `${CHECKPOINT_MS}ms` } } });
const nodes = [await cluster.startNode('a'), await cluster.startNode('b'), await cluster.startNode('c')];
const allStarted = Date.now();

t.test('kill -9 of one node mid-load: every acknowledged message is delivered', async (t) => {
  const TOTAL = 120;
  const KILL_AFTER = 40;
  const victim = nodes[1]!;
  const submissions: Submission[] = [];
  let killed: Promise<void> | undefined;
  // four senders at once, round robin over the nodes still alive
  let next = 0;
  async function sender(): Promise<void> {
    while (next < TOTAL) {
      const i = next++;
      const alive = killed ? nodes.filter((n) => n !== victim) : nodes;
      const node = alive[i % alive.length]!;
      submissions.push(await submit(node, `k${i}`));
      if (submissions.length === KILL_AFTER && !killed) killed = victim.kill();
    }
  }
  await Promise.all([sender(), sender(), sender(), sender()]);
  await killed;
  t.equal(victim.child.signalCode, 'SIGKILL', 'node b was killed');

  const accepted = submissions.filter((s) => s.code === 250);
  const refused = submissions.filter((s) => s.code !== 250);
  // only submissions to the victim around its death may fail, and never with a 250
  for (const s of refused) t.equal(s.node, victim.name, `${s.tag} refused by ${s.node} (${s.code}): only the killed node may refuse`);
  t.ok(accepted.length >= TOTAL - 4, `${accepted.length} of ${TOTAL} accepted`);
  t.ok(accepted.some((s) => s.node === victim.name), 'node b acknowledged messages before it died');

  const seen = await deliveredTags(cluster.sink, accepted);
  const missing = accepted.filter((s) => !seen.has(s.tag));
  t.same(missing.map((s) => `${s.tag}@${s.node}`), [], 'no acknowledged message lost');
  const duplicates = [...seen.values()].filter((n) => n > 1).length;
  t.comment(`accepted ${accepted.length} (${accepted.filter((s) => s.node === victim.name).length} by the killed node), refused ${refused.length}, delivered ${seen.size}, duplicates ${duplicates}`);
  t.ok(duplicates <= 8, `duplicates counted: ${duplicates} (at most the killed node's deliveries in flight)`);

  // the dead node's rows: nothing left leased to it, no job left undone
  const left = await waitFor(async () => {
    const rows = await cluster.query<{ n: string }>("SELECT count(*) AS n FROM jobs WHERE kind IN ('process', 'secure', 'deliver')");
    return Number(rows[0]!.n) === 0 ? true : undefined;
    // the dead node's claims run out after the lease (30 s by default), then the reconciler hands them on
  }, 60_000, 'the job table drained').catch(() => false);
  const stuck = left ? [] : await cluster.query("SELECT * FROM jobs WHERE kind IN ('process', 'secure', 'deliver')");
  t.ok(left, `every message job finished on the surviving nodes${stuck.length ? `: left ${JSON.stringify(stuck)}` : ''}`);

  // the audit timer runs on all three nodes (two after the kill); the leader's lock lets one sign per interval
  const until = Date.now();
  const rows = await cluster.query<{ n: string }>('SELECT count(*) AS n FROM audit_checkpoints WHERE at >= $1 AND at < $2', [allStarted, until]);
  const intervals = (until - allStarted) / CHECKPOINT_MS;
  t.ok(Number(rows[0]!.n) >= 1 && Number(rows[0]!.n) <= intervals + 3, `${rows[0]!.n} audit checkpoints in ${intervals.toFixed(1)} intervals with three nodes running (unguarded: about three per interval)`);
});
