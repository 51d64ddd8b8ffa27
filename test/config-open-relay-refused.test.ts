import fs from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { parse, stringify } from 'yaml';
import { defaultConfig, parseConfig } from '../src/config/load.js';
import { isLoopbackEntry, relayScopeProblems } from '../src/config/validate.js';
import { freePort, runZegel, startChildRelay } from './helpers/child-relay.js';
import { tempDir, waitFor } from './helpers/relay.js';
import { repoRoot } from './helpers/repo-root.js';

// A relay reachable beyond loopback relays for nobody until the configuration
// says for whom (organisation.domains) and where mail goes (delivery.target).
// The image's own configuration, unmodified, must therefore not start.

const root = repoRoot;
const shipped = path.join(root, 'deploy/docker/zegel.yaml');
const shippedInput = () => parse(fs.readFileSync(shipped, 'utf8')) as Record<string, Record<string, unknown>>;

/** Writes `config` as YAML into a fresh folder; data.dir and the outbox in that folder too. */
function configFile(t: Parameters<typeof tempDir>[0], config: Record<string, unknown>): string {
  const dir = tempDir(t);
  const file = path.join(dir, 'zegel.yaml');
  fs.writeFileSync(file, stringify({ ...config, data: { dir: path.join(dir, 'data') } }));
  return file;
}

t.test('the image configuration as shipped: check-config and start refuse with ZEGEL_CONFIG_OPEN_RELAY', async (t) => {
  const check = await runZegel(['check-config', '--config', shipped]);
  t.equal(check.code, 2, 'check-config exits 2');
  t.equal(check.stdout, '', 'no effective configuration printed');
  t.match(check.stderr, /^zegel: ZEGEL_CONFIG_OPEN_RELAY: .*would relay for anyone, refused/m);
  t.match(check.stderr, /organisation\.domains: empty while the relay is reachable beyond loopback \(smtp\.listen 0\.0\.0\.0:2525\)/, 'names the key and why');
  t.match(check.stderr, /delivery\.target: not set while the relay is reachable beyond loopback/);

  // start: the same file with only its paths moved into a temporary folder, so
  // that a relay which wrongly starts writes nothing under /var/lib
  const input = shippedInput();
  const dir = tempDir(t);
  const copy = path.join(dir, 'zegel.yaml');
  fs.writeFileSync(copy, stringify({ ...input, data: { dir: path.join(dir, 'data') }, delivery: { ...input.delivery, outboxDir: path.join(dir, 'outbox') } }));
  const start = await runZegel(['start', '--config', copy]);
  t.equal(start.code, 2, 'start exits 2');
  t.match(start.stderr, /^zegel: ZEGEL_CONFIG_OPEN_RELAY: /m);
  t.match(start.stderr, /organisation\.domains: empty while the relay is reachable beyond loopback \(smtp\.listen 0\.0\.0\.0:2525\)/);
  t.notMatch(start.stderr + start.stdout, /relay started/, 'nothing started');
  t.same(fs.readdirSync(dir), ['zegel.yaml'], 'refused before creating data.dir or the outbox');

  t.same(input.smtp!.allow, ['127.0.0.0/8', '::1/128'], 'the shipped allow list is loopback only');
  t.notOk((input.organisation!.domains as unknown[] | undefined)?.length, 'no domains shipped');
  t.equal((input.delivery as Record<string, unknown>).target, undefined, 'no delivery target shipped');
  t.equal((input.delivery as Record<string, unknown>).outboxDir, '/var/lib/zegel-outbox', 'the outbox lies outside the data VOLUME');
});

t.test('the image configuration with domains and a target set by the operator: accepted', async (t) => {
  const input = shippedInput();
  const file = configFile(t, { ...input, organisation: { ...input.organisation, domains: ['org.test'] }, delivery: { target: 'smtp://smarthost.org.test:25' } });
  const check = await runZegel(['check-config', '--config', file]);
  t.equal(check.code, 0, check.stderr);
  const effective = JSON.parse(check.stdout) as { smtp: { listen: unknown; allow: string[] }; organisation: { domains: string[] } };
  t.same(effective.smtp.listen, { host: '0.0.0.0', port: 2525 });
  t.same(effective.organisation.domains, ['org.test']);
});

