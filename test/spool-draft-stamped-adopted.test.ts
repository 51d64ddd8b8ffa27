import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import t from 'tap';
import { ORIGIN_PLACEHOLDER, OriginSigner } from '../src/crypto/origin.js';
import { OriginStamper, verifyOrigin } from '../src/crypto/origin-stamp.js';
import { StorageKey } from '../src/crypto/storage-key.js';
import { Spool } from '../src/spool/spool.js';
import type { MessageSpool } from '../src/spool/types.js';
import { PgSpool } from '../src/store/pg/pg-spool.js';
import { migratedDatabase } from './helpers/pg-database.js';
import { tempDir } from './helpers/relay.js';

/**
 * A mail the relay composes as a stream and stamps afterwards (a recipient's
 * reply, src/secure/reply-mail.ts) goes into either spool the same way: it
 * is written to `draftPath(id)`, its X-Zegel-Origin stamped there once the
 * body is known, then `adopt(id)` takes it in. On the file spool the draft
 * is the spool file itself (nothing copied); on PostgreSQL it is a
 * node-local file streamed into sealed chunks and then removed. Either way
 * the spooled bytes carry a mark that verifies, no draft stays behind, a
 * failed adopt leaves neither a draft nor a chunk, and what a crash left in
 * the drafts is cleared.
 */
const db = await migratedDatabase(t, 'spooldrafts');
const dir = tempDir(t);
const signer = new OriginSigner(randomBytes(32));
const drivers: Array<[string, MessageSpool]> = [
  ['file', new Spool(dir)],
  ['postgres', new PgSpool(db.pool, new StorageKey(randomBytes(32)), { chunkBytes: 64 * 1024, draftDir: path.join(dir, 'drafts') })],
];
const chunksOf = async (id: string): Promise<number> => (await db.server.query<{ n: number }>('SELECT count(*)::int AS n FROM spool_chunks WHERE message_id = $1', [id], 'spooldrafts'))[0]!.n;

/** A composed reply of about 230 KiB (four chunks of 64 KiB) with the origin placeholder, as MailComposer streams it. */
function composed(tag: string): Buffer[] {
  const head = `From: klant@example.com\r\nTo: jan@zorg.test\r\nSubject: Re: uitslag\r\nMessage-ID: <${tag}@relay.test>\r\nX-Zegel-Origin: ${ORIGIN_PLACEHOLDER}\r\n\r\n`;
  const body = Array.from({ length: 4000 }, (_, i) => `regel ${i} van het antwoord ${'x'.repeat(i % 60)}\r\n`).join('');
  const all = Buffer.from(head + body, 'latin1');
  return Array.from({ length: Math.ceil(all.length / 16384) }, (_, i) => all.subarray(i * 16384, (i + 1) * 16384));
}

/** What reply-mail does: compose into the draft through the stamper, stamp it, adopt it. */
async function spoolReply(spool: MessageSpool, id: string, tag: string): Promise<void> {
  const draft = spool.draftPath(id);
  const stamper = new OriginStamper(signer, { messageId: `<${tag}@relay.test>`, recipients: ['jan@zorg.test'] });
  await pipeline(Readable.from(composed(tag)), stamper, fs.createWriteStream(draft, { mode: 0o600, flush: true }));
  await stamper.stamp(draft);
  await spool.adopt(id);
}

async function collect(stream: AsyncIterable<Buffer>): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const part of stream) parts.push(part);
  return Buffer.concat(parts);
}

for (const [name, spool] of drivers) {
  t.test(`${name}: a stamped draft is adopted into the spool, its mark verifies, no draft stays`, async (t) => {
    const id = `reply-${name}`;
    await spoolReply(spool, id, id);
    t.ok((await spool.list()).includes(id), 'in the spool');
    const raw = await collect(spool.read(id) as AsyncIterable<Buffer>);
    t.ok(raw.length > 200_000, `${raw.length} bytes`);
    t.notOk(raw.includes(ORIGIN_PLACEHOLDER), 'the placeholder was stamped over');
    t.ok(await verifyOrigin(signer, raw, ['jan@zorg.test']), 'the X-Zegel-Origin vouches for the spooled bytes');
    if (name === 'postgres') {
      t.equal(await chunksOf(id), Math.ceil(raw.length / 65536), 'sealed chunks');
      t.same(fs.readdirSync(path.join(dir, 'drafts')), [], 'the draft is gone');
    } else {
      t.equal(spool.draftPath(id), (spool as Spool).pathOf(id), 'the draft is the spool file itself');
    }
    await spool.remove(id);
  });
}

t.test('postgres: a failed adopt leaves neither a draft nor a chunk', async (t) => {
  const spool = drivers[1]![1];
  const draft = spool.draftPath('reply-bad');
  fs.writeFileSync(draft, Buffer.alloc(200 * 1024, 'a'));
  // a chunk of that id exists already: the second insert of the adopt is refused by the key
  await (spool as PgSpool).chunks.writeBytes('reply-bad', Buffer.alloc(70 * 1024, 'b'));
  await db.server.query("DELETE FROM spool_chunks WHERE message_id = 'reply-bad' AND seq = 0", [], 'spooldrafts');
  await t.rejects(spool.adopt('reply-bad'), { code: '23505' });
  t.equal(await chunksOf('reply-bad'), 0, 'what it wrote was removed, the leftover with it');
  t.notOk(fs.existsSync(draft), 'the draft is gone');
  t.throws(() => spool.draftPath('../etc'), RangeError, 'only spool ids name a draft');
});

t.test('postgres: what a crash left in the drafts is cleared at start', async (t) => {
  const spool = drivers[1]![1] as PgSpool;
  fs.writeFileSync(spool.draftPath('reply-crashed'), 'From: klant@example.com\r\n\r\nhalf a reply');
  t.equal(await spool.clearDrafts(), 1);
  t.same(fs.readdirSync(path.join(dir, 'drafts')), []);
  t.equal(await spool.clearDrafts(), 0);
});
