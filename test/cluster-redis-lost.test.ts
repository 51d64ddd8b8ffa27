import t from 'tap';
import { deliveredTags, startCluster, submit, type Submission } from './helpers/cluster.js';

/*
 * Issue 17: Redis killed in the middle of the load and started again empty
 * (no persistence: what a lost Redis is). PostgreSQL holds every job; the
 * reconciler puts back what Redis lost, and the workers reconnect by
 * themselves: nothing is lost and no node is restarted.
 */

const cluster = await startCluster(t);
const nodes = [await cluster.startNode('a'), await cluster.startNode('b')];

t.test('Redis killed and restarted empty mid-load: nothing lost, no restart of Zegel', async (t) => {
  const submissions: Submission[] = [];
  for (let i = 0; i < 30; i++) submissions.push(await submit(nodes[i % 2]!, `r${i}`));
  await cluster.redis.kill();
  // intake does not need Redis: the job rows are in PostgreSQL, BullMQ carries them once it is back
  for (let i = 30; i < 60; i++) submissions.push(await submit(nodes[i % 2]!, `r${i}`));
  await cluster.redis.start();
  for (let i = 60; i < 90; i++) submissions.push(await submit(nodes[i % 2]!, `r${i}`));
  const refused = submissions.filter((s) => s.code !== 250);
  t.same(refused.map((s) => `${s.tag}: ${s.response}`), [], 'every submission accepted, with Redis down too');

  const seen = await deliveredTags(cluster.sink, submissions);
  t.same(submissions.filter((s) => !seen.has(s.tag)).map((s) => s.tag), [], 'nothing lost');
  t.equal([...seen.values()].filter((n) => n > 1).length, 0, 'no message delivered twice');
  t.ok(nodes.every((n) => n.child.exitCode === null), 'no node restarted or died');
});
