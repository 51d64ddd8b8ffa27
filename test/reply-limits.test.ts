import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import t, { type Test } from 'tap';
import { ManualClock } from '../src/clock.js';
import { launchBrowser } from './helpers/browser.js';
import { freePort } from './helpers/child-relay.js';
import { httpFrom } from './helpers/http-from.js';
import { startRelay } from './helpers/relay.js';
import { sendSecure, type SecureSetup } from './helpers/secure-messages.js';
import { startSink } from './helpers/sink.js';

/**
 * Replies from the reader: reader.replyLimit (per link in all, and per link
 * in any 24 hours) and active content refused (.html, .htm, .svg, .one,
 * .xlsb by name; HTML, SVG and OneNote by their bytes and declared type),
 * on the server (FormData and a hand-written multipart request) and in the page.
 */

async function setup(t: Test, replyLimit: { perLink: number; perDay: number }): Promise<SecureSetup> {
  const sink = await startSink(t);
  const port = await freePort();
  const clock = new ManualClock(Date.now());
  const relay = await startRelay(
    t,
    {
      organisation: { name: 'Voorbeeldzorg', domains: ['zorg.test'] },
      delivery: { target: sink.url },
      reader: { listen: `127.0.0.1:${port}`, publicUrl: `http://127.0.0.1:${port}`, replyLimit },
      verification: { default: 'none' },
    },
    { clock },
  );
  return { relay, sink, clock };
}

/** Opens and verifies a method-none link; the verified (rotated) session cookie. */
async function verifiedCookie(base: string, linkId: string): Promise<string> {
  const headers = { 'X-Zegel-Reader': '1' };
  const open = await fetch(`${base}/api/links/${linkId}/open`, { method: 'POST', headers });
  const pre = open.headers.get('set-cookie')!.split(';')[0]!;
  const verify = await fetch(`${base}/api/links/${linkId}/verify`, { method: 'POST', headers: { ...headers, cookie: pre } });
  if (verify.status !== 200) throw new Error(`verify: ${verify.status}`);
  return verify.headers.get('set-cookie')!.split(';')[0]!;
}

function form(attachment?: { name: string; bytes: Buffer; type?: string }): FormData {
  const f = new FormData();
  f.append('subject', 'Dossier');
  f.append('text', 'Dank u, ontvangen.');
  f.append('copy', new Blob([new Uint8Array([0xd2, 1, 2, 3])]), 'copy.pgp');
  if (attachment) f.append('attachment', new Blob([new Uint8Array(attachment.bytes)], { type: attachment.type ?? 'application/octet-stream' }), attachment.name);
  return f;
}

function replyRows(s: SecureSetup): number {
  return (s.relay.relay.sqlite.db.prepare('SELECT COUNT(*) AS n FROM secure_replies').get() as { n: number }).n;
}

t.test('per day and per link: the next reply is refused with 429 too-many-replies', async (t) => {
  const s = await setup(t, { perLink: 3, perDay: 2 });
  const base = s.relay.relay.readerUrl!;
  const sent = await sendSecure(s, ['piet@extern.test']);
  const linkId = sent.links[0]!.linkId;
  let cookie = await verifiedCookie(base, linkId);
  const url = `${base}/api/links/${linkId}/replies`;
  const post = (c: string, body: FormData = form()) => fetch(url, { method: 'POST', headers: { 'X-Zegel-Reader': '1', cookie: c }, body });

  t.equal((await post(cookie)).status, 201, 'reply 1');
  t.equal((await post(cookie)).status, 201, 'reply 2');
  const day = await post(cookie);
  t.equal(day.status, 429, 'reply 3 on the same day');
  const dayBody = (await day.json()) as { error: string; retryAfter: number };
  t.equal(dayBody.error, 'too-many-replies');
  t.ok(dayBody.retryAfter > 23 * 3600 && dayBody.retryAfter <= 24 * 3600, `retryAfter is the rest of the 24 hours (${dayBody.retryAfter} s)`);
  t.equal(day.headers.get('retry-after'), String(dayBody.retryAfter));
  t.equal(replyRows(s), 2);

  // a day later (and a new session: sessions last 12 hours) one more, then the link is done
  s.clock.advance(24 * 3600e3 + 1000);
  cookie = await verifiedCookie(base, linkId);
  t.equal((await post(cookie)).status, 201, 'reply 3, the next day');
  const total = await post(cookie);
  t.equal(total.status, 429, 'reply 4: the link reached perLink');
  t.same(await total.json(), { error: 'too-many-replies' }, 'no retryAfter: waiting does not help');
  t.equal(replyRows(s), 3);
  t.same(fs.readdirSync(path.join(s.relay.dataDir, 'uploads')), [], 'no upload files are left');
});

