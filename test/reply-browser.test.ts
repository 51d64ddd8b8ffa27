import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import nodemailer from 'nodemailer';
import { simpleParser } from 'mailparser';
import t, { type Test } from 'tap';
import type { Page } from 'playwright-core';
import { ManualClock } from '../src/clock.js';
import { freePort } from './helpers/child-relay.js';
import { launchBrowser } from './helpers/browser.js';
import { startRelay, waitFor, type TestRelay } from './helpers/relay.js';
import { startSink, type TestSink } from './helpers/sink.js';

type SendMailOptions = Parameters<ReturnType<typeof nodemailer.createTransport>['sendMail']>[0];

/** A relay whose reader listens where its links point; no check (method none) so the tests go straight to the message. */
async function setup(t: Test, extra: Record<string, unknown> = {}): Promise<{ relay: TestRelay; sink: TestSink }> {
  const sink = await startSink(t);
  const port = await freePort();
  const relay = await startRelay(
    t,
    {
      organisation: { name: 'Voorbeeldzorg', domains: ['zorg.test'] },
      delivery: { target: sink.url },
      reader: { listen: `127.0.0.1:${port}`, publicUrl: `http://127.0.0.1:${port}`, ...((extra.reader as object) ?? {}) },
      verification: { default: 'none' },
    },
    { clock: new ManualClock(Date.now()) },
  );
  return { relay, sink };
}

/** A random valid BSN (11-proef). */
function randomBsn(): string {
  for (;;) {
    const digits = Array.from({ length: 8 }, () => crypto.randomInt(10));
    const sum = digits.reduce((acc, d, i) => acc + d * (9 - i), 0);
    const last = sum % 11;
    if (last < 10 && digits.some(Boolean)) return [...digits, last].join('');
  }
}

function allFiles(dir: string): string[] {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? allFiles(path.join(dir, e.name)) : [path.join(dir, e.name)]));
}

async function send(relay: TestRelay, mail: SendMailOptions): Promise<string> {
  const transport = nodemailer.createTransport({ host: '127.0.0.1', port: relay.port, secure: false, ignoreTLS: true });
  try {
    const info = await transport.sendMail(mail);
    return /queued as (\S+)/.exec(info.response)![1]!;
  } finally {
    transport.close();
  }
}

