import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { parse } from 'yaml';
import { loadSigningKey } from '../src/audit/checkpoint.js';
import { parseConfig } from '../src/config/load.js';
import { loadRelaySecret } from '../src/crypto/relay-secret.js';
import { loadStorageKey, openChunk, sealChunk, StorageKey } from '../src/crypto/storage-key.js';
import { runZegel } from './helpers/child-relay.js';
import { tempDir } from './helpers/relay.js';

/*
 * `zegel keys generate DIR` (the real CLI): the three key files a cluster's
 * nodes share, mode 0600 in a 0700 directory, each loadable by the code that
 * reads it at start; and never over a key that is already there.
 */

const NAMES = ['relay.key', 'storage.key', 'audit-signing.pem'];
const mode = (file: string) => fs.statSync(file).mode & 0o777;
const snapshot = (dir: string) => Object.fromEntries(fs.readdirSync(dir).sort().map((name) => [name, fs.readFileSync(path.join(dir, name)).toString('base64')]));

t.test('writes relay.key, storage.key and audit-signing.pem that load where they are read', async (t) => {
  const base = fs.realpathSync(tempDir(t, 'zegel-keys-'));
  const dir = path.join(base, 'cluster', 'keys');
  const r = await runZegel(['keys', 'generate', dir]);
  t.equal(r.code, 0, `exit 0 (${r.stderr.trim()})`);
  t.equal(r.stderr, '', 'nothing on stderr');
  t.equal(mode(dir), 0o700, 'the missing directory is made 0700');
  t.same(fs.readdirSync(dir).sort(), [...NAMES].sort(), 'exactly the three files');
  for (const name of NAMES) t.equal(mode(path.join(dir, name)), 0o600, `${name} is 0600`);

  const [relayFile, storageFile, signingFile] = NAMES.map((n) => path.join(dir, n)) as [string, string, string];
  const relayBytes = fs.readFileSync(relayFile);
  const storageBytes = fs.readFileSync(storageFile);
  t.equal(relayBytes.length, 32, 'relay.key: 32 bytes');
  t.equal(storageBytes.length, 32, 'storage.key: 32 bytes');
  t.not(relayBytes.toString('hex'), storageBytes.toString('hex'), 'two different keys');

  const emptyDataDir = path.join(base, 'data');
  t.ok(loadRelaySecret({ dataDir: emptyDataDir, relayKeyFile: relayFile }).equals(relayBytes), 'loadRelaySecret reads relay.key');
  t.notOk(fs.existsSync(emptyDataDir), 'and makes nothing in data.dir');
  const storageKey = loadStorageKey(storageFile);
  const sealed = sealChunk(new StorageKey(storageBytes), 'ksrv:x', Buffer.from('k_srv'));
  t.equal(openChunk(storageKey, 'ksrv:x', sealed).toString(), 'k_srv', 'loadStorageKey reads storage.key');
  t.match(fs.readFileSync(signingFile, 'utf8'), /^-----BEGIN PRIVATE KEY-----\n/, 'audit-signing.pem is PKCS#8 PEM');
  const { key, created } = loadSigningKey({ signingKeyFile: signingFile, dataDir: emptyDataDir, create: false });
  t.equal(key.asymmetricKeyType, 'ed25519', 'loadSigningKey reads it as an Ed25519 key');
  t.equal(created, false);
  const signature = crypto.sign(null, Buffer.from('head'), key);
  t.ok(crypto.verify(null, Buffer.from('head'), crypto.createPublicKey(key), signature), 'and it signs');

  for (const file of [relayFile, storageFile, signingFile]) t.ok(r.stdout.includes(file), `stdout names ${path.basename(file)}`);
  t.notOk(r.stdout.includes(relayBytes.toString('hex')) || r.stdout.includes(relayBytes.toString('base64')), 'the relay key is not printed');
  t.notOk(r.stdout.includes(storageBytes.toString('hex')) || r.stdout.includes(storageBytes.toString('base64')), 'the storage key is not printed');
  t.notOk(r.stdout.includes('PRIVATE KEY'), 'the signing key is not printed');
  // the printed configuration lines are configuration: with a store URL they make a valid cluster node
  const yaml = r.stdout.slice(r.stdout.indexOf('\ndata:\n') + 1);
  const lines = parse(yaml) as { data: { relayKeyFile: string }; store: { keyFile: string }; audit: { signingKeyFile: string } };
  t.same(lines, { data: { relayKeyFile: relayFile }, store: { keyFile: storageFile }, audit: { signingKeyFile: signingFile } }, 'the three settings, each naming its file');
  const config = parseConfig({ ...lines, store: { ...lines.store, driver: 'postgres', url: 'postgres://zegel@127.0.0.1:5432/zegel' }, queue: { driver: 'bullmq', url: 'redis://127.0.0.1:6379' } }, base);
  t.equal(config.store.keyFile, storageFile, 'accepted as a store.driver postgres configuration');

  const again = await runZegel(['keys', 'generate', path.join(base, 'other')]);
  t.equal(again.code, 0);
  t.not(fs.readFileSync(path.join(base, 'other', 'storage.key')).toString('hex'), storageBytes.toString('hex'), 'each run makes new keys');
});