t.test('active content is refused by name, declared type and first bytes, also in a raw multipart request', async (t) => {
  const s = await setup(t, { perLink: 100, perDay: 100 });
  const base = s.relay.relay.readerUrl!;
  const sent = await sendSecure(s, ['piet@extern.test']);
  const linkId = sent.links[0]!.linkId;
  const cookie = await verifiedCookie(base, linkId);
  const url = `${base}/api/links/${linkId}/replies`;
  const post = (body: FormData) => fetch(url, { method: 'POST', headers: { 'X-Zegel-Reader': '1', cookie }, body });

  for (const name of ['brief.html', 'brief.htm', 'tekening.svg', 'notities.one', 'begroting.xlsb', 'BRIEF.HTML', 'pagina.xhtml', 'archief.mhtml']) {
    const res = await post(form({ name, bytes: Buffer.from('gewone inhoud\n') }));
    t.equal(res.status, 415, `${name}: refused by name`);
    t.same(await res.json(), { error: 'blocked-type', name });
  }
  const byContent: Array<[string, Buffer, string?]> = [
    ['foto.png', Buffer.from('<?xml version="1.0" encoding="UTF-8"?>\n<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>')],
    ['brief.txt', Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from('  \n<!DOCTYPE html><html><script>alert(1)</script></html>')])],
    ['data.dat', Buffer.concat([Buffer.from('e4525c7b8cd8a74daeb15378d02996d3', 'hex'), crypto.randomBytes(200)])],
    ['verslag.txt', Buffer.from('Gewone tekst.'), 'text/html'],
    ['plaatje.jpg', Buffer.from('plain'), 'image/svg+xml'],
  ];
  for (const [name, bytes, type] of byContent) {
    const res = await post(form({ name, bytes, ...(type ? { type } : {}) }));
    t.equal(res.status, 415, `${name}${type ? ` (${type})` : ''}: refused by ${type ? 'its declared type' : 'its first bytes'}`);
  }
  // what is allowed still goes: a PDF, a text file, an xlsx
  const ok = await post(form({ name: 'verslag.pdf', bytes: Buffer.concat([Buffer.from('%PDF-1.4\n'), crypto.randomBytes(1000)]), type: 'application/pdf' }));
  t.equal(ok.status, 201, 'a PDF is sent');

  // a hand-written multipart body, not the page's or fetch's encoder
  const boundary = `----zegel${crypto.randomBytes(8).toString('hex')}`;
  const part = (headers: string, body: Buffer | string) => Buffer.concat([Buffer.from(`--${boundary}\r\n${headers}\r\n\r\n`), Buffer.from(body), Buffer.from('\r\n')]);
  const raw = (name: string, contentType: string, bytes: Buffer) =>
    Buffer.concat([
      part('Content-Disposition: form-data; name="subject"', 'Dossier'),
      part('Content-Disposition: form-data; name="text"', 'Zie bijlage'),
      part('Content-Disposition: form-data; name="copy"; filename="copy.pgp"\r\nContent-Type: application/octet-stream', Buffer.from([0xd2, 1, 2, 3])),
      part(`Content-Disposition: form-data; name="attachment"; filename="${name}"\r\nContent-Type: ${contentType}`, bytes),
      Buffer.from(`--${boundary}--\r\n`),
    ]);
  const headers = { 'content-type': `multipart/form-data; boundary=${boundary}`, cookie };
  for (const [name, type, bytes] of [
    ['Tekening.SVG', 'application/octet-stream', Buffer.from('x')],
    ['index.htm', 'text/plain', Buffer.from('x')],
    ['werkblad.xlsb', 'application/octet-stream', Buffer.from('PK\x03\x04')],
    ['onschuldig.txt', 'text/plain', Buffer.from('<svg onload="alert(1)"/>')],
  ] as Array<[string, string, Buffer]>) {
    const res = await httpFrom('127.0.0.1', url, { method: 'POST', headers, body: raw(name, type, bytes) });
    t.equal(res.status, 415, `raw multipart ${name}`);
    t.equal(res.json.error, 'blocked-type');
  }
  const fine = await httpFrom('127.0.0.1', url, { method: 'POST', headers, body: raw('notitie.txt', 'text/plain', Buffer.from('Gewoon een notitie.\n')) });
  t.equal(fine.status, 201, 'raw multipart with a text file is taken');
  t.equal(replyRows(s), 2, 'only the two allowed replies were recorded');
  t.same(fs.readdirSync(path.join(s.relay.dataDir, 'uploads')), [], 'no upload files are left');
});

t.test('in the page: active content is refused before upload, and the day limit is readable', async (t) => {
  const s = await setup(t, { perLink: 10, perDay: 1 });
  const sent = await sendSecure(s, ['piet@extern.test']);
  const link = `${s.relay.relay.readerUrl}/m/${sent.links[0]!.linkId}#${sent.links[0]!.fragment}`;
  const { page } = await launchBrowser(t);
  const tab = await page();
  await tab.goto(link);
  await tab.getByRole('button', { name: 'Beantwoorden' }).waitFor({ timeout: 20_000 });
  await tab.getByRole('button', { name: 'Beantwoorden' }).click();
  await tab.getByLabel('Bericht').fill('Zie bijlage');
  await tab.getByLabel('Bijlagen toevoegen').setInputFiles({ name: 'tekening.svg', mimeType: 'image/svg+xml', buffer: Buffer.from('<svg/>') });
  await tab.getByRole('alert').filter({ hasText: 'tekening.svg' }).waitFor({ timeout: 10_000 });
  t.match(await tab.getByRole('alert').first().innerText(), /webpagina's zijn niet toegestaan/);
  await tab.getByRole('button', { name: /Verwijder tekening\.svg/ }).click();
  await tab.getByRole('button', { name: 'Versturen' }).click();
  await tab.getByText('Uw antwoord is verstuurd.').first().waitFor({ timeout: 20_000 });
  t.equal(replyRows(s), 1);

  await tab.getByRole('button', { name: 'Beantwoorden' }).click();
  await tab.getByLabel('Bericht').fill('Nog een vraag');
  await tab.getByRole('button', { name: 'Versturen' }).click();
  await tab.getByRole('alert').filter({ hasText: 'vandaag al zoveel antwoorden' }).waitFor({ timeout: 20_000 });
  t.match(await tab.getByRole('alert').first().innerText(), /U kunt weer antwoorden vanaf/);
  t.equal(replyRows(s), 1, 'the second reply was not taken');
});
