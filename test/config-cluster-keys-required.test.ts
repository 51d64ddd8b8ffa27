import fs from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { stringify } from 'yaml';
import { parseConfig } from '../src/config/load.js';
import { loadRelaySecret } from '../src/crypto/relay-secret.js';
import { freePort, runZegel, startChildRelay } from './helpers/child-relay.js';
import { tempDir } from './helpers/relay.js';

/*
 * The cluster part of the configuration contract (issue 17): store.driver
 * postgres needs store.url without a password in it, and the three key files
 * every node shares, named rather than made by each node; bullmq needs
 * postgres and postgres needs bullmq. A store that does not answer is named
 * before anything is made.
 */

const URL = 'postgres://zegel@127.0.0.1:5432/zegel';

/** What parseConfig throws for `input` (code and message), or undefined when it accepts it. */
function refusal(input: unknown): { code: string; message: string } | undefined {
  try {
    parseConfig(input, '/etc/zegel');
  } catch (err) {
    return { code: (err as { code: string }).code, message: (err as Error).message };
  }
  return undefined;
}

const keys = { data: { relayKeyFile: 'keys/relay.key' }, store: { keyFile: 'keys/storage.key' }, audit: { signingKeyFile: 'keys/audit-signing.pem' } };
const cluster = (extra: { store?: object; data?: object; audit?: object; queue?: object } = {}) => ({
  data: { ...keys.data, ...extra.data },
  store: { driver: 'postgres', url: URL, ...keys.store, ...extra.store },
  audit: { ...keys.audit, ...extra.audit },
  queue: extra.queue ?? { driver: 'bullmq', url: 'redis://127.0.0.1:6379' },
});

t.test('defaults unchanged: SQLite, the in-process queue, the relay key in data.dir', async (t) => {
  const config = parseConfig({}, '/srv/zegel');
  t.same(config.store, { driver: 'sqlite' });
  t.same(config.queue, { driver: 'sqlite' });
  t.equal(config.data.relayKeyFile, undefined, 'no relay key file named: <data.dir>/relay.key as before');
  t.equal(refusal({ data: { relayKeyFile: 'relay.key' }, audit: { signingKeyFile: 'a.pem' } }), undefined, 'key files may be named with SQLite too');
});

t.test('a cluster configuration: paths resolved against the config folder', async (t) => {
  const config = parseConfig({ ...cluster({ store: { passwordFile: 'secrets/db-password' }, queue: { driver: 'bullmq', url: 'redis://127.0.0.1:6379', passwordFile: 'secrets/redis-password' } }) }, '/etc/zegel');
  t.same(config.store, { driver: 'postgres', url: URL, passwordFile: '/etc/zegel/secrets/db-password', keyFile: '/etc/zegel/keys/storage.key' });
  t.same(config.queue, { driver: 'bullmq', url: 'redis://127.0.0.1:6379', passwordFile: '/etc/zegel/secrets/redis-password' });
  t.equal(config.data.relayKeyFile, '/etc/zegel/keys/relay.key');
  t.equal(config.audit.signingKeyFile, '/etc/zegel/keys/audit-signing.pem');
  t.equal(refusal(cluster({ store: { url: 'postgresql:///zegel?host=/run/postgresql' } })), undefined, 'a Unix socket URL');
});

t.test('store.driver postgres without a key file: refused, naming each missing key', async (t) => {
  const none = refusal({ store: { driver: 'postgres', url: URL }, queue: { driver: 'bullmq', url: 'redis://127.0.0.1:6379' } });
  t.equal(none?.code, 'ZEGEL_CONFIG_INVALID');
  for (const key of ['data.relayKeyFile', 'store.keyFile', 'audit.signingKeyFile']) {
    t.match(none?.message, new RegExp(`\\n  ${key.replace('.', '\\.')}: required with store\\.driver postgres`), `${key} named`);
  }
  t.match(none?.message, /zegel keys generate DIR/, 'says how to make them');
  const each: Array<[string, object]> = [
    ['data.relayKeyFile', { data: { ...keys.data, relayKeyFile: undefined } }],
    ['store.keyFile', { store: { driver: 'postgres', url: URL } }],
    ['audit.signingKeyFile', { audit: { signingKeyFile: undefined } }],
  ];
  for (const [key, without] of each) {
    const input = { ...cluster(), ...without };
    const problem = refusal(input);
    t.equal(problem?.code, 'ZEGEL_CONFIG_INVALID', `without ${key}: refused`);
    t.equal(problem?.message.split('\n').length, 2, `without ${key}: one problem`);
    t.match(problem?.message, new RegExp(`^  ${key.replace('.', '\\.')}: required`, 'm'));
  }
  t.match(refusal(cluster({ store: { keyFile: 'keys/relay.key' } }))?.message, /store\.keyFile: the same file as data\.relayKeyFile/, 'one file for two keys');
  t.match(refusal({ ...cluster(), store: { driver: 'postgres', keyFile: 'k' } })?.message, /store\.url: required with store\.driver postgres/, 'no URL');
});

