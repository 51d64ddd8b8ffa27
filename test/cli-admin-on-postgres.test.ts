import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { pino } from 'pino';
import t from 'tap';
import { stringify } from 'yaml';
import { generateKeys } from '../src/cli/keys-commands.js';
import { systemClock } from '../src/clock.js';
import { loadStorageKey } from '../src/crypto/storage-key.js';
import { newJob } from '../src/queue/registry.js';
import { PgBackend } from '../src/store/pg/backend.js';
import { PgSpoolChunks } from '../src/store/pg/spool-chunks.js';
import { runZegel } from './helpers/child-relay.js';
import { startJobServers } from './helpers/bullmq-queue.js';
import { tempDir } from './helpers/relay.js';

/*
 * The admin commands (the real CLI, a child process) on a PostgreSQL
 * configuration: `audit verify|export|checkpoint|purge`, `messages
 * list|show|revoke`, `recipients set|list`, `queue list|retry|delete` (held
 * mail given up: recipients bounced, spool chunks gone) read
 * and write the cluster's database, which a node (PgBackend, in this
 * process) wrote; a database without Zegel's schema is refused unless the
 * command may create (recipients set); nothing is made in data.dir; and an
 * audit record edited behind the triggers' back is found.
 */
const servers = await startJobServers(t);
const url = await servers.pg.createDatabase('admin');
const dir = tempDir(t, 'zegel-pg-admin-');
const [relayKeyFile, storageKeyFile, signingKeyFile] = generateKeys(path.join(dir, 'keys')) as [string, string, string];
const dataDir = path.join(dir, 'data');
const configFile = path.join(dir, 'zegel.yaml');
fs.writeFileSync(
  configFile,
  stringify({
    data: { dir: dataDir, relayKeyFile },
    store: { driver: 'postgres', url, passwordFile: servers.pg.passwordFile, keyFile: storageKeyFile },
    queue: { driver: 'bullmq', url: servers.redis.url },
    audit: { signingKeyFile },
  }),
);
const zegel = (...args: string[]) => runZegel([...args, '--config', configFile]);
const sql = <R extends import('pg').QueryResultRow>(text: string, params: unknown[] = []) => servers.pg.query<R>(text, params, 'admin');
const id = (): string => randomBytes(12).toString('base64url');

t.test('a database without the schema: refused, unless the command may create', async (t) => {
  const list = await zegel('messages', 'list');
  t.equal(list.code, 2, 'exit 2');
  t.match(list.stderr, /^zegel: PostgreSQL store postgres:\/\/.*\/admin \(store\.url of .*zegel\.yaml\)$/m, 'says which store');
  t.match(list.stderr, /^zegel: ZEGEL_NO_DATABASE: no Zegel schema in PostgreSQL .*admin/m);
  t.same(await sql("SELECT to_regclass('zegel_schema_migrations') AS t"), [{ t: null }], 'nothing made');

  const set = await runZegel(['recipients', 'set', 'piet@voorbeeld.test', '--method', 'access-code', '--access-code-stdin', '--config', configFile], { stdin: 'geheim-en-lang\n' });
  t.equal(set.code, 0, `recipients set: exit 0 (${set.stderr.trim()})`);
  const listed = await zegel('recipients', 'list', '--json');
  t.match(JSON.parse(listed.stdout), [{ target: 'piet@voorbeeld.test', method: 'access-code', hasAccessCode: true }]);
  t.notOk(listed.stdout.includes('geheim'), 'the access code is not shown');
});

