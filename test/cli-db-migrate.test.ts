import fs from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { stringify } from 'yaml';
import { PG_MIGRATIONS } from '../src/store/pg/migrations/index.js';
import { runZegel } from './helpers/child-relay.js';
import { startPostgres } from './helpers/pg-server.js';
import { tempDir } from './helpers/relay.js';

/*
 * `zegel db migrate --config FILE` (the real CLI) against a real PostgreSQL:
 * applies the schema, says so, and is a no-op the second time; exits 1 when
 * the database is newer than this Zegel or the server is down, without the
 * password on its output; exits 2 for a configuration that is not a
 * PostgreSQL one.
 */
const server = await startPostgres();
t.teardown(() => server.cleanup());
const url = await server.createDatabase('cli');

function configFile(t: Parameters<typeof tempDir>[0], store: Record<string, unknown>): string {
  const dir = tempDir(t, 'zegel-db-cli-');
  const file = path.join(dir, 'zegel.yaml');
  // the cluster's key files are named (the configuration requires it); db migrate reads none of them
  fs.writeFileSync(
    file,
    stringify({
      data: { dir: path.join(dir, 'data'), relayKeyFile: 'keys/relay.key' },
      store: { keyFile: 'keys/storage.key', ...store },
      audit: { signingKeyFile: 'keys/audit-signing.pem' },
      // a cluster's queue (the configuration requires it with postgres); db migrate never contacts Redis
      queue: { driver: 'bullmq', url: 'redis://127.0.0.1:6379' },
    }),
  );
  return file;
}

t.test('applies the migrations once, then finds nothing to apply', async (t) => {
  const config = configFile(t, { driver: 'postgres', url, passwordFile: server.passwordFile });
  const first = await runZegel(['db', 'migrate', '--config', config]);
  t.equal(first.code, 0, `exit 0 (${first.stderr.trim()})`);
  for (const m of PG_MIGRATIONS) t.match(first.stdout, `applied ${m.version}-${m.name}`);
  t.match(first.stdout, `schema at version ${PG_MIGRATIONS.length}\n`);
  const rows = await server.query<{ version: number }>('SELECT version FROM zegel_schema_migrations ORDER BY version', [], 'cli');
  t.same(rows.map((r) => r.version), PG_MIGRATIONS.map((m) => m.version), 'recorded in the database');

  const second = await runZegel(['db', 'migrate', '--config', config]);
  t.equal(second.code, 0);
  t.notMatch(second.stdout, 'applied');
  t.match(second.stdout, `schema at version ${PG_MIGRATIONS.length}, nothing to apply`);
  t.notOk(first.stdout.includes(server.password) || first.stderr.includes(server.password), 'the password is not printed');
});

t.test('a database newer than this Zegel: exit 1, named, untouched', async (t) => {
  const config = configFile(t, { driver: 'postgres', url, passwordFile: server.passwordFile });
  await server.query("INSERT INTO zegel_schema_migrations (version, name, checksum) VALUES (999, 'future', 'x')", [], 'cli');
  t.teardown(() => server.query('DELETE FROM zegel_schema_migrations WHERE version = 999', [], 'cli'));
  const r = await runZegel(['db', 'migrate', '--config', config]);
  t.equal(r.code, 1);
  t.match(r.stderr, /^zegel: ZEGEL_SCHEMA_NEWER: .*version 999/m);
});

t.test('the server down: exit 1, ZEGEL_STORE_UNAVAILABLE, no password on the output', async (t) => {
  const config = configFile(t, { driver: 'postgres', url, passwordFile: server.passwordFile });
  await server.stop();
  t.teardown(() => server.start());
  const r = await runZegel(['db', 'migrate', '--config', config]);
  t.equal(r.code, 1);
  t.match(r.stderr, /^zegel: ZEGEL_STORE_UNAVAILABLE: /m);
  t.notOk(r.stdout.includes(server.password) || r.stderr.includes(server.password), 'the password is not printed');
});

t.test('a configuration without store.driver postgres: exit 2', async (t) => {
  const dir = tempDir(t, 'zegel-db-cli-');
  const file = path.join(dir, 'zegel.yaml');
  fs.writeFileSync(file, stringify({ data: { dir: path.join(dir, 'data') } }));
  const r = await runZegel(['db', 'migrate', '--config', file]);
  t.equal(r.code, 2);
  t.match(r.stderr, /^zegel: ZEGEL_CLI_INPUT: .*store\.driver is sqlite/m);
  t.notOk(fs.existsSync(path.join(dir, 'data')), 'nothing made');
});