t.test('a password in store.url is refused and never repeated', async (t) => {
  for (const url of ['postgres://zegel:Geheim-42@db.example.nl/zegel', 'postgres://:Geheim-42@db.example.nl/zegel', 'postgresql://zegel@db.example.nl/zegel?sslmode=require&password=Geheim-42', 'postgres://zegel@db.example.nl/zegel?PASSWORD=Geheim-42']) {
    const problem = refusal(cluster({ store: { url } }));
    t.equal(problem?.code, 'ZEGEL_CONFIG_INVALID', `${url.replace('Geheim-42', '…')}: refused`);
    t.match(problem?.message, /store\.url: holds a password, refused: the password goes in a file named by store\.passwordFile/);
    t.notOk(problem?.message.includes('Geheim-42'), 'the password is not in the message');
  }
  t.match(refusal(cluster({ store: { url: 'mysql://db.example.nl/zegel' } }))?.message, /store\.url: expected a URL such as postgres:\/\//, 'another scheme');
  t.match(refusal(cluster({ store: { url: 'not a url' } }))?.message, /store\.url: expected a URL/);
});

t.test('queue.driver bullmq needs queue.url and store.driver postgres', async (t) => {
  const onSqlite = refusal({ queue: { driver: 'bullmq', url: 'redis://127.0.0.1:6379' } });
  t.equal(onSqlite?.code, 'ZEGEL_CONFIG_INVALID');
  t.match(onSqlite?.message, /queue\.driver: bullmq needs store\.driver postgres \(PostgreSQL is the source of truth for jobs/);
  t.match(refusal(cluster({ queue: { driver: 'bullmq' } }))?.message, /queue\.url: required with queue\.driver bullmq/);
  t.match(refusal(cluster({ queue: { driver: 'bullmq', url: 'http://127.0.0.1:6379' } }))?.message, /queue\.url: expected a URL such as redis:\/\//);
  t.equal(refusal(cluster({ queue: { driver: 'bullmq', url: 'rediss://redis.example.nl:6380' } })), undefined, 'bullmq on postgres with a URL');
  // the in-process queue lives in one node's SQLite file: a cluster of them would each run their own
  const inProcess = refusal(cluster({ queue: { driver: 'sqlite' } }));
  t.equal(inProcess?.message.split('\n').length, 2, 'postgres with the sqlite queue: one problem');
  t.match(inProcess?.message, /queue\.driver: store\.driver postgres needs queue\.driver bullmq/);
  for (const url of ['redis://:Geheim-42@127.0.0.1:6379', 'redis://default:Geheim-42@127.0.0.1:6379/0', 'rediss://127.0.0.1:6380?password=Geheim-42']) {
    const problem = refusal(cluster({ queue: { driver: 'bullmq', url } }));
    t.match(problem?.message, /queue\.url: holds a password, refused: the password goes in a file named by queue\.passwordFile/, 'a password in queue.url is refused');
    t.notOk(problem?.message.includes('Geheim-42'), 'and never repeated');
  }
});

t.test('server settings of a driver not chosen are refused, not ignored', async (t) => {
  for (const [key, input] of [
    ['store.url', { store: { url: URL } }],
    ['store.passwordFile', { store: { passwordFile: 'pw' } }],
    ['store.keyFile', { store: { keyFile: 'k' } }],
    ['queue.url', { queue: { url: 'redis://127.0.0.1:6379' } }],
    ['queue.passwordFile', { queue: { passwordFile: 'pw' } }],
  ] as const) {
    t.match(refusal(input)?.message, new RegExp(`${key.replace('.', '\\.')}: only used with`), `${key} with sqlite`);
  }
});

t.test('data.relayKeyFile: read, never made; a file readable by others refused', async (t) => {
  const dir = tempDir(t, 'zegel-relay-key-');
  const dataDir = path.join(dir, 'data');
  const file = path.join(dir, 'relay.key');
  t.throws(() => loadRelaySecret({ dataDir, relayKeyFile: file }), { code: 'ZEGEL_RELAY_KEY', message: /no relay key: data\.relayKeyFile names a file that must exist/ });
  t.notOk(fs.existsSync(file), 'the named file is not made');
  t.notOk(fs.existsSync(dataDir), 'nor anything in data.dir');
  fs.writeFileSync(file, Buffer.alloc(32, 7), { mode: 0o600 });
  t.ok(loadRelaySecret({ dataDir, relayKeyFile: file }).equals(Buffer.alloc(32, 7)));
  for (const mode of [0o640, 0o604, 0o644]) {
    fs.chmodSync(file, mode);
    t.throws(() => loadRelaySecret({ dataDir, relayKeyFile: file }), { code: 'ZEGEL_RELAY_KEY', message: /must be 0600 or stricter/ }, `mode ${mode.toString(8)} refused`);
  }
  fs.chmodSync(file, 0o600);
  fs.writeFileSync(file, Buffer.alloc(31));
  t.throws(() => loadRelaySecret({ dataDir, relayKeyFile: file }), { code: 'ZEGEL_RELAY_KEY', message: /exactly 32 bytes/ });

  // the default is made once in data.dir, 0600, as before; loosened, it is refused too
  const made = loadRelaySecret({ dataDir });
  const defaultFile = path.join(dataDir, 'relay.key');
  t.equal(fs.statSync(defaultFile).mode & 0o777, 0o600);
  t.ok(loadRelaySecret({ dataDir }).equals(made), 'read again, not made again');
  fs.chmodSync(defaultFile, 0o644);
  t.throws(() => loadRelaySecret({ dataDir }), { code: 'ZEGEL_RELAY_KEY' });
});

t.test('zegel start (the real CLI)', async (t) => {
  const base = fs.realpathSync(tempDir(t, 'zegel-cluster-'));
  const keyDir = path.join(base, 'keys');
  t.equal((await runZegel(['keys', 'generate', keyDir])).code, 0);
  const dataDir = path.join(base, 'data');
  const write = (name: string, config: object) => {
    const file = path.join(base, name);
    fs.writeFileSync(file, stringify(config));
    return file;
  };
  const nothingMade = (what: string) => {
    t.notOk(fs.existsSync(dataDir), `${what}: no data.dir made`);
    t.notOk(fs.existsSync(path.join(base, 'outbox')), `${what}: no outbox made`);
  };

  await t.test('postgres without the key files: refused before anything is made', async (t) => {
    const file = write('no-keys.yaml', { store: { driver: 'postgres', url: URL } });
    for (const command of ['start', 'check-config']) {
      const r = await runZegel([command, '--config', file]);
      t.equal(r.code, 2, `${command}: exit 2`);
      t.match(r.stderr, /^zegel: ZEGEL_CONFIG_INVALID: .*no-keys\.yaml is invalid:\n  data\.relayKeyFile: required with store\.driver postgres.*\n  store\.keyFile: required.*\n  audit\.signingKeyFile: required/, `${command}: names the three keys`);
      t.equal(r.stdout, '');
    }
    nothingMade('without keys');
  });

  await t.test('a password in store.url, and bullmq on SQLite: refused by start', async (t) => {
    const withPassword = await runZegel(['start', '--config', write('pw.yaml', cluster({ store: { url: 'postgres://zegel:Geheim-42@127.0.0.1/zegel', keyFile: `${keyDir}/storage.key` } }))]);
    t.equal(withPassword.code, 2);
    t.match(withPassword.stderr, /ZEGEL_CONFIG_INVALID: .*\n  store\.url: holds a password, refused/);
    t.notOk(withPassword.stderr.includes('Geheim-42'), 'the password is not echoed');
    const bullmq = await runZegel(['start', '--config', write('bullmq.yaml', { queue: { driver: 'bullmq', url: 'redis://127.0.0.1:6379' } })]);
    t.equal(bullmq.code, 2);
    t.match(bullmq.stderr, /ZEGEL_CONFIG_INVALID: .*\n  queue\.driver: bullmq needs store\.driver postgres/);
    nothingMade('refused configurations');
  });

  const allKeys = {
    data: { dir: dataDir, relayKeyFile: path.join(keyDir, 'relay.key') },
    store: { driver: 'postgres', url: URL, keyFile: path.join(keyDir, 'storage.key') },
    audit: { signingKeyFile: path.join(keyDir, 'audit-signing.pem') },
    queue: { driver: 'bullmq', url: 'redis://127.0.0.1:6379' },
    smtp: { listen: `127.0.0.1:${await freePort()}` },
    reader: { listen: `127.0.0.1:${await freePort()}` },
  };
  // a port nothing listens on: the store is named unavailable before anything is made
  const noServer = { ...allKeys, store: { ...allKeys.store, url: `postgres://zegel@127.0.0.1:${await freePort()}/zegel` } };

  await t.test('postgres with every key and no server answering: start names the store, makes nothing', async (t) => {
    const file = write('cluster.yaml', noServer);
    const r = await runZegel(['start', '--config', file]);
    t.equal(r.code, 2, 'exit 2: could not start');
    t.match(r.stderr, /^zegel: ZEGEL_STORE_UNAVAILABLE: PostgreSQL zegel@127\.0\.0\.1:\d+\/zegel unavailable: connect ECONNREFUSED/m);
    t.notOk(r.stderr.includes('"relay started"'), 'no relay started');
    nothingMade('no server');
    const checked = await runZegel(['check-config', '--config', file]);
    t.equal(checked.code, 0, 'check-config: the configuration itself is valid');
    t.notMatch(checked.stderr, /refuses this configuration/, 'and start would not refuse its drivers');
  });

  await t.test('an admin command on postgres with no server answering: named, no SQLite file made', async (t) => {
    // the admin commands run on PostgreSQL (test/cli-admin-on-postgres.test.ts)
    const file = write('admin.yaml', noServer);
    for (const args of [['recipients', 'list'], ['messages', 'list'], ['queue', 'list']]) {
      const r = await runZegel([...args, '--config', file]);
      t.equal(r.code, 2, `${args.join(' ')}: exit 2`);
      t.match(r.stderr, /^zegel: ZEGEL_STORE_UNAVAILABLE: PostgreSQL zegel@127\.0\.0\.1:\d+\/zegel unavailable/m, args.join(' '));
    }
    nothingMade('admin commands');
  });

  await t.test('postgres with a key file that does not load: that key is named first', async (t) => {
    const missingRelayKey = write('missing-relay.yaml', { ...allKeys, data: { ...allKeys.data, relayKeyFile: path.join(base, 'nowhere', 'relay.key') } });
    const r = await runZegel(['start', '--config', missingRelayKey]);
    t.equal(r.code, 2);
    t.match(r.stderr, /^zegel: ZEGEL_RELAY_KEY: .*nowhere\/relay\.key: no relay key/);
    t.notOk(fs.existsSync(path.join(base, 'nowhere')), 'the relay key is not made');
    const storageKey = path.join(base, 'loose-storage.key');
    fs.copyFileSync(path.join(keyDir, 'storage.key'), storageKey);
    fs.chmodSync(storageKey, 0o644);
    const loose = await runZegel(['start', '--config', write('loose.yaml', { ...allKeys, store: { ...allKeys.store, keyFile: storageKey } })]);
    t.equal(loose.code, 2);
    t.match(loose.stderr, /^zegel: ZEGEL_STORAGE_KEY: .*loose-storage\.key: the storage key has mode 0644; it must be 0600 or stricter/);
    const noSigning = await runZegel(['start', '--config', write('no-signing.yaml', { ...allKeys, audit: { signingKeyFile: path.join(base, 'none.pem') } })]);
    t.equal(noSigning.code, 2);
    t.match(noSigning.stderr, /^zegel: ZEGEL_AUDIT_KEY: .*none\.pem: no audit signing key/);
    t.notOk(fs.existsSync(path.join(base, 'none.pem')), 'the signing key is not made');
    nothingMade('keys that do not load');
  });

  await t.test('SQLite with data.relayKeyFile: the relay runs on the named key and makes none in data.dir', async (t) => {
    const relayKeyFile = path.join(keyDir, 'relay.key');
    const config = { data: { dir: dataDir, relayKeyFile }, smtp: allKeys.smtp, reader: allKeys.reader };
    const relay = await startChildRelay(t, path.join(base, 'sqlite.yaml'), config);
    t.ok(fs.existsSync(path.join(dataDir, 'zegel.db')), 'the relay runs on its SQLite store');
    t.notOk(fs.existsSync(path.join(dataDir, 'relay.key')), 'no relay.key made in data.dir');
    relay.child.kill('SIGTERM');
    t.equal(await relay.exited, 0, 'drains and exits 0');
  });
});
