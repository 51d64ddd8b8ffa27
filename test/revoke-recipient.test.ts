import t from 'tap';
import { blobFiles, decryptWithLink, eventsOf, linkRow, messageRow, openLink, passEmailCheck, sendSecure, setupSecure } from './helpers/secure-messages.js';

/*
 * Revocation is crypto-shredding (DESIGN "Key schedule"): over real SMTP, a
 * message to two recipients; revoking one destroys its wrap and K_srv and ends
 * its reader sessions while the other can still unwrap and decrypt; revoking
 * the rest removes the ciphertext from disk.
 */

t.test('revoke for one recipient: the other still decrypts; the revoked one gets 410 revoked; revoke all removes the ciphertext', async (t) => {
  const s = await setupSecure(t);
  const sent = await sendSecure(s, ['piet@extern.test', 'klaas@extern.test']);
  const [piet, klaas] = sent.links;
  t.ok(piet && klaas, 'two links');
  t.match((await decryptWithLink(s, sent, piet!)).text, /123456782/, 'piet decrypts before');
  const blobsBefore = blobFiles(s, sent.secureId);
  t.ok(blobsBefore.length >= 2, `body and attachment blobs stored: ${blobsBefore.join(', ')}`);

  // piet has a (verified) reader session and a live code
  const opened = await openLink(s, piet!.linkId);
  t.equal(opened.status, 200, 'piet opens the link page');
  const session = await passEmailCheck(s, piet!, opened.cookie);
  const db = s.relay.relay.sqlite.db;
  t.equal((db.prepare('SELECT COUNT(*) AS n FROM reader_sessions WHERE link_id = ?').get(piet!.linkId) as { n: number }).n, 1, 'a reader session for piet');
  s.clock.advance(31_000); // one code per 30 s
  const code = await fetch(`${s.relay.relay.readerUrl}/api/links/${piet!.linkId}/code`, { method: 'POST', headers: { 'X-Zegel-Reader': '1', cookie: session } });
  t.equal(code.status, 200, 'a code was sent to piet');
  t.equal((db.prepare(`SELECT COUNT(*) AS n FROM one_time_codes WHERE link_id = ? AND state = 'live'`).get(piet!.linkId) as { n: number }).n, 1, 'a live code');

  const result = await s.relay.relay.revocations.revokeLink(piet!.linkId, 'sender');
  t.same(result, { secureId: sent.secureId, queueId: sent.queueId, revoked: [{ linkId: piet!.linkId, address: 'piet@extern.test' }], state: 'active', purged: false });
  const row = linkRow(s, piet!.linkId);
  t.equal(row.state, 'revoked');
  t.equal(row.wrap, null, 'wrap shredded');
  t.equal(row.k_srv, null, 'K_srv shredded');
  t.equal((db.prepare('SELECT COUNT(*) AS n FROM reader_sessions WHERE link_id = ?').get(piet!.linkId) as { n: number }).n, 0, 'piet’s sessions ended');
  t.equal((db.prepare(`SELECT COUNT(*) AS n FROM one_time_codes WHERE link_id = ? AND state = 'live'`).get(piet!.linkId) as { n: number }).n, 0, 'piet’s live code gone');
  await t.rejects(decryptWithLink(s, sent, piet!), /no wrap/, 'piet’s fragment opens nothing any more');

  const again = await openLink(s, piet!.linkId, session);
  t.equal(again.status, 410, 'the reader answers 410');
  t.same(again.body, { error: 'revoked' });

  const content = await decryptWithLink(s, sent, klaas!);
  t.match(content.text, /123456782/, 'klaas still unwraps K and decrypts the body');
  t.equal((await openLink(s, klaas!.linkId)).status, 200, 'klaas’s link still opens');
  t.same(blobFiles(s, sent.secureId), blobsBefore, 'the ciphertext stays while a wrap is left');

  const events = eventsOf(s, sent.queueId, 'revoked');
  t.same(events, [{ recipient: 'piet@extern.test', detail: { actor: 'sender', linkId: piet!.linkId } }], 'one revoked event: actor, link, recipient, no keys');

  // idempotent
  const twice = await s.relay.relay.revocations.revokeLink(piet!.linkId, 'sender');
  t.same(twice.revoked, [], 'a second revoke changes nothing');
  t.equal(eventsOf(s, sent.queueId, 'revoked').length, 1, 'and records nothing');

  // the last wrap goes: the ciphertext and every key go too
  const last = await s.relay.relay.revocations.revokeLink(klaas!.linkId, 'admin');
  t.equal(last.purged, true, 'purged');
  t.equal(last.state, 'revoked');
  t.same(blobFiles(s, sent.secureId), [], 'no blob file left for the message');
  const message = messageRow(s, sent.secureId);
  t.equal(message.state, 'revoked');
  t.equal(message.body_blob, null);
  t.equal(message.sender_wrap, null);
  t.equal(message.sender_k_srv, null);
  t.type(message.purged_at, 'number', 'purged_at set');
  t.same(eventsOf(s, sent.queueId, 'purged').map((e) => e.detail.reason), ['revoked'], 'one purged event');
  t.same((await openLink(s, klaas!.linkId)).body, { error: 'revoked' }, 'klaas now gets revoked too');
});

