import fs from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { ManualClock } from '../src/clock.js';
import { blobFiles, eventsOf, linkRow, messageRow, openLink, passEmailCheck, sendSecure, setupSecure } from './helpers/secure-messages.js';

/*
 * Expiry and the periodic purge job, by moving the injectable clock: messages
 * expire at retention.messages (or a shorter [verloopt:…] tag), the purge job
 * shreds their keys and removes their ciphertext, leaves only metadata, and is
 * idempotent and crash-safe; its chain of jobs never doubles after a restart.
 */

const DAY = 86_400_000;

function purgeJobs(s: Awaited<ReturnType<typeof setupSecure>>): Array<{ id: string; run_at: number }> {
  return s.relay.relay.sqlite.db.prepare(`SELECT id, run_at FROM jobs WHERE kind = 'purge' ORDER BY id`).all() as Array<{ id: string; run_at: number }>;
}

async function settle(s: Awaited<ReturnType<typeof setupSecure>>): Promise<void> {
  s.relay.relay.backend.queue.poke();
  await s.relay.relay.backend.queue.idle();
}

t.test('a [verloopt:1d] message expires after a day, the default one after retention.messages; the purge job removes keys and ciphertext', async (t) => {
  const s = await setupSecure(t, { retention: { messages: '3d' } });
  const short = await sendSecure(s, ['piet@extern.test'], { subject: 'Uitslag [verloopt:1d]' });
  const long = await sendSecure(s, ['klaas@extern.test', 'kees@extern.test']);
  t.equal(messageRow(s, short.secureId).expires_at, (messageRow(s, short.secureId).created_at as number) + DAY, 'the tag sets one day');
  t.equal(messageRow(s, long.secureId).expires_at, (messageRow(s, long.secureId).created_at as number) + 3 * DAY, 'retention.messages');

  s.clock.advance(DAY + 60_000);
  await settle(s);
  t.equal(messageRow(s, short.secureId).state, 'expired', 'the tagged message expired');
  t.same(blobFiles(s, short.secureId), [], 'its blobs are gone');
  const row = linkRow(s, short.links[0]!.linkId);
  t.same([row.state, row.wrap, row.k_srv], ['expired', null, null], 'its link expired, keys shredded');
  t.same((await openLink(s, short.links[0]!.linkId)).body, { error: 'expired' }, 'the reader answers expired');
  t.same(eventsOf(s, short.queueId, 'expired'), [{ recipient: 'piet@extern.test', detail: { actor: 'expiry', linkId: short.links[0]!.linkId } }]);
  t.same(eventsOf(s, short.queueId, 'purged').map((e) => e.detail.reason), ['expired']);
  t.equal(messageRow(s, long.secureId).state, 'active', 'the other message is still active');
  t.ok(blobFiles(s, long.secureId).length > 0);

  s.clock.advance(2 * DAY);
  await settle(s);
  const m = messageRow(s, long.secureId);
  t.equal(m.state, 'expired');
  t.equal(m.body_blob, null);
  t.equal(m.sender_wrap, null);
  t.equal(m.sender_k_srv, null);
  t.type(m.purged_at, 'number');
  t.same(blobFiles(s, long.secureId), []);
  for (const link of long.links) t.same(Object.values(linkRow(s, link.linkId)), ['expired', null, null], `${link.address}: expired`);
  t.equal(eventsOf(s, long.queueId, 'expired').length, 2, 'an expired event per recipient');

  // a second run changes nothing
  const before = s.relay.relay.sqlite.db.prepare('SELECT COUNT(*) AS n FROM events').get() as { n: number };
  const report = await s.relay.relay.revocations.purgeDue();
  t.same(report, { expired: 0, revoked: 0, purged: 0, repaired: 0, sessions: 0, codes: 0 }, 'idempotent');
  t.same(s.relay.relay.sqlite.db.prepare('SELECT COUNT(*) AS n FROM events').get(), before, 'no new events');

  // only metadata stays: no key column and no blob id of either message holds a value
  const db = s.relay.relay.sqlite.db;
  t.equal((db.prepare('SELECT COUNT(*) AS n FROM secure_links WHERE wrap IS NOT NULL OR k_srv IS NOT NULL').get() as { n: number }).n, 0, 'no wrap or K_srv left');
  t.equal((db.prepare('SELECT COUNT(*) AS n FROM secure_messages WHERE body_blob IS NOT NULL OR sender_wrap IS NOT NULL OR sender_k_srv IS NOT NULL').get() as { n: number }).n, 0, 'no body or sender key left');
  t.same(fs.existsSync(path.join(s.relay.dataDir, 'blobs')) ? fs.readdirSync(path.join(s.relay.dataDir, 'blobs')) : [], [], 'the blob directory is empty');
});

