import t from 'tap';
import { deliveredTags, startCluster, submit, type Submission } from './helpers/cluster.js';
import { waitFor } from './helpers/relay.js';

/*
 * Issue 17: PostgreSQL stopped for 20 s in the middle of the load. While it
 * is down no node can commit, so no node may answer 250: clients get 451
 * 4.3.0 (try again later) and keep their mail. When it is back the nodes
 * recover by themselves (no restart of Zegel): new mail is accepted again,
 * and every message acknowledged before, during or after is delivered.
 */

const DOWN_MS = 20_000;
const cluster = await startCluster(t);
const nodes = [await cluster.startNode('a'), await cluster.startNode('b')];

t.test('PostgreSQL down for 20 s: 451 while it is down, never 250; the cluster recovers by itself', async (t) => {
  const before: Submission[] = [];
  for (let i = 0; i < 20; i++) before.push(await submit(nodes[i % 2]!, `before${i}`));
  t.ok(before.every((s) => s.code === 250), 'accepted while PostgreSQL runs');

  await cluster.pg.stop();
  const downAt = Date.now();
  const during: Array<Submission & { startedAt: number; endedAt: number }> = [];
  let i = 0;
  while (Date.now() - downAt < DOWN_MS) {
    const startedAt = Date.now();
    const s = await submit(nodes[i % 2]!, `during${i++}`);
    during.push({ ...s, startedAt, endedAt: Date.now() });
  }
  await cluster.pg.start();
  t.ok(during.length >= 4, `${during.length} submissions while PostgreSQL was down`);
  t.same(during.filter((s) => s.code === 250).map((s) => s.tag), [], 'no 250 while PostgreSQL was down');
  t.same(
    during.filter((s) => !/^451 4\.3\.0 /.test(s.response)).map((s) => `${s.tag}: ${s.response.slice(0, 80)}`),
    [],
    `every one of the ${during.length} answered 451 4.3.0 (try again later)`,
  );

  // recovery without a restart: both nodes accept again once the server is back
  const after: Submission[] = [];
  for (const node of nodes) {
    const first = await waitFor(async () => {
      const s = await submit(node, `after-${node.name}-${after.length}`);
      after.push(s);
      return s.code === 250 ? s : undefined;
    }, 60_000, `node ${node.name} accepts again`);
    t.equal(first.code, 250, `node ${node.name} accepts again`);
  }
  for (let j = 0; j < 20; j++) after.push(await submit(nodes[j % 2]!, `after${j}`));
  const accepted = [...before, ...after].filter((s) => s.code === 250);
  t.ok(nodes.every((n) => n.child.exitCode === null), 'no node died');

  const seen = await deliveredTags(cluster.sink, accepted);
  t.same(accepted.filter((s) => !seen.has(s.tag)).map((s) => s.tag), [], 'every acknowledged message delivered');
  t.same(during.filter((s) => seen.has(s.tag)).map((s) => s.tag), [], 'nothing refused with 451 was delivered');
  t.comment(`accepted ${accepted.length}, refused while down ${during.length}, duplicates ${[...seen.values()].filter((n) => n > 1).length}`);
});
