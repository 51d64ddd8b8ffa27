import { randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import t from 'tap';
import { StorageKey } from '../src/crypto/storage-key.js';
import { PgBlobStore } from '../src/store/pg/blob-chunks.js';
import type { PgPool } from '../src/store/pg/connect.js';
import { pgSecureRepositories, type PgSecureRepositories } from '../src/store/pg/secure-repositories.js';
import { PgSpoolChunks } from '../src/store/pg/spool-chunks.js';
import { PgTransactor } from '../src/store/pg/tx.js';
import { denied, startRoleDatabase, type GroupRole } from './helpers/pg-roles.js';

/**
 * The group roles of migration 001 against what the secure-delivery
 * repositories, the spool and the blob store run (row locks included:
 * FOR NO KEY UPDATE needs UPDATE on the table): the worker stores secure
 * messages and reads and removes the spool; the reader counts attempts,
 * locks links, sends codes, keeps sessions, takes replies, resends links,
 * revokes and purges, and hands mail to the spool but cannot read or remove
 * it; the SMTP role spools and reads, and touches no secure table.
 */
const { owner, login: loginAs } = await startRoleDatabase(t);
const storageKey = new StorageKey(randomBytes(32));

interface Node {
  pool: PgPool;
  store: PgTransactor;
  repos: PgSecureRepositories;
  spool: PgSpoolChunks;
  blobs: PgBlobStore;
}

async function login(role: GroupRole): Promise<Node> {
  const pool = await loginAs(role, `${role}_s`);
  return { pool, store: new PgTransactor(pool), repos: pgSecureRepositories(pool, storageKey), spool: new PgSpoolChunks(pool, storageKey), blobs: new PgBlobStore(pool) };
}

const [smtp, worker, reader] = [await login('zegel_smtp'), await login('zegel_worker'), await login('zegel_reader')];

async function collect(stream: Readable): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const part of stream as AsyncIterable<Buffer>) parts.push(part);
  return Buffer.concat(parts);
}

const id = (): string => randomBytes(12).toString('base64url');

t.test('the SMTP role spools and reads a message, and touches no secure table', async (t) => {
  const queueId = id();
  await smtp.spool.writeBytes(queueId, Buffer.from('Subject: x\r\n\r\nbody'));
  t.equal((await collect(smtp.spool.read(queueId))).toString(), 'Subject: x\r\n\r\nbody');
  t.ok(await denied(smtp.repos.links.get('x')), 'no secure_links');
  t.ok(await denied(smtp.repos.secure.get('x')), 'no secure_messages');
  t.ok(await denied(smtp.blobs.size('x', 'y')), 'no blobs');
});

