import { simpleParser } from 'mailparser';
import t from 'tap';
import { unwrapKey } from '../src/crypto/key-schedule.js';
import { decryptBytes } from '../src/crypto/payload.js';
import type { SecureContent } from '../src/crypto/content.js';
import { startRelay, waitFor } from './helpers/relay.js';
import { startSink } from './helpers/sink.js';
import { swaks } from './helpers/smtp-client.js';
import fs from 'node:fs';
import path from 'node:path';

t.test('one notification per external recipient, each with its own link; a BCC recipient is never revealed', async (t) => {
  const sink = await startSink(t);
  const relay = await startRelay(t, { organisation: { name: 'Voorbeeldzorg', domains: ['zorg.test'] }, delivery: { target: sink.url }, receipts: { sender: false }, notification: { language: { byDomain: { 'example.co.uk': 'en' } } } });
  const result = await swaks(relay.port, [
    '--from', 'jan@zorg.test',
    '--to', 'a@extern.test,b@example.co.uk,verborgen@geheim.test,collega@zorg.test',
    '--header', 'From: Jan de Vries <jan@zorg.test>',
    '--header', 'To: a@extern.test, b@example.co.uk',
    '--header', 'Cc: collega@zorg.test',
    '--header', 'Subject: Overdracht',
    '--body', 'BSN 123456782',
  ]);
  t.equal(result.code, 0, result.stdout + result.stderr);
  await waitFor(() => sink.messages.length === 4, 20_000, 'three notifications and the internal copy');
  await relay.relay.backend.queue.idle();
  const byRecipient = new Map(sink.messages.map((m) => [m.to.join(','), m]));
  t.same([...byRecipient.keys()].sort(), ['a@extern.test', 'b@example.co.uk', 'collega@zorg.test', 'verborgen@geheim.test'], 'one mail per recipient');
  t.match(byRecipient.get('collega@zorg.test')!.raw.toString(), /BSN 123456782/, 'the internal recipient gets the original');

  const links = new Set<string>();
  for (const address of ['a@extern.test', 'b@example.co.uk', 'verborgen@geheim.test']) {
    const raw = byRecipient.get(address)!.raw;
    const mail = await simpleParser(raw);
    t.equal(mail.to && !Array.isArray(mail.to) ? mail.to.text : '', address, `${address}: addressed to that recipient only`);
    if (address !== 'verborgen@geheim.test') t.notOk(raw.includes('verborgen@geheim.test'), `${address}: the BCC recipient is not named`);
    t.notOk(raw.includes('BSN') || raw.includes('123456782'), `${address}: no part of the body`);
    const link = (mail.text ?? '').split(/\r?\n/).map((l) => l.trim()).find((l) => l.includes('/m/'))!;
    links.add(link);
    t.match(mail.html || '', address === 'b@example.co.uk' ? /Open message/ : /Klik voor bericht/, `${address}: language by recipient domain`);
  }
  t.equal(links.size, 3, 'every recipient has a link of its own');

  // what the reader shows: To and Cc of the original, never the BCC recipient
  const link = [...links][0]!;
  const [, linkId, fragment] = /\/m\/([A-Za-z0-9_-]{22})#([A-Za-z0-9_-]{43})/.exec(link)!;
  const row = relay.relay.sqlite.db.prepare('SELECT l.wrap, l.k_srv, m.id, m.body_blob FROM secure_links l JOIN secure_messages m ON m.id = l.message_id WHERE l.id = ?').get(linkId) as { wrap: Buffer; k_srv: Buffer; id: string; body_blob: string };
  const key = unwrapKey(row.wrap, Buffer.from(fragment!, 'base64url'), row.k_srv, row.id, linkId!);
  const content = JSON.parse(Buffer.from(await decryptBytes(key, fs.readFileSync(path.join(relay.dataDir, 'blobs', row.id, `${row.body_blob}.pgp`)))).toString()) as SecureContent;
  t.same(content.to, ['a@extern.test', 'b@example.co.uk']);
  t.same(content.cc, ['collega@zorg.test']);
  t.notOk(JSON.stringify(content).includes('verborgen'), 'the BCC recipient is not in what the reader shows');
  // another recipient's link does not open with this fragment
  const other = relay.relay.sqlite.db.prepare('SELECT id, wrap, k_srv FROM secure_links WHERE id != ? LIMIT 1').get(linkId) as { id: string; wrap: Buffer; k_srv: Buffer };
  t.throws(() => unwrapKey(other.wrap, Buffer.from(fragment!, 'base64url'), other.k_srv, row.id, other.id), 'a fragment opens only its own link');
});

t.test('a finding in the subject gives the notification a neutral subject; a null sender still gets a notification out', async (t) => {
  const sink = await startSink(t);
  const relay = await startRelay(t, { organisation: { name: 'Voorbeeldzorg', domains: ['zorg.test'] }, delivery: { target: sink.url }, receipts: { sender: false } });
  const sensitive = await swaks(relay.port, ['--from', 'jan@zorg.test', '--to', 'a@extern.test', '--header', 'Subject: Dossier BSN 123456782', '--body', 'Zie bijlage.']);
  t.equal(sensitive.code, 0, sensitive.stderr);
  const bounceLike = await swaks(relay.port, ['--from', '<>', '--to', 'b@extern.test', '--header', 'Subject: [veilig] retour', '--header', 'From: <>', '--body', 'Tekst.']);
  t.equal(bounceLike.code, 0, bounceLike.stderr);
  await waitFor(() => sink.messages.length === 2, 20_000, 'both notifications');
  const first = await simpleParser(sink.messages.find((m) => m.to.includes('a@extern.test'))!.raw);
  t.equal(first.subject, 'Beveiligd bericht van Voorbeeldzorg', 'neutral subject');
  t.notOk(sink.messages.find((m) => m.to.includes('a@extern.test'))!.raw.includes('123456782'), 'the BSN is nowhere in the notification');
  const second = await simpleParser(sink.messages.find((m) => m.to.includes('b@extern.test'))!.raw);
  t.equal(second.subject, 'retour', 'the opt-in tag is removed from the subject');
  t.match(second.text ?? '', /\/m\/[A-Za-z0-9_-]{22}#/, 'with a link');
});