t.test('refuses when any of the files exists, and leaves every file as it was', async (t) => {
  const dir = fs.realpathSync(tempDir(t, 'zegel-keys-'));
  const first = await runZegel(['keys', 'generate', dir]);
  t.equal(first.code, 0);
  const before = snapshot(dir);
  const again = await runZegel(['keys', 'generate', dir]);
  t.equal(again.code, 1, 'exit 1, like the other refusals of a command that ran');
  t.equal(again.stdout, '', 'nothing on stdout');
  t.match(again.stderr, /^zegel: ZEGEL_KEY_EXISTS: .*relay\.key.*storage\.key.*audit-signing\.pem already exist; nothing written/);
  t.same(snapshot(dir), before, 'the existing keys are byte-identical');

  for (const name of NAMES) {
    const partial = fs.realpathSync(tempDir(t, 'zegel-keys-'));
    const mine = path.join(partial, name);
    fs.writeFileSync(mine, 'an operator key in use\n', { mode: 0o600 });
    const r = await runZegel(['keys', 'generate', partial]);
    t.equal(r.code, 1, `${name} present: exit 1`);
    t.match(r.stderr, new RegExp(`ZEGEL_KEY_EXISTS: ${mine.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} already exists; nothing written`));
    t.same(fs.readdirSync(partial), [name], `${name} present: none of the others written`);
    t.equal(fs.readFileSync(mine, 'utf8'), 'an operator key in use\n', `${name} present: left as it was`);
  }

  // a dangling symlink counts as present: writing through it would put a key wherever it points
  const linked = fs.realpathSync(tempDir(t, 'zegel-keys-'));
  fs.symlinkSync(path.join(linked, 'elsewhere'), path.join(linked, 'storage.key'));
  const r = await runZegel(['keys', 'generate', linked]);
  t.equal(r.code, 1, 'a dangling symlink: refused');
  t.notOk(fs.existsSync(path.join(linked, 'elsewhere')), 'nothing written through it');
});

t.test('a file where DIR should be, or no DIR at all', async (t) => {
  const base = fs.realpathSync(tempDir(t, 'zegel-keys-'));
  const file = path.join(base, 'not-a-dir');
  fs.writeFileSync(file, 'x');
  const r = await runZegel(['keys', 'generate', file]);
  t.equal(r.code, 1);
  t.match(r.stderr, /ZEGEL_CLI_INPUT: .*not-a-dir is not a directory/);
  t.equal(fs.readFileSync(file, 'utf8'), 'x');
  const usage = await runZegel(['keys', 'generate']);
  t.equal(usage.code, 2, 'no DIR: a usage error, exit 2');
  t.match(usage.stderr, /missing required argument 'dir'/);
});
