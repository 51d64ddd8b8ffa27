import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { parse } from 'yaml';
import { parseConfig } from '../src/config/load.js';
import { repoRoot } from './helpers/repo-root.js';

// No Docker engine runs here: the Dockerfile is checked statically, by
// dockerfilelint and by reading it, never built.
const root = repoRoot;
const dockerfile = fs.readFileSync(path.join(root, 'Dockerfile'), 'utf8');
/** Instructions with their continuation lines joined, comments dropped. */
const instructions = dockerfile
  .replace(/\\\n/g, ' ')
  .split('\n')
  .map((line) => line.trim())
  .filter((line) => line && !line.startsWith('#'));

t.test('dockerfilelint finds no issues', async (t) => {
  const run = spawnSync(path.join(root, 'node_modules/.bin/dockerfilelint'), ['--json', 'Dockerfile'], { cwd: root, encoding: 'utf8' });
  const report = JSON.parse(run.stdout) as { totalIssues: number; files: Array<{ issues: unknown[] }> };
  t.same(report.files[0]?.issues, [], 'no issues');
  t.equal(report.totalIssues, 0);
  t.equal(run.status, 0);
});

t.test('multi-stage, Node 20 slim, non-root, volume, ports, healthcheck without curl, entrypoint', async (t) => {
  const froms = instructions.filter((i) => i.startsWith('FROM '));
  t.same(froms, ['FROM node:20-bookworm-slim AS deps', 'FROM node:20-bookworm-slim AS build', 'FROM node:20-bookworm-slim AS runtime']);
  const runtime = instructions.slice(instructions.indexOf('FROM node:20-bookworm-slim AS runtime'));
  t.ok(instructions.some((i) => /^RUN .*apt-get install -y --no-install-recommends python3 make g\+\+/.test(i)), 'compilers in the build stages');
  t.notOk(runtime.some((i) => /apt-get|g\+\+|curl/.test(i)), 'no compilers or curl in the runtime stage');
  t.ok(instructions.some((i) => /^RUN npm ci --omit=dev/.test(i)), 'production dependencies by npm ci --omit=dev');
  t.ok(runtime.includes('COPY --from=deps --chown=root:root /app/node_modules ./node_modules'));
  t.ok(runtime.includes('COPY --from=build --chown=root:root /app/dist ./dist'));
  for (const dir of ['bin', 'rules', 'templates', 'config']) t.ok(runtime.some((i) => new RegExp(`^COPY .* ${dir} \\./${dir}$`).test(i)), `${dir} copied`);
  t.ok(runtime.includes('USER zegel'), 'runs as the zegel user');
  t.ok(runtime.indexOf('USER zegel') < runtime.findIndex((i) => i.startsWith('ENTRYPOINT')));
  t.ok(runtime.includes('VOLUME ["/var/lib/zegel"]'));
  t.ok(runtime.includes('EXPOSE 2525 8080 9090'));
  const health = runtime.find((i) => i.startsWith('HEALTHCHECK'))!;
  t.match(health, /CMD \["node", "-e", "fetch\(process\.env\.ZEGEL_HEALTH_URL\)/);
  t.match(dockerfile, /ZEGEL_HEALTH_URL=http:\/\/127\.0\.0\.1:9090\/healthz/);
  t.equal(runtime.at(-1), 'ENTRYPOINT ["node", "bin/zegel", "start", "--config", "/etc/zegel/zegel.yaml"]');
});

t.test('everything the Dockerfile copies exists and is not excluded by .dockerignore', async (t) => {
  const ignored = fs
    .readFileSync(path.join(root, '.dockerignore'), 'utf8')
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith('#') && !l.startsWith('!'))
    .map((l) => l.replace(/^\//, ''));
  const sources = instructions
    .filter((i) => i.startsWith('COPY ') && !i.includes('--from='))
    .flatMap((i) => i.replace(/--chown=\S+ /, '').split(/\s+/).slice(1, -1));
  t.ok(sources.length >= 10);
  for (const source of sources) {
    t.ok(fs.existsSync(path.join(root, source)), `${source} exists`);
    t.notOk(ignored.some((pattern) => source === pattern || source.startsWith(`${pattern}/`)), `${source} is in the build context`);
  }
  for (const kept of ['node_modules', '.git', 'dist', 'data', 'test']) t.ok(ignored.includes(kept), `${kept} stays out of the context`);
});

t.test('the image configuration is valid and listens where the image expects', async (t) => {
  const config = parseConfig(parse(fs.readFileSync(path.join(root, 'deploy/docker/zegel.yaml'), 'utf8')) as Record<string, unknown>);
  t.same(config.smtp.listen, { host: '0.0.0.0', port: 2525 });
  t.same(config.reader.listen, { host: '0.0.0.0', port: 8080 });
  t.same(config.metrics.listen, { host: '0.0.0.0', port: 9090 });
  t.equal(config.data.dir, '/var/lib/zegel');
});

t.test('the systemd unit: unprivileged, sandboxed, reload by SIGHUP', async (t) => {
  const unit = fs.readFileSync(path.join(root, 'deploy/zegel.service'), 'utf8');
  for (const line of [
    'User=zegel',
    'ProtectSystem=strict',
    'ReadWritePaths=/var/lib/zegel',
    'NoNewPrivileges=yes',
    'ExecReload=/bin/kill -HUP $MAINPID',
    'Restart=on-failure',
    'KillSignal=SIGTERM',
  ]) {
    t.match(unit, new RegExp(`^${line.replace(/[$]/g, '\\$')}$`, 'm'), line);
  }
  t.match(unit, /^ExecStart=\S+ \S*bin\/zegel start --config \/etc\/zegel\/zegel\.yaml$/m);
});