t.test('domains: [] with an allow entry outside loopback: refused by check-config and start', async (t) => {
  const port = await freePort();
  const file = configFile(t, { organisation: { domains: [] }, smtp: { listen: `127.0.0.1:${port}`, allow: ['127.0.0.0/8', '10.0.0.0/8'] }, delivery: { target: 'outbox' } });
  for (const command of ['check-config', 'start']) {
    const run = await runZegel([command, '--config', file]);
    t.equal(run.code, 2, `${command} exits 2`);
    t.match(run.stderr, /^zegel: ZEGEL_CONFIG_OPEN_RELAY: /m, command);
    t.match(run.stderr, /organisation\.domains: empty while the relay is reachable beyond loopback \(smtp\.allow 10\.0\.0\.0\/8\)/, `${command}: names the entry`);
    t.notMatch(run.stderr, /delivery\.target:/, `${command}: the target was given`);
  }
  t.notOk(fs.existsSync(path.join(path.dirname(file), 'data')), 'start refused before creating data.dir');
});

t.test('domains set with an allow entry outside loopback: check-config and start accept; a reload to domains: [] is refused', async (t) => {
  const port = await freePort();
  const config = { organisation: { domains: ['org.test'] }, smtp: { listen: `127.0.0.1:${port}`, allow: ['10.0.0.0/8'] }, delivery: { target: 'outbox' } };
  const file = configFile(t, config);
  const check = await runZegel(['check-config', '--config', file]);
  t.equal(check.code, 0, check.stderr);

  const written = parse(fs.readFileSync(file, 'utf8')) as Record<string, unknown>;
  const relay = await startChildRelay(t, file, written);
  t.match(relay.output(), /"relay started"/);
  fs.writeFileSync(file, stringify({ ...written, organisation: { domains: [] } }));
  relay.child.kill('SIGHUP');
  await waitFor(() => relay.output().includes('configuration reload failed'), 10_000, 'the refused reload');
  t.match(relay.output(), /would relay for anyone/, 'the reload names why');
  t.equal(relay.child.exitCode, null, 'the relay keeps running on its configuration');
  relay.child.kill('SIGTERM');
  t.equal(await relay.exited, 0);
});

t.test('listening beyond loopback with domains but no delivery.target: refused', async (t) => {
  const file = configFile(t, { organisation: { domains: ['org.test'] }, smtp: { listen: '0.0.0.0:2525' } });
  const check = await runZegel(['check-config', '--config', file]);
  t.equal(check.code, 2);
  t.match(check.stderr, /ZEGEL_CONFIG_OPEN_RELAY: [^]*delivery\.target: not set while the relay is reachable beyond loopback \(smtp\.listen 0\.0\.0\.0:2525\)/);
  t.notMatch(check.stderr, /organisation\.domains:/);
});

t.test('the embedded default and loopback-only files need neither domains nor a target', async (t) => {
  t.same(relayScopeProblems(defaultConfig().config, undefined), [], 'the embedded default');
  const empty = configFile(t, {});
  const check = await runZegel(['check-config', '--config', empty]);
  t.equal(check.code, 0, check.stderr);
  const loopback = configFile(t, { smtp: { listen: '[::1]:2525', allow: ['127.0.0.1', '::1', '::ffff:127.0.0.1/128'] } });
  t.equal((await runZegel(['check-config', '--config', loopback])).code, 0, 'listen ::1 with loopback entries only');
  t.same(relayScopeProblems(parseConfig({ smtp: { listen: 'localhost:2525' } }), {}), [], 'localhost');
});

t.test('what counts as loopback in smtp.allow', async (t) => {
  for (const entry of ['127.0.0.0/8', '127.0.0.1', '127.1.2.3/32', '::1', '::1/128', '0:0:0:0:0:0:0:1', '::ffff:127.0.0.1', '::ffff:127.0.0.0/104']) {
    t.ok(isLoopbackEntry(entry), `${entry} is loopback`);
  }
  for (const entry of ['126.0.0.0/7', '127.0.0.0/4', '0.0.0.0/0', '10.0.0.0/8', '192.168.1.1', '::/0', '::1/127', '::/127', '::ffff:0:0/96', '::ffff:127.0.0.0/100', '2001:db8::1']) {
    t.notOk(isLoopbackEntry(entry), `${entry} reaches beyond loopback`);
  }
});