t.test("the worker and the reader each run their own steps, and are refused the others'", async (t) => {
  // the intake's part, as the owner
  const queueId = id();
  const secureId = id();
  const [l0, l1] = [id(), id()];
  await owner.query(`INSERT INTO messages (id, received_at, mail_from, size, origin, state) VALUES ($1, 1, 'a@zorg.test', 3, 'submission', 'queued')`, [queueId]);
  await smtp.spool.writeBytes(queueId, Buffer.from('raw'));

  // the worker: the spool, the blobs, the secure message with its links and status link
  t.equal((await collect(worker.spool.read(queueId, { bytes: 3 }))).toString(), 'raw');
  t.equal(await worker.blobs.write(secureId, 'body', Readable.from([Buffer.from('ciphertext')])), 10);
  const link = (linkId: string, idx: number) => ({ id: linkId, recipientIdx: idx, address: `r${idx}@voorbeeld.test`, method: 'email-code' as const, language: 'nl' as const, wrap: randomBytes(60), kSrv: randomBytes(32), notificationId: id() });
  await worker.store.transaction(async (tx) => {
    await worker.repos.secure.insert(tx, { id: secureId, queueId, sender: 'a@zorg.test', createdAt: 1, expiresAt: 10_000, bodyBlob: 'body', blobs: [{ id: 'body', bytes: 10 }], threadId: secureId }, [link(l0, 0), link(l1, 1)]);
    await worker.repos.secure.setStatus(tx, secureId, { statusId: id(), tokenHash: 'ab'.repeat(32), wrap: randomBytes(60), kSrv: randomBytes(32) });
  });
  await worker.spool.remove(queueId);

  // the reader: attempts and the lock, codes, sessions, a reply and its copy, a resent link
  const attempt = await reader.store.transaction(async (tx) => {
    await reader.repos.links.get(l0, tx);
    return reader.repos.links.addFailure(tx, l0);
  });
  t.equal(attempt, 1, 'an attempt counted under the row lock');
  await reader.store.transaction(async (tx) => {
    await reader.repos.links.lock(tx, l0, 5000);
    await reader.repos.codes.voidLive(tx, l0);
  });
  const code = await reader.store.transaction(async (tx) => {
    await reader.repos.codes.createdSince(l1, 0, tx);
    return reader.repos.codes.insert(tx, { linkId: l1, sessionHash: 's'.repeat(64), channel: 'email', codeHash: 'h'.repeat(64), createdAt: 2, expiresAt: 3 });
  });
  t.equal(await reader.store.transaction((tx) => reader.repos.codes.use(tx, code)), true);
  await reader.store.transaction(async (tx) => {
    await reader.repos.sessions.insertVerified(tx, { idHash: 'c'.repeat(64), linkId: l1, now: 2, expiresAt: 9 }, undefined);
    await reader.repos.links.opened(tx, l1, 2);
  });
  await reader.blobs.write(secureId, 'reply1', Readable.from([Buffer.from('reply copy')]));
  t.equal((await collect(reader.blobs.open(secureId, 'reply1'))).toString(), 'reply copy');
  await owner.query(`INSERT INTO messages (id, received_at, mail_from, size, origin, state) VALUES ('replymail', 1, 'r1@voorbeeld.test', 3, 'reply', 'queued')`);
  await reader.spool.writeBytes('replymail', Buffer.from('reply mail'));
  t.ok(await denied(collect(reader.spool.read('replymail'))), 'the reader cannot read a spooled message');
  t.ok(await denied(reader.spool.remove('replymail')), 'nor remove one');
  await reader.store.transaction((tx) => reader.repos.replies.insert(tx, { id: 'reply1', messageId: secureId, linkId: l1, createdAt: 3, blob: 'reply1', queueId: 'replymail' }));
  const l2 = id();
  t.equal(await reader.store.transaction((tx) => reader.repos.links.replace(tx, { id: l2, messageId: secureId, oldLinkId: l0, wrap: randomBytes(60), kSrv: randomBytes(32), notificationId: id(), createdAt: 4 })), true);

  // the reader revokes (the sender's status page) down to the purge; the worker cleans up after
  await reader.store.transaction(async (tx) => {
    for (const l of await reader.repos.links.ofMessage(secureId, tx)) {
      if (l.state !== 'active') continue;
      await reader.repos.links.shred(tx, l.id, 'revoked');
      await reader.repos.sessions.endForLink(tx, l.id);
      await reader.repos.codes.deleteLive(tx, l.id);
    }
    t.equal(await reader.repos.links.wrapsLeft(secureId, tx), 0);
    await reader.repos.links.shredAll(tx, secureId);
    t.equal(await reader.repos.replies.dropBlobs(tx, secureId), 1);
    await reader.repos.secure.purge(tx, secureId, 'revoked', 6);
  });
  await reader.blobs.remove(secureId);
  t.same(await worker.blobs.list(), [], 'the blobs went');
  await worker.store.transaction(async (tx) => {
    await worker.repos.sessions.deleteExpired(tx, 100);
    await worker.repos.codes.deleteExpired(tx, 100);
  });
  t.ok(await denied(worker.store.transaction((tx) => worker.repos.codes.insert(tx, { linkId: l2, sessionHash: 's', channel: 'email', codeHash: 'h', createdAt: 1, expiresAt: 2 }))), 'the worker sends no codes');
  t.equal(await worker.spool.sweep(new Set(['replymail'])), 0);
});
