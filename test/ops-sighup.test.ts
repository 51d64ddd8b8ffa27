import fs from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { shippedRulesDir } from '../src/classify/rules/load.js';
import { tempDir, waitFor } from './helpers/relay.js';
import { freePort, startChildRelay } from './helpers/child-relay.js';
import { BLOCK_RULE } from './helpers/rules.js';

async function rulesLoaded(url: string): Promise<number> {
  const text = await (await fetch(`${url}/metrics`)).text();
  return Number(/^zegel_rules_loaded (\d+)$/m.exec(text)?.[1]);
}

t.test('SIGHUP on the real CLI: log level and rules dir apply live, other changes are named as needing a restart', async (t) => {
  const root = tempDir(t);
  const rulesA = path.join(root, 'rules-a');
  const rulesB = path.join(root, 'rules-b');
  fs.cpSync(shippedRulesDir(), rulesA, { recursive: true });
  fs.cpSync(shippedRulesDir(), rulesB, { recursive: true });
  fs.writeFileSync(path.join(rulesB, 'zwaan.yaml'), BLOCK_RULE);
  const opsPort = await freePort();
  const configFile = path.join(root, 'zegel.yaml');
  const config: Record<string, unknown> = {
    smtp: { listen: `127.0.0.1:${await freePort()}` },
    reader: { listen: `127.0.0.1:${await freePort()}` },
    data: { dir: path.join(root, 'data') },
    rules: { dir: rulesA },
    metrics: { listen: `127.0.0.1:${opsPort}` },
    log: { level: 'info' },
  };
  const relay = await startChildRelay(t, configFile, config);
  const ops = `http://127.0.0.1:${opsPort}`;
  const before = await rulesLoaded(ops);
  t.ok(before > 0);
  t.notMatch(relay.output(), /"level":20/, 'no debug lines at info');

  // a file that does not parse: the running configuration stays
  fs.writeFileSync(configFile, 'smtp: [not, a, map\n');
  relay.child.kill('SIGHUP');
  await waitFor(() => relay.output().includes('configuration reload failed'), 10_000, 'the failed reload logged');

  const { stringify } = await import('yaml');
  fs.writeFileSync(configFile, stringify({ ...config, rules: { dir: rulesB }, log: { level: 'debug' }, smtp: { ...(config.smtp as object), maxRecipients: 7 } }));
  relay.child.kill('SIGHUP');
  await waitFor(() => relay.output().includes('"configuration reloaded"'), 10_000, 'the reload logged');
  const line = relay
    .output()
    .split('\n')
    .find((l) => l.includes('"configuration reloaded"'))!;
  const logged = JSON.parse(line) as { applied: string[]; needsRestart: string[] };
  t.same(logged.applied, ['log.level', 'rules.dir']);
  t.same(logged.needsRestart, ['smtp.maxRecipients']);
  t.match(relay.output(), /"msg":"these changed settings take effect only after a restart"/);
  t.equal(await rulesLoaded(ops), before + 1, 'the new rules dir (one more rule) is active');

  // a rules dir that does not load: refused, the previous set stays, still ready
  fs.writeFileSync(configFile, stringify({ ...config, rules: { dir: path.join(root, 'missing') }, log: { level: 'debug' } }));
  relay.child.kill('SIGHUP');
  await waitFor(() => relay.output().includes('rule set refused'), 10_000, 'the refused rule set logged');
  t.equal(await rulesLoaded(ops), before + 1, 'the previous set stays active');
  const ready = await fetch(`${ops}/readyz`);
  t.equal(ready.status, 200);
  await ready.arrayBuffer();

  relay.child.kill('SIGTERM');
  t.equal(await relay.exited, 0, 'SIGTERM still drains and exits 0');
});
