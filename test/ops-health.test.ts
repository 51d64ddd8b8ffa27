import fs from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { pino } from 'pino';
import { shippedRulesDir } from '../src/classify/rules/load.js';
import { Flag, Health } from '../src/ops/health.js';
import { Metrics } from '../src/ops/metrics.js';
import { startOpsServer } from '../src/ops/server.js';
import { planReload } from '../src/ops/reload.js';
import { parseConfig } from '../src/config/load.js';
import { startRelay, tempDir } from './helpers/relay.js';

const silent = pino({ level: 'silent' });

t.test('/healthz answers while the process runs; /readyz is ready once store, queue and rules are loaded', async (t) => {
  const { relay } = await startRelay(t, { metrics: { listen: '127.0.0.1:0' } });
  const health = await fetch(`${relay.opsUrl}/healthz`);
  t.equal(health.status, 200);
  t.same(await health.json(), { status: 'ok' });
  const ready = await fetch(`${relay.opsUrl}/readyz`);
  t.equal(ready.status, 200);
  t.same(await ready.json(), { status: 'ready', checks: { store: true, queue: true, rules: true, started: true } });
  const missing = await fetch(`${relay.opsUrl}/nothing`);
  t.equal(missing.status, 404);
  await missing.arrayBuffer();
  const post = await fetch(`${relay.opsUrl}/readyz`, { method: 'POST' });
  t.equal(post.status, 405);
  await post.arrayBuffer();
});

t.test('metrics.listen is off by default: no operations listener', async (t) => {
  const { relay } = await startRelay(t);
  t.equal(relay.opsUrl, undefined);
  t.equal(parseConfig({}).metrics.listen, 'off');
  t.same(parseConfig({ metrics: { listen: '127.0.0.1:9090' } }).metrics.listen, { host: '127.0.0.1', port: 9090 });
  t.throws(() => parseConfig({ metrics: { listen: 'everywhere' } }));
});

t.test('a refused rule reload keeps the previous set: still ready, and the refusal is counted', async (t) => {
  const rules = path.join(tempDir(t), 'rules');
  fs.cpSync(shippedRulesDir(), rules, { recursive: true });
  const { relay } = await startRelay(t, { rules: { dir: rules }, metrics: { listen: '127.0.0.1:0' } });
  fs.writeFileSync(path.join(rules, 'broken.yaml'), 'rules:\n  - id: kapot\n    detector: { kind: nonsense }\n');
  const outcome = relay.classifier!.reload();
  t.equal(outcome.ok, false, 'the broken set is refused');
  const ready = await fetch(`${relay.opsUrl}/readyz`);
  t.equal(ready.status, 200, 'the previous set still counts as loaded');
  await ready.arrayBuffer();
  const text = await (await fetch(`${relay.opsUrl}/metrics`)).text();
  t.match(text, /^zegel_rules_reloads_total\{result="refused"\} [1-9]/m);
});

t.test('readiness is false while the rules are not loaded, and during a drain', async (t) => {
  // Relay.start refuses to start at all with a rule set that does not load
  // (ClassifierService throws before anything is opened), so a running relay
  // never has "no rules": the not-ready answer is tested on the component
  // with the same checks the relay registers.
  const rules = path.join(tempDir(t), 'rules');
  fs.mkdirSync(rules);
  fs.writeFileSync(path.join(rules, 'broken.yaml'), 'rules:\n  - id: kapot\n    detector: { kind: nonsense }\n');
  await t.rejects(startRelay(t, { rules: { dir: rules }, metrics: { listen: '127.0.0.1:0' } }), 'a relay with a broken rule set does not start');

  const rulesLoaded = new Flag(false);
  const health = new Health().check('store', () => true).check('queue', () => true).check('rules', rulesLoaded.get);
  const metrics = new Metrics({ defaultMetrics: false });
  const server = await startOpsServer({ listen: { host: '127.0.0.1', port: 0 }, health, metrics, log: silent });
  t.teardown(() => server.close());
  let res = await fetch(`${server.url}/readyz`);
  t.equal(res.status, 503);
  t.same(await res.json(), { status: 'not ready', checks: { store: true, queue: true, rules: false } });
  res = await fetch(`${server.url}/healthz`);
  t.equal(res.status, 200, 'alive all the same');
  await res.arrayBuffer();
  t.match(await (await fetch(`${server.url}/metrics`)).text(), /^zegel_ready 0$/m);
  rulesLoaded.value = true;
  res = await fetch(`${server.url}/readyz`);
  t.equal(res.status, 200);
  await res.arrayBuffer();
  t.match(await (await fetch(`${server.url}/metrics`)).text(), /^zegel_ready 1$/m);
  const throwing = new Health().check('store', () => {
    throw new Error('database is closed');
  });
  t.same(await throwing.readiness(), { ready: false, checks: { store: false } }, 'a check that throws is not ready');
  t.equal((await new Health().readiness()).ready, false, 'no checks: not ready');

  // a relay that drains is no longer ready
  const { relay } = await startRelay(t, { metrics: { listen: '127.0.0.1:0' } });
  t.equal((await relay.health.readiness()).ready, true);
  await relay.stop(1_000);
  t.equal((await relay.health.readiness()).ready, false);
  t.same((await relay.health.readiness()).checks.store, false, 'the store is closed');
});

t.test('planReload: log level, rules and classify apply live; everything else needs a restart; values are never reported', async (t) => {
  const current = parseConfig({});
  const next = parseConfig({ log: { level: 'debug' }, rules: { dir: '/etc/zegel/rules' }, smtp: { maxRecipients: 5 }, verification: { ttl: { email: '5m' } } });
  t.same(planReload(current, next), { applied: ['log.level', 'rules.dir'], needsRestart: ['smtp.maxRecipients', 'verification.ttl.email'] });
  t.same(planReload(current, parseConfig({})), { applied: [], needsRestart: [] });
});