t.test('revokeMessage: every recipient at once, or one by address; unknown ids and recipients are named errors', async (t) => {
  const s = await setupSecure(t);
  const sent = await sendSecure(s, ['piet@extern.test', 'klaas@extern.test']);
  const r = s.relay.relay.revocations;
  await t.rejects(r.revokeMessage('AAAAAAAAAAAAAAAAAAAAAA', 'admin'), { code: 'ZEGEL_MESSAGE_NOT_FOUND' });
  await t.rejects(r.revokeMessage(sent.secureId, 'admin', { recipient: 'nobody@extern.test' }), { code: 'ZEGEL_RECIPIENT_NOT_FOUND' });
  await t.rejects(r.revokeLink('AAAAAAAAAAAAAAAAAAAAAA', 'sender'), { code: 'ZEGEL_LINK_NOT_FOUND' });

  const one = await r.revokeMessage(sent.secureId, 'admin', { recipient: 'Klaas@Extern.test' });
  t.same(one.revoked.map((l) => l.address), ['klaas@extern.test'], 'by address, case-insensitive');
  t.equal(one.purged, false);
  const all = await r.revokeMessage(sent.secureId, 'sender');
  t.same(all.revoked.map((l) => l.address), ['piet@extern.test'], 'the rest');
  t.equal(all.purged, true);
  t.same(blobFiles(s, sent.secureId), [], 'ciphertext removed from disk');
  for (const link of sent.links) {
    const row = linkRow(s, link.linkId);
    t.same([row.state, row.wrap, row.k_srv], ['revoked', null, null], `${link.address}: revoked, shredded`);
  }
});

t.test('a scheduled revocation is applied when the clock reaches it, by a one-off purge run', async (t) => {
  const s = await setupSecure(t);
  const sent = await sendSecure(s, ['piet@extern.test', 'klaas@extern.test']);
  const [piet, klaas] = sent.links;
  const at = s.clock.now() + 3_600_000;
  t.equal(await s.relay.relay.scheduleRevoke({ linkId: piet!.linkId }, at, 'sender'), undefined, 'scheduled, not revoked yet');
  t.equal(linkRow(s, piet!.linkId).state, 'active');
  s.clock.advance(3_599_000);
  await s.relay.relay.backend.queue.idle();
  t.equal(linkRow(s, piet!.linkId).state, 'active', 'not before the moment');
  s.clock.advance(1_000);
  s.relay.relay.backend.queue.poke();
  await s.relay.relay.backend.queue.idle();
  t.equal(linkRow(s, piet!.linkId).state, 'revoked', 'revoked at the moment');
  t.same(eventsOf(s, sent.queueId, 'revoked').map((e) => e.detail.actor), ['sender']);
  t.equal(linkRow(s, klaas!.linkId).state, 'active', 'the other link stays');
  t.ok(blobFiles(s, sent.secureId).length > 0, 'ciphertext stays');

  // a whole message, and a moment in the past revokes at once
  const now = await s.relay.relay.scheduleRevoke({ secureId: sent.secureId }, s.clock.now() - 1, 'sender');
  t.equal(now?.purged, true, 'a past moment revokes at once');
  t.same(blobFiles(s, sent.secureId), []);
});
