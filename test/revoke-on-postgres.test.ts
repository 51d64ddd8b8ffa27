import { randomBytes } from 'node:crypto';
import { pino } from 'pino';
import t from 'tap';
import { ManualClock } from '../src/clock.js';
import { StorageKey } from '../src/crypto/storage-key.js';
import type { SecureLinkInsert } from '../src/store/links.js';
import { PgBackend } from '../src/store/pg/backend.js';
import { revocationsFor } from '../src/store/revocations-for.js';
import { freshJobStore, startJobServers } from './helpers/bullmq-queue.js';

/*
 * Revocation on PostgreSQL through revocationsFor(PgBackend, …), as the
 * relay builds it: revoking a link leaves its row with no wrap and no K_srv
 * (read raw from the table, not through the repositories), the other link
 * keeps both; revoking the last one purges the message (its blob rows and
 * chunks go). A second node sees the revocation at once, and applies a
 * scheduled one in its purge run.
 */
const servers = await startJobServers(t);
const store = await freshJobStore(servers);
const database = store.url.slice(store.url.lastIndexOf('/') + 1);
const log = pino({ level: process.env.ZEGEL_TEST_LOG ?? 'silent' });
const storageKey = new StorageKey(randomBytes(32));
const clock = new ManualClock(Date.UTC(2026, 0, 5, 9));

async function node(name: string): Promise<PgBackend> {
  const backend = await PgBackend.open({ url: store.url, passwordFile: servers.pg.passwordFile, storageKey, redisUrl: servers.redis.url, clock, log, applicationName: name, queue: { prefix: store.prefix } });
  t.teardown(() => backend.close());
  return backend;
}
const [a, b] = [await node('node-a'), await node('node-b')];
const revokeA = revocationsFor(a, a.blobs, a.shredder, clock, log);
const revokeB = revocationsFor(b, b.blobs, b.shredder, clock, log);

const id = (): string => randomBytes(12).toString('base64url');
const raw = <R extends object>(sql: string, params: unknown[]) => servers.pg.query<R & import('pg').QueryResultRow>(sql, params, database);

/** A secure message with two links and a ciphertext blob, as the secure job stores it. */
async function secureMessage(): Promise<{ secureId: string; queueId: string; links: SecureLinkInsert[] }> {
  const queueId = id();
  const secureId = id();
  const at = clock.now();
  await raw(`INSERT INTO messages (id, received_at, mail_from, size, origin, state) VALUES ($1, $2, 'arts@zorg.test', 10, 'submission', 'queued')`, [queueId, at]);
  const links = [0, 1].map((i) => ({ id: id(), recipientIdx: i, address: `r${i}@voorbeeld.test`, method: 'email-code' as const, language: 'nl' as const, wrap: randomBytes(60), kSrv: randomBytes(32), notificationId: id() }));
  await a.blobs.write(secureId, 'body', [randomBytes(3000)]);
  await a.transaction((tx) =>
    a.secure.secure.insert(tx, { id: secureId, queueId, sender: 'arts@zorg.test', createdAt: at, expiresAt: at + 30 * 86_400_000, bodyBlob: 'body', blobs: [{ id: 'body', bytes: 3000 }], threadId: secureId }, links),
  );
  return { secureId, queueId, links };
}

const keys = (linkId: string) => raw<{ wrap: Buffer | null; k_srv: Buffer | null; state: string }>('SELECT wrap, k_srv, state FROM secure_links WHERE id = $1', [linkId]).then((r) => r[0]!);
const blobRows = async (secureId: string) =>
  Number((await raw<{ n: string }>('SELECT (SELECT count(*) FROM blobs WHERE secure_id = $1) + (SELECT count(*) FROM blob_chunks WHERE secure_id = $1) AS n', [secureId]))[0]!.n);

t.test('revoking a link shreds its wrap and K_srv rows; the last one purges the message and its blob', async (t) => {
  const { secureId, queueId, links } = await secureMessage();
  const [first, second] = [links[0]!, links[1]!];
  t.ok(await blobRows(secureId) >= 2, 'the blob and its chunk are stored');

  const result = await revokeA.revokeLink(first.id, 'admin');
  t.same(result.revoked, [{ linkId: first.id, address: first.address }]);
  t.equal(result.purged, false, 'one link still opens it');
  t.match(await keys(first.id), { wrap: null, k_srv: null, state: 'revoked' }, 'no wrap, no K_srv in the row');
  const kept = await keys(second.id);
  t.ok(kept.wrap && kept.k_srv, 'the other link keeps both');
  t.equal((await b.secure.links.get(first.id))?.state, 'revoked', 'node B sees it at once');

  const last = await revokeB.revokeLink(second.id, 'sender');
  t.equal(last.purged, true, 'no wrap left: purged');
  t.match(await keys(second.id), { wrap: null, k_srv: null });
  t.equal(await blobRows(secureId), 0, 'no blob row, no chunk left');
  t.match(await a.secure.secure.get(secureId), { state: 'revoked', body_blob: null });
  t.same((await a.events.forMessage(queueId)).map((e) => e.type), ['revoked', 'revoked', 'purged'], 'recorded in the one chain');
});

t.test('a revocation scheduled on node A is applied by node B\'s purge run', async (t) => {
  const { links } = await secureMessage();
  await revokeA.scheduleLinkRevoke(links[0]!.id, clock.now() + 3_600_000, 'sender');
  t.equal((await keys(links[0]!.id)).state, 'active', 'not yet');
  clock.advance(3_600_001);
  const report = await revokeB.purgeDue();
  t.equal(report.revoked, 1);
  t.match(await keys(links[0]!.id), { wrap: null, k_srv: null, state: 'revoked' });
});
