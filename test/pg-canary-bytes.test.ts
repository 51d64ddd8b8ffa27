import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { newKey, newSecureId, unwrapKey, wrapKey } from '../src/crypto/key-schedule.js';
import { decryptBytes, encryptBytes } from '../src/crypto/payload.js';
import { StorageKey } from '../src/crypto/storage-key.js';
import { PgBlobStore } from '../src/store/pg/blob-chunks.js';
import { pgSecureRepositories } from '../src/store/pg/secure-repositories.js';
import { PgSpoolChunks } from '../src/store/pg/spool-chunks.js';
import { PgTransactor } from '../src/store/pg/tx.js';
import { migratedDatabase } from './helpers/pg-database.js';

/**
 * What PostgreSQL's files on disk hold after Zegel wrote a secure message
 * and a spooled plaintext: after CHECKPOINT (every page written to the
 * table files; the WAL holds every change anyway), every file of the data
 * directory (tables, TOAST, WAL, …) is scanned for the canary string in the
 * message, the fragment key K_link (bytes and its base64url form), the
 * content key and the raw K_srv. None may be there. A plaintext control
 * string stored on purpose (the envelope sender) must be found: the scan
 * sees what the tables hold. And what was stored still opens: K_link (from
 * the "URL") with the stored wrap and K_srv unwraps the content key, which
 * decrypts the stored blob to the canary.
 */
const { server, pool } = await migratedDatabase(t, 'canary');
const storageKey = new StorageKey(randomBytes(32));
const repos = pgSecureRepositories(pool, storageKey);
const store = new PgTransactor(pool);
const blobs = new PgBlobStore(pool);
const spool = new PgSpoolChunks(pool, storageKey);

/** Every regular file under `dir` with the offsets of each needle found in it. */
function scan(dir: string, needles: Record<string, Buffer>): Record<string, string[]> {
  const found: Record<string, string[]> = Object.fromEntries(Object.keys(needles).map((k) => [k, []]));
  const walk = (at: string): void => {
    for (const entry of fs.readdirSync(at, { withFileTypes: true })) {
      const file = path.join(at, entry.name);
      if (entry.isDirectory()) walk(file);
      else if (entry.isFile()) {
        const bytes = fs.readFileSync(file);
        for (const [name, needle] of Object.entries(needles)) {
          if (bytes.includes(needle)) found[name]!.push(path.relative(dir, file));
        }
      }
    }
  };
  walk(dir);
  return found;
}

t.test('neither the canary nor a key is in any file of the data directory; a control string is', async (t) => {
  const canary = `CANARY-${randomBytes(12).toString('hex')}`;
  const control = `control-${randomBytes(8).toString('hex')}@zorg.test`;
  const queueId = randomBytes(12).toString('base64url');
  const secureId = newSecureId();
  const linkId = randomBytes(16).toString('base64url');
  const [contentKey, kLink, kSrv, kSrvStatus] = [newKey(), newKey(), newKey(), newKey()];
  const raw = Buffer.from(`From: ${control}\r\nTo: patient@voorbeeld.test\r\nSubject: uitslag\r\n\r\nDe uitslag: ${canary}\r\n`);

  // the spooled plaintext (the SMTP intake's part), then the message row with the control in the clear
  await spool.writeBytes(queueId, raw);
  await pool.query(`INSERT INTO messages (id, received_at, mail_from, size, origin, state) VALUES ($1, $2, $3, $4, 'submission', 'queued')`, [queueId, Date.now(), control, raw.length]);
  // the secure job's part: the body blob under the content key, the link's wrap and K_srv, the sender's status keys
  const ciphertext = Buffer.from(await encryptBytes(contentKey, Buffer.from(JSON.stringify({ text: `De uitslag: ${canary}` }))));
  await blobs.write(secureId, 'body', [ciphertext]);
  await store.transaction(async (tx) => {
    await repos.secure.insert(
      tx,
      { id: secureId, queueId, sender: control, createdAt: Date.now(), expiresAt: Date.now() + 86_400_000, bodyBlob: 'body', blobs: [{ id: 'body', bytes: ciphertext.length }], threadId: secureId },
      [{ id: linkId, recipientIdx: 0, address: 'patient@voorbeeld.test', method: 'email-code', language: 'nl', wrap: wrapKey(contentKey, kLink, kSrv, secureId, linkId), kSrv, notificationId: queueId }],
    );
    await repos.secure.setStatus(tx, secureId, { statusId: randomBytes(16).toString('base64url'), tokenHash: 'ab'.repeat(32), wrap: wrapKey(contentKey, kLink, kSrvStatus, secureId, 'status'), kSrv: kSrvStatus });
  });
  await server.query('CHECKPOINT');

  const found = scan(server.dataDir, {
    canary: Buffer.from(canary),
    fragmentKey: kLink,
    fragmentKeyText: Buffer.from(kLink.toString('base64url')),
    contentKey,
    kSrv,
    kSrvStatus,
    control: Buffer.from(control),
  });
  t.ok(found.control!.length > 0, `the scan finds a string stored in the clear (${found.control!.join(', ')})`);
  t.ok(found.control!.some((f) => f.startsWith('base/')) && found.control!.some((f) => f.startsWith('pg_wal/')), 'in a table file and in the WAL');
  for (const name of ['canary', 'fragmentKey', 'fragmentKeyText', 'contentKey', 'kSrv', 'kSrvStatus']) {
    t.same(found[name], [], `no ${name} in any file`);
  }

  // what is stored still opens the message, with the key the recipient's URL carries
  const link = await repos.links.get(linkId);
  const opened = unwrapKey(link!.wrap!, kLink, link!.k_srv!, secureId, linkId);
  const parts: Buffer[] = [];
  for await (const part of blobs.open(secureId, 'body') as AsyncIterable<Buffer>) parts.push(part);
  t.match(Buffer.from(await decryptBytes(opened, Buffer.concat(parts))).toString(), canary, 'the stored blob decrypts to the canary');
  const spooled: Buffer[] = [];
  for await (const part of spool.read(queueId, { bytes: raw.length }) as AsyncIterable<Buffer>) spooled.push(part);
  t.same(Buffer.concat(spooled), raw, 'the spool reads back the plaintext');

  // revocation on PostgreSQL: the row forgets the sealed K_srv, the disk keeps its old versions for a while
  const sealed = (await server.query<{ k_srv: Buffer }>('SELECT k_srv FROM secure_links WHERE id = $1', [linkId], 'canary'))[0]!.k_srv;
  await store.transaction((tx) => repos.links.shred(tx, linkId, 'revoked'));
  await server.query('CHECKPOINT');
  const dead = scan(server.dataDir, { sealedKsrv: sealed });
  t.comment(`after revocation and CHECKPOINT, before VACUUM, the sealed K_srv is in: ${dead.sealedKsrv!.join(', ') || 'no file'}`);
  await server.query('VACUUM secure_links', [], 'canary');
  await server.query('CHECKPOINT');
  const after = scan(server.dataDir, { sealedKsrv: sealed, kSrv });
  t.same(after.kSrv, [], 'after revocation: still no raw K_srv anywhere');
  t.comment(`after revocation, VACUUM and CHECKPOINT the sealed K_srv is still in: ${after.sealedKsrv!.join(', ') || 'no file'}`);
  t.ok(after.sealedKsrv!.some((f) => f.startsWith('pg_wal/')), 'the WAL keeps the sealed K_srv until its segment is recycled: why it is sealed');
});