/** The link in the `n`-th notification to `to`. */
async function linkFor(sink: TestSink, to: string, n = 0): Promise<string> {
  return waitFor(async () => {
    const links: string[] = [];
    for (const m of sink.messages) {
      if (!m.to.includes(to)) continue;
      const link = ((await simpleParser(m.raw)).text ?? '').split(/\r?\n/).map((l) => l.trim()).find((l) => /\/m\/[A-Za-z0-9_-]{22}#/.test(l));
      if (link) links.push(link);
    }
    return links[n];
  }, 20_000, 'the notification');
}

async function secureMessage(relay: TestRelay, sink: TestSink, extra: Partial<SendMailOptions> = {}): Promise<{ link: string; queueId: string; messageId: string }> {
  const messageId = `<orig-${crypto.randomBytes(6).toString('hex')}@zorg.test>`;
  const queueId = await send(relay, {
    envelope: { from: 'jan@zorg.test', to: ['piet@extern.test'] },
    from: 'Jan de Vries <jan@zorg.test>',
    to: 'piet@extern.test',
    subject: 'Dossier',
    messageId,
    text: `Het BSN is ${randomBsn()}.`,
    ...extra,
  });
  return { link: await linkFor(sink, 'piet@extern.test'), queueId, messageId };
}

async function openMessage(page: () => Promise<Page>, link: string): Promise<Page> {
  const tab = await page();
  await tab.goto(link);
  await tab.getByRole('button', { name: 'Beantwoorden' }).waitFor({ timeout: 20_000 });
  return tab;
}

t.test('a reply with an attachment reaches the sender threaded, with the same bytes; the conversation shows it; no canary stays under data.dir', async (t) => {
  const { relay, sink } = await setup(t);
  const original = await secureMessage(relay, sink);
  const { page } = await launchBrowser(t);
  const tab = await openMessage(page, original.link);

  const canary = `kanarie${crypto.randomBytes(10).toString('hex')}`;
  const fileCanary = `inhoud${crypto.randomBytes(10).toString('hex')}`;
  const nameCanary = `naam${crypto.randomBytes(6).toString('hex')}`;
  const attachment = Buffer.concat([Buffer.from(`Verslag ${fileCanary}\n`), crypto.randomBytes(300_000)]);
  await tab.getByRole('button', { name: 'Beantwoorden' }).click();
  await tab.getByLabel('Bericht').fill(`Beste Jan,\n\nHierbij het verslag. ${canary}`);
  await tab.getByLabel('Bijlagen toevoegen').setInputFiles({ name: `${nameCanary}.pdf`, mimeType: 'application/pdf', buffer: attachment });
  await tab.getByRole('button', { name: 'Versturen' }).click();
  await tab.getByText('Uw antwoord is verstuurd.').first().waitFor({ timeout: 20_000 });
  t.pass('the page says the reply was sent');

  const delivered = await waitFor(() => sink.messages.find((m) => m.to.includes('jan@zorg.test') && m.from === 'piet@extern.test'), 20_000, 'the reply at the sender');
  t.equal(delivered.from, 'piet@extern.test', 'envelope sender: the recipient');
  const mail = await simpleParser(delivered.raw);
  t.equal(mail.from?.value[0]?.address, 'piet@extern.test', 'From: the verified address');
  t.equal((Array.isArray(mail.to) ? mail.to[0] : mail.to)?.value[0]?.address, 'jan@zorg.test', 'To: the original sender');
  t.equal(mail.subject, 'Re: Dossier');
  t.equal(mail.inReplyTo, original.messageId, 'In-Reply-To: the original');
  t.same([mail.references].flat(), [original.messageId], 'References: the original');
  t.match(mail.text, canary, 'the text');
  t.ok(mail.headers.get('x-zegel-origin'), 'X-Zegel-Origin is set');
  t.equal(mail.attachments.length, 1);
  t.equal(mail.attachments[0]!.filename, `${nameCanary}.pdf`);
  t.ok(mail.attachments[0]!.content.equals(attachment), 'the attachment has the same bytes');
  const replyMessageId = mail.messageId!;

  const db = relay.relay.sqlite.db;
  const row = db.prepare('SELECT * FROM secure_replies').get() as { id: string; blob: string; queue_id: string; link_id: string };
  t.ok(row.blob, 'the copy is recorded');
  t.equal(replyMessageId, `<${row.id}@${new URL('http://' + replyMessageId.slice(replyMessageId.indexOf('@') + 1, -1)).hostname}>`);
  const events = db.prepare("SELECT * FROM events WHERE type = 'replied'").all() as Array<{ detail: string }>;
  t.equal(events.length, 1, "one 'replied' event");
  t.notOk(events[0]!.detail.includes(canary), 'the event has no content');

  // the conversation after a reload: decrypted in the browser
  await tab.reload();
  await tab.getByRole('heading', { name: 'Uw antwoorden' }).waitFor({ timeout: 20_000 });
  await tab.getByText(canary).waitFor({ timeout: 20_000 });
  t.match(await tab.locator('.replies').innerText(), `${nameCanary}.pdf`, 'the reply and its attachment name show in the conversation');

  // canary: the spool file goes once delivered; nothing under data.dir holds the reply in clear
  const spoolDir = path.join(relay.dataDir, 'spool');
  await waitFor(() => !fs.readdirSync(spoolDir).some((f) => f.startsWith(row.queue_id)), 10_000, 'the reply spool file to go');
  await relay.relay.stop(2_000);
  const files = [...allFiles(relay.dataDir), path.join(path.dirname(relay.dataDir), 'relay.log')];
  t.ok(fs.existsSync(path.join(relay.dataDir, 'blobs')), 'blobs are there');
  t.ok(files.some((f) => f.endsWith(`${row.blob}.pgp`)), 'the reply copy is a blob');
  const needles = [canary, fileCanary, nameCanary].flatMap((s) => [Buffer.from(s, 'utf8'), Buffer.from(s, 'utf16le')]);
  for (const file of files) {
    const bytes = fs.readFileSync(file);
    const found = needles.filter((n) => bytes.indexOf(n) !== -1);
    t.equal(found.length, 0, `${path.relative(relay.dataDir, file)} holds no canary of the reply`);
  }
});

t.test('the sender answers the reply by mail: a new secure message in the same thread', async (t) => {
  const { relay, sink } = await setup(t);
  const original = await secureMessage(relay, sink);
  const { page } = await launchBrowser(t);
  const tab = await openMessage(page, original.link);
  await tab.getByRole('button', { name: 'Beantwoorden' }).click();
  await tab.getByLabel('Bericht').fill('Dank, ontvangen.');
  await tab.getByRole('button', { name: 'Versturen' }).click();
  await tab.getByText('Uw antwoord is verstuurd.').first().waitFor({ timeout: 20_000 });
  const delivered = await waitFor(() => sink.messages.find((m) => m.to.includes('jan@zorg.test') && m.from === 'piet@extern.test'), 20_000, 'the reply at the sender');
  const replyId = (await simpleParser(delivered.raw)).messageId!;

  const answerQueue = await send(relay, {
    envelope: { from: 'jan@zorg.test', to: ['piet@extern.test'] },
    from: 'Jan de Vries <jan@zorg.test>',
    to: 'piet@extern.test',
    subject: 'Re: Re: Dossier',
    inReplyTo: replyId,
    references: [original.messageId, replyId],
    text: `Nog een aanvulling: BSN ${randomBsn()}.`,
  });
  const second = await linkFor(sink, 'piet@extern.test', 1);
  t.ok(second, 'the recipient gets a new notification');
  const db = relay.relay.sqlite.db;
  const rows = await waitFor(() => {
    const r = db.prepare('SELECT id, queue_id, thread_id FROM secure_messages ORDER BY created_at, rowid').all() as Array<{ id: string; queue_id: string; thread_id: string }>;
    return r.length === 2 ? r : undefined;
  }, 20_000, 'the second secure message');
  const first = rows.find((r) => r.queue_id === original.queueId)!;
  const answer = rows.find((r) => r.queue_id === answerQueue)!;
  t.equal(first.thread_id, first.id, 'the original starts the thread');
  t.equal(answer.thread_id, first.thread_id, "the answer is in the original's thread");
  t.not(answer.id, first.id);
});

t.test('CSRF, sessions, size and type: refused with a readable answer', async (t) => {
  const { relay, sink } = await setup(t, { reader: { replyMaxSize: '100KB' } });
  const original = await secureMessage(relay, sink);
  const base = new URL(original.link).origin;
  const linkId = new URL(original.link).pathname.split('/').pop()!;
  const url = `${base}/api/links/${linkId}/replies`;
  const form = (): FormData => {
    const f = new FormData();
    f.append('subject', 'Dossier');
    f.append('text', 'hallo');
    f.append('copy', new Blob([new Uint8Array([0xd2, 1, 2, 3])]), 'copy.pgp');
    return f;
  };

  // no session at all
  let res = await fetch(url, { method: 'POST', headers: { 'X-Zegel-Reader': '1' }, body: form() });
  t.equal(res.status, 403);
  t.same(await res.json(), { error: 'not-verified' }, 'without a verified session: refused');

  // a session that was opened but not verified (email-code would be pending; method none still needs /verify)
  const open = await fetch(`${base}/api/links/${linkId}/open`, { method: 'POST', headers: { 'X-Zegel-Reader': '1' } });
  const preSession = open.headers.get('set-cookie')!.split(';')[0]!;
  res = await fetch(url, { method: 'POST', headers: { 'X-Zegel-Reader': '1', cookie: preSession }, body: form() });
  t.equal(res.status, 403, 'an unverified session is refused');
  const verified = await fetch(`${base}/api/links/${linkId}/verify`, { method: 'POST', headers: { 'X-Zegel-Reader': '1', cookie: preSession } });
  // the passed check rotates the session id: the new cookie is the verified session
  const cookie = verified.headers.get('set-cookie')!.split(';')[0]!;
  t.not(cookie, preSession, 'the session id rotates when the check passes');

  // verified, but without the header
  res = await fetch(url, { method: 'POST', headers: { cookie }, body: form() });
  t.equal(res.status, 403);
  t.same(await res.json(), { error: 'csrf' }, 'without X-Zegel-Reader: refused');

  // a session of another link does not count
  // (the cookie names one link; here a made-up cookie)
  res = await fetch(url, { method: 'POST', headers: { 'X-Zegel-Reader': '1', cookie: `zegel_rs=${'A'.repeat(43)}` }, body: form() });
  t.equal(res.status, 403, 'an unknown session is refused');

  // an executable, by name and by content
  let f = form();
  f.append('attachment', new Blob([Buffer.from('hello')]), 'setup.exe');
  res = await fetch(url, { method: 'POST', headers: { 'X-Zegel-Reader': '1', cookie }, body: f });
  t.equal(res.status, 415);
  t.same(await res.json(), { error: 'blocked-type', name: 'setup.exe' });
  f = form();
  f.append('attachment', new Blob([Buffer.concat([Buffer.from('MZ'), Buffer.alloc(100)])], { type: 'application/pdf' }), 'rapport.pdf');
  res = await fetch(url, { method: 'POST', headers: { 'X-Zegel-Reader': '1', cookie }, body: f });
  t.equal(res.status, 415, 'a program named .pdf is refused by its first bytes');

  // too large
  f = form();
  f.append('attachment', new Blob([crypto.randomBytes(150_000)]), 'groot.pdf');
  res = await fetch(url, { method: 'POST', headers: { 'X-Zegel-Reader': '1', cookie }, body: f });
  t.equal(res.status, 413);
  t.same(await res.json(), { error: 'too-large', limit: 100 * 1024 });

  // a copy in clear is refused
  f = new FormData();
  f.append('subject', 'Dossier');
  f.append('text', 'hallo');
  f.append('copy', new Blob([Buffer.from('{"v":1}')]), 'copy.pgp');
  res = await fetch(url, { method: 'POST', headers: { 'X-Zegel-Reader': '1', cookie }, body: f });
  t.equal(res.status, 400, 'a copy that is not ciphertext is refused');
  t.equal((relay.relay.sqlite.db.prepare('SELECT COUNT(*) AS n FROM secure_replies').get() as { n: number }).n, 0, 'nothing was recorded');
  t.same(fs.readdirSync(path.join(relay.dataDir, 'uploads')), [], 'no upload files are left');

  // in the browser: the page refuses before uploading, with a readable message
  const { page } = await launchBrowser(t);
  const tab = await openMessage(page, original.link);
  await tab.getByRole('button', { name: 'Beantwoorden' }).click();
  await tab.getByLabel('Bericht').fill('Zie bijlage');
  await tab.getByLabel('Bijlagen toevoegen').setInputFiles({ name: 'installer.exe', mimeType: 'application/octet-stream', buffer: Buffer.from('x') });
  await tab.getByRole('alert').filter({ hasText: 'installer.exe' }).waitFor({ timeout: 10_000 });
  t.match(await tab.getByRole('alert').first().innerText(), /programma's, scripts en webpagina's zijn niet toegestaan/);
  await tab.getByRole('button', { name: /Verwijder installer\.exe/ }).click();
  await tab.getByLabel('Bijlagen toevoegen').setInputFiles({ name: 'groot.pdf', mimeType: 'application/pdf', buffer: crypto.randomBytes(150_000) });
  await tab.getByRole('alert').filter({ hasText: 'te groot' }).waitFor({ timeout: 10_000 });
  t.match(await tab.getByRole('alert').first().innerText(), /hoogstens 100 kB|hoogstens 102 kB|hoogstens 100 KB|hoogstens/);
  t.equal(sink.messages.filter((m) => m.from === 'piet@extern.test').length, 0, 'nothing reached the sender');
});