t.test('messages, queue and audit commands on what a node wrote', async (t) => {
  // a node writes: an accepted message with its first job, and a secure message with two links
  const node = await PgBackend.open({ url, passwordFile: servers.pg.passwordFile, storageKey: loadStorageKey(storageKeyFile), redisUrl: servers.redis.url, clock: systemClock, log: pino({ level: 'silent' }), queue: { prefix: 'admin' } });
  t.teardown(() => node.close());
  const queueId = id();
  const secureId = id();
  const now = Date.now();
  await node.intake({ id: queueId, receivedAt: now, mailFrom: 'arts@zorg.test', size: 100, origin: 'ingress', recipients: [{ address: 'r0@voorbeeld.test' }, { address: 'r1@voorbeeld.test' }] }, newJob('process', `process:${queueId}`, { messageId: queueId }));
  const links = [0, 1].map((i) => ({ id: id(), recipientIdx: i, address: `r${i}@voorbeeld.test`, method: 'email-code' as const, language: 'nl' as const, wrap: randomBytes(60), kSrv: randomBytes(32), notificationId: id() }));
  await node.blobs.write(secureId, 'body', [randomBytes(2000)]);
  await node.transaction(async (tx) => {
    await node.secure.secure.insert(tx, { id: secureId, queueId, sender: 'arts@zorg.test', createdAt: now, expiresAt: now + 30 * 86_400_000, bodyBlob: 'body', blobs: [{ id: 'body', bytes: 2000 }], threadId: secureId }, links);
    await node.events.append(tx, { messageId: queueId, type: 'decided', detail: { secure: 2 } });
  });

  const list = await zegel('messages', 'list', '--json');
  t.equal(list.code, 0, `messages list: exit 0 (${list.stderr.trim()})`);
  t.match(JSON.parse(list.stdout), [{ id: secureId, queueId, sender: 'arts@zorg.test', state: 'active', recipients: 2, purgedAt: null }]);
  const show = await zegel('messages', 'show', queueId, '--json');
  t.equal(show.code, 0);
  t.match(JSON.parse(show.stdout), { id: secureId, blobs: 1, recipients: [{ address: 'r0@voorbeeld.test', linkState: 'active' }, { address: 'r1@voorbeeld.test', linkState: 'active' }] });

  const queue = await zegel('queue', 'list', '--json');
  t.equal(queue.code, 0);
  t.match(JSON.parse(queue.stdout), [{ kind: 'process', id: `process:${queueId}`, state: 'due', messageId: queueId }]);
  const refused = await zegel('queue', 'delete', `process:${queueId}`);
  t.equal(refused.code, 1, 'deleting a job that carries mail needs --force');
  t.match(refused.stderr, /ZEGEL_QUEUE_DELETE_REFUSED/);
  const later = now + 3_600_000;
  await sql('UPDATE jobs SET run_at = $1 WHERE id = $2', [later, `process:${queueId}`]);
  const retry = await zegel('queue', 'retry', `process:${queueId}`);
  t.equal(retry.code, 0, `queue retry: exit 0 (${retry.stderr.trim()})`);
  const [job] = await sql<{ run_at: number }>('SELECT run_at FROM jobs WHERE id = $1', [`process:${queueId}`]);
  t.ok(Number(job!.run_at) < later, 'due now');

  const revoke = await zegel('messages', 'revoke', secureId, '--recipient', 'R0@voorbeeld.test', '--json');
  t.equal(revoke.code, 0, `messages revoke: exit 0 (${revoke.stderr.trim()})`);
  t.match(JSON.parse(revoke.stdout), { revoked: [{ linkId: links[0]!.id }], purged: false });
  t.same(await sql('SELECT wrap, k_srv, state FROM secure_links WHERE id = $1', [links[0]!.id]), [{ wrap: null, k_srv: null, state: 'revoked' }], 'wrap and K_srv gone from the row');

  const deleted = await zegel('queue', 'delete', `process:${queueId}`, '--force');
  t.equal(deleted.code, 0);
  t.same(await sql('SELECT id FROM jobs WHERE id = $1', [`process:${queueId}`]), [], 'the job is gone');

  // held mail: relay-made mail whose delivery job is held, its bytes in the spool
  const heldId = id();
  await new PgSpoolChunks(node.pool, loadStorageKey(storageKeyFile)).write(heldId, [randomBytes(5000)]);
  await node.intake({ id: heldId, receivedAt: now, mailFrom: '', size: 5000, origin: 'dsn', recipients: [{ address: 'postmaster@zorg.test' }] }, newJob('deliver', `deliver:${heldId}`, { messageId: heldId, route: 'internal', recipients: [0] }));
  await sql("UPDATE jobs SET state = 'held' WHERE id = $1", [`deliver:${heldId}`]);
  const held = await zegel('queue', 'list', '--json');
  t.match(JSON.parse(held.stdout), [{ id: `deliver:${heldId}`, state: 'held' }]);
  const gaveUp = await zegel('queue', 'delete', `deliver:${heldId}`, '--force');
  t.equal(gaveUp.code, 0, `queue delete --force of held mail: exit 0 (${gaveUp.stderr.trim()})`);
  t.match(gaveUp.stdout, 'is given up');
  t.same(await sql('SELECT state FROM recipients WHERE message_id = $1', [heldId]), [{ state: 'bounced' }], 'its recipient ends bounced');
  t.same(await sql('SELECT seq FROM spool_chunks WHERE message_id = $1', [heldId]), [], 'its spool chunks are gone');

  const checkpoint = await zegel('audit', 'checkpoint');
  t.equal(checkpoint.code, 0, `audit checkpoint: exit 0 (${checkpoint.stderr.trim()})`);
  t.match(checkpoint.stdout, /^checkpoint \d+: record \d+, [0-9a-f]{64}, at /);
  const records = (await sql<{ n: string }>('SELECT count(*) AS n FROM events'))[0]!.n;
  const verify = await zegel('audit', 'verify');
  t.equal(verify.code, 0, `audit verify: exit 0 (${verify.stderr.trim()})`);
  t.match(verify.stdout, `audit chain intact: ${records} records, 1 checkpoints`);
  const exported = await zegel('audit', '--message', secureId);
  t.equal(exported.code, 0);
  const types = exported.stdout.trim().split('\n').map((l) => (JSON.parse(l) as { event: string }).event);
  t.same(types, ['received', 'decided', 'admin-action', 'revoked', 'admin-action', 'admin-action'], 'the export by secure id: the message\'s records in order (retry, revoke, delete recorded)');
  const purge = await zegel('audit', 'purge');
  t.equal(purge.code, 0);
  t.match(purge.stdout, 'nothing past retention.audit');
  t.notOk(fs.existsSync(dataDir), 'nothing made in data.dir');

  // an attacker with the database edits a record behind the triggers' back
  await sql("SET session_replication_role = replica; UPDATE events SET detail = '{\"secure\":0}' WHERE type = 'decided'; SET session_replication_role = origin");
  const broken = await zegel('audit', 'verify');
  t.equal(broken.code, 1, 'verify finds the edit: exit 1');
  t.match(broken.stdout, /^audit chain broken: /);
});
