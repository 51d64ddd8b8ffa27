import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import nodemailer from 'nodemailer';
import { simpleParser } from 'mailparser';
import t from 'tap';
import { unwrapKey } from '../src/crypto/key-schedule.js';
import { decryptBytes } from '../src/crypto/payload.js';
import type { SecureContent } from '../src/crypto/content.js';
import { startRelay, waitFor } from './helpers/relay.js';
import { startSink } from './helpers/sink.js';

/** A random valid BSN (11-proef), as a canary no detector would invent. */
function randomBsn(): string {
  for (;;) {
    const digits = Array.from({ length: 8 }, () => crypto.randomInt(10));
    const sum = digits.reduce((acc, d, i) => acc + d * (9 - i), 0);
    const last = sum % 11;
    if (last < 10 && digits.some(Boolean)) return [...digits, last].join('');
  }
}

/** Every file under `dir`, recursively. */
function allFiles(dir: string): string[] {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? allFiles(path.join(dir, e.name)) : [path.join(dir, e.name)]));
}

t.test('an encrypted message leaves no canary anywhere under data.dir; the link fragment plus stored data open it, stored data alone does not', async (t) => {
  const sink = await startSink(t);
  const relay = await startRelay(t, { organisation: { name: 'Voorbeeldzorg', domains: ['zorg.test'] }, delivery: { target: sink.url }, reader: { publicUrl: 'https://lezen.zorg.test' } });
  const canary = `kanarie${crypto.randomBytes(12).toString('hex')}`;
  const nameCanary = `naam${crypto.randomBytes(8).toString('hex')}`;
  const fileCanary = `inhoud${crypto.randomBytes(12).toString('hex')}`;
  const bsn = randomBsn();
  const attachment = Buffer.concat([Buffer.from(`Overdracht ${fileCanary}\n`), crypto.randomBytes(200_000)]);

  const transport = nodemailer.createTransport({ host: '127.0.0.1', port: relay.port, secure: false, ignoreTLS: true });
  t.teardown(() => transport.close());
  const info = await transport.sendMail({
    envelope: { from: 'jan@zorg.test', to: ['piet@extern.test'] },
    from: 'Jan de Vries <jan@zorg.test>',
    to: 'piet@extern.test',
    subject: 'Overdracht cliënt',
    text: `Beste Piet,\n\nHet BSN is ${bsn}. Kenmerk ${canary}.\n`,
    attachments: [{ filename: `${nameCanary}.txt`, content: attachment }],
  });
  t.match(info.response, /^250 2\.6\.0/, 'accepted');
  const queueId = /queued as (\S+)/.exec(info.response)![1]!;

  const delivered = await waitFor(() => sink.messages.find((m) => m.to.includes('piet@extern.test')), 20_000, 'the notification');
  await relay.relay.backend.queue.idle();
  // internalTarget defaults to the target: the sender's receipt (status link, no content) arrives here too
  t.equal(sink.messages.length, 2, 'two mails reached the next hop: the notification and the sender\'s receipt');
  for (const m of sink.messages) for (const secret of [canary, nameCanary, fileCanary, bsn]) t.notOk(m.raw.toString('latin1').includes(secret), 'no mail carries content');
  t.same(delivered.to, ['piet@extern.test']);
  const raw = delivered.raw.toString('latin1');
  for (const secret of [canary, nameCanary, fileCanary, bsn]) t.notOk(raw.includes(secret), `the notification does not carry ${secret.slice(0, 6)}…`);
  const mail = await simpleParser(delivered.raw);
  const linkLine = (mail.text ?? '').split(/\r?\n/).find((line) => line.startsWith('https://lezen.zorg.test/m/'));
  t.ok(linkLine, 'the plain-text part has the link on a line of its own');
  const match = /^https:\/\/lezen\.zorg\.test\/m\/([A-Za-z0-9_-]{22})#([A-Za-z0-9_-]{43})$/.exec(linkLine!.trim());
  t.ok(match, `link format <publicUrl>/m/<id>#<key>: ${linkLine}`);
  const [, linkId, fragment] = match!;

  // the plaintext spool is gone, and nothing under data.dir (nor the log) holds a canary
  const spoolDir = path.join(relay.dataDir, 'spool');
  await waitFor(() => !fs.readdirSync(spoolDir).some((f) => f.startsWith(queueId)), 10_000, 'the plaintext spool file to go');
  await relay.relay.stop(2_000);
  const files = [...allFiles(relay.dataDir), path.join(path.dirname(relay.dataDir), 'relay.log')];
  t.ok(files.some((f) => f.endsWith('.pgp')), 'blobs are there');
  t.ok(files.some((f) => f.endsWith('zegel.db')), 'the database is there');
  const needles = [canary, nameCanary, fileCanary, bsn].flatMap((s) => [Buffer.from(s, 'utf8'), Buffer.from(s, 'utf16le')]);
  for (const file of files) {
    const bytes = fs.readFileSync(file);
    for (const needle of needles) t.equal(bytes.indexOf(needle), -1, `${path.relative(relay.dataDir, file)} does not hold ${needle.toString(needle.length > 40 ? 'utf16le' : 'utf8').slice(0, 6)}…`);
  }

  // stored data: the wrap and K_srv, but never K_link
  const Database = (await import('better-sqlite3')).default;
  const db = new Database(path.join(relay.dataDir, 'zegel.db'), { readonly: true });
  t.teardown(() => db.close());
  const link = db.prepare('SELECT * FROM secure_links WHERE id = ?').get(linkId) as { message_id: string; wrap: Buffer; k_srv: Buffer };
  const secure = db.prepare('SELECT * FROM secure_messages WHERE id = ?').get(link.message_id) as { id: string; body_blob: string; blobs: string };
  const kLink = Buffer.from(fragment!, 'base64url');
  for (const file of files) t.equal(fs.readFileSync(file).indexOf(kLink), -1, `K_link is not in ${path.relative(relay.dataDir, file)}`);
  const bodyBlob = fs.readFileSync(path.join(relay.dataDir, 'blobs', secure.id, `${secure.body_blob}.pgp`));

  // everything stored plus the config (and the relay key) cannot open it: every stored 32-byte value fails as K_link
  const stored = [link.k_srv, fs.readFileSync(path.join(relay.dataDir, 'relay.key')).subarray(0, 32)];
  for (const guess of stored) t.throws(() => unwrapKey(link.wrap, guess, link.k_srv, secure.id, linkId!), 'stored keys do not unwrap K');

  // the fragment plus stored data can
  const contentKey = unwrapKey(link.wrap, kLink, link.k_srv, secure.id, linkId!);
  const content = JSON.parse(Buffer.from(await decryptBytes(contentKey, bodyBlob)).toString('utf8')) as SecureContent;
  t.match(content.text, canary, 'the body decrypts');
  t.match(content.text, bsn);
  t.equal(content.subject, 'Overdracht cliënt');
  t.equal(content.attachments.length, 1);
  t.equal(content.attachments[0]!.name, `${nameCanary}.txt`);
  t.equal(content.attachments[0]!.size, attachment.length);
  const attachmentBlob = fs.readFileSync(path.join(relay.dataDir, 'blobs', secure.id, `${content.attachments[0]!.blob}.pgp`));
  t.ok(Buffer.from(await decryptBytes(contentKey, attachmentBlob)).equals(attachment), 'the attachment decrypts to the same bytes');
});