t.test('crash between commit and file removal: the next purge run removes the blobs of a purged message again', async (t) => {
  const s = await setupSecure(t);
  const sent = await sendSecure(s, ['piet@extern.test']);
  const saved = path.join(path.dirname(s.relay.dataDir), 'saved-blobs');
  fs.cpSync(path.join(s.relay.dataDir, 'blobs', sent.secureId), saved, { recursive: true });
  await s.relay.relay.revocations.revokeMessage(sent.secureId, 'admin');
  t.same(blobFiles(s, sent.secureId), []);
  // as if the process died after the commit, before the files went
  fs.cpSync(saved, path.join(s.relay.dataDir, 'blobs', sent.secureId), { recursive: true });
  t.ok(blobFiles(s, sent.secureId).length > 0, 'the files are back');
  const report = await s.relay.relay.revocations.purgeDue();
  t.equal(report.repaired, 1, 'one directory removed again');
  t.same(blobFiles(s, sent.secureId), []);
  t.equal(eventsOf(s, sent.queueId, 'purged').length, 1, 'purged is recorded once');
  t.equal((await s.relay.relay.revocations.purgeDue()).repaired, 0, 'and the next run finds nothing');
});

t.test('old reader sessions and one-time codes are deleted once past their expiry', async (t) => {
  const s = await setupSecure(t);
  const sent = await sendSecure(s, ['piet@extern.test']);
  const link = sent.links[0]!;
  const opened = await openLink(s, link.linkId);
  // a session is stored only once a check passes; the code it used stays on record until it expires
  await passEmailCheck(s, link, opened.cookie);
  const db = s.relay.relay.sqlite.db;
  const count = (table: string) => (db.prepare(`SELECT COUNT(*) AS n FROM ${table}`).get() as { n: number }).n;
  t.equal(count('reader_sessions'), 1);
  t.equal(count('one_time_codes'), 1);
  s.clock.advance(2 * DAY);
  const report = await s.relay.relay.revocations.purgeDue();
  t.equal(report.sessions, 1, 'the session is gone');
  t.equal(report.codes, 1, 'the code is gone');
  t.equal(count('reader_sessions') + count('one_time_codes'), 0);
  t.equal(messageRow(s, sent.secureId).state, 'active', 'the message itself is untouched');
});

t.test('the purge chain: one job per slot, re-queued by the clock, never doubled by a restart', async (t) => {
  const clock = new ManualClock(Date.UTC(2026, 0, 5, 9, 1, 0));
  const interval = 5 * 60_000;
  const first = await setupSecure(t, {}, { clock });
  await settle(first);
  const slot = Math.floor(clock.now() / interval);
  t.same(purgeJobs(first), [{ id: `purge:${slot + 1}`, run_at: (slot + 1) * interval }], 'after the first run: the next slot only');
  clock.advance(interval);
  await settle(first);
  t.same(purgeJobs(first).map((j) => j.id), [`purge:${slot + 2}`], 'the clock moves the chain on');
  const dataDir = first.relay.dataDir;
  await first.relay.relay.stop(1_000);

  // a restart in the same slot, and one much later
  const second = await setupSecure(t, {}, { clock, dataDir });
  await settle(second);
  t.same(purgeJobs(second).map((j) => j.id), [`purge:${slot + 2}`], 'a restart does not start a second chain');
  clock.advance(DAY);
  await second.relay.relay.stop(1_000);
  const third = await setupSecure(t, {}, { clock, dataDir });
  await settle(third);
  const later = Math.floor(clock.now() / interval);
  t.same(purgeJobs(third).map((j) => j.id), [`purge:${later + 1}`], 'after a long stop: the overdue job and the start-up job merge into one');
});
