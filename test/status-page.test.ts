import nodemailer from 'nodemailer';
import { storeView } from './helpers/store-view.js';
import { simpleParser } from 'mailparser';
import t from 'tap';
import { unwrapKey } from '../src/crypto/key-schedule.js';
import { statusToken } from '../src/secure/status-keys.js';
import { freePort } from './helpers/child-relay.js';
import { launchBrowser } from './helpers/browser.js';
import { startRelay, waitFor, type Teardown, type TestRelay } from './helpers/relay.js';
import { startSink, type TestSink } from './helpers/sink.js';

/**
 * The sender's receipt and status page over real SMTP: the receipt reaches
 * the internal route with the status link; the status page (in Chromium)
 * shows an open; a resend from the status page mints a fresh link in the
 * browser and the old link stops working; a status link of one message can
 * neither see nor act on another; receipts can be turned off.
 */

interface Setup {
  relay: TestRelay;
  target: TestSink;
  internal: TestSink;
  base: string;
}

async function setup(t: Teardown, extra: Record<string, unknown> = {}): Promise<Setup> {
  const target = await startSink(t);
  const internal = await startSink(t);
  const port = await freePort();
  const relay = await startRelay(t, {
    organisation: { name: 'Voorbeeldzorg', domains: ['zorg.test'] },
    delivery: { target: target.url, internalTarget: internal.url },
    reader: { listen: `127.0.0.1:${port}`, publicUrl: `http://127.0.0.1:${port}` },
    verification: { default: 'none' },
    ...extra,
  });
  return { relay, target, internal, base: `http://127.0.0.1:${port}` };
}

async function send(s: Setup, to: string[], subject = 'Verslag cliënt'): Promise<string> {
  const transport = nodemailer.createTransport({ host: '127.0.0.1', port: s.relay.port, secure: false, ignoreTLS: true });
  try {
    const info = await transport.sendMail({
      envelope: { from: 'jan@zorg.test', to },
      from: 'Jan de Vries <jan@zorg.test>',
      to: to.join(', '),
      subject,
      text: 'Beste collega,\n\nBSN 111222333.\n\nGroet, Jan',
    });
    return /queued as (\S+)/.exec(info.response)![1]!;
  } finally {
    transport.close();
  }
}

async function textOf(raw: Buffer): Promise<{ text: string; subject: string; headers: Map<string, unknown> }> {
  const parsed = await simpleParser(raw);
  return { text: parsed.text ?? '', subject: parsed.subject ?? '', headers: parsed.headers };
}

function linkIn(text: string, prefix: string): string | undefined {
  return text.split(/\r?\n/).map((l) => l.trim()).find((l) => l.startsWith(prefix));
}

async function notificationLink(s: Setup, to: string, skip: readonly string[] = []): Promise<string> {
  const mail = await waitFor(async () => {
    for (const m of s.target.messages.filter((m) => m.to.includes(to))) {
      const link = linkIn((await textOf(m.raw)).text, `${s.base}/m/`);
      if (link && !skip.includes(link)) return link;
    }
    return undefined;
  }, 20_000, `the notification to ${to}`);
  return mail;
}

async function receiptLink(s: Setup, count = 1): Promise<string[]> {
  await waitFor(() => s.internal.messages.filter((m) => m.to.includes('jan@zorg.test')).length >= count, 20_000, 'the receipt');
  const links: string[] = [];
  for (const m of s.internal.messages.filter((m) => m.to.includes('jan@zorg.test'))) {
    const link = linkIn((await textOf(m.raw)).text, `${s.base}/s/`);
    if (link) links.push(link);
  }
  return links;
}

/** Opens a recipient's link the way the page does: open, verify (method none), returns the released key. */
async function openLink(base: string, link: string): Promise<{ status: number; body: Record<string, unknown> }> {
  const id = new URL(link).pathname.split('/')[2]!;
  const headers = { 'x-zegel-reader': '1', 'content-type': 'application/json' };
  const open = await fetch(`${base}/api/links/${id}/open`, { method: 'POST', headers, body: '{}' });
  if (!open.ok) return { status: open.status, body: (await open.json()) as Record<string, unknown> };
  const cookie = open.headers.get('set-cookie')!.split(';')[0]!;
  const verify = await fetch(`${base}/api/links/${id}/verify`, { method: 'POST', headers: { ...headers, cookie }, body: '{}' });
  return { status: verify.status, body: (await verify.json()) as Record<string, unknown> };
}

function contentKeyOf(link: string, body: Record<string, unknown>): Buffer {
  const key = body.key as { secureId: string; linkId: string; wrap: string; kSrv: string };
  return unwrapKey(Buffer.from(key.wrap, 'base64url'), Buffer.from(new URL(link).hash.slice(1), 'base64url'), Buffer.from(key.kSrv, 'base64url'), key.secureId, key.linkId);
}

function tokenOf(statusLink: string): { id: string; token: string } {
  const url = new URL(statusLink);
  const id = url.pathname.split('/')[2]!;
  return { id, token: statusToken(Buffer.from(url.hash.slice(1), 'base64url'), id).toString('base64url') };
}

async function statusApi(base: string, statusLink: string, rest = '', body: unknown = {}, headers: Record<string, string> = {}) {
  const { id, token } = tokenOf(statusLink);
  const res = await fetch(`${base}/api/status/${id}${rest}`, {
    method: 'POST',
    headers: { 'x-zegel-reader': '1', 'x-zegel-status': token, 'content-type': 'application/json', ...headers },
    body: JSON.stringify(body),
  });
  return { status: res.status, body: (await res.json()) as Record<string, any> };
}

t.test('receipt at the internal route; the status page shows an open; resend from the page replaces the link', async (t) => {
  const s = await setup(t);
  const queueId = await send(s, ['piet@extern.test', 'klaas@extern.test']);
  const [statusLink] = await receiptLink(s);
  t.ok(statusLink, 'the receipt has the status link alone on a line');
  t.equal(s.target.messages.filter((m) => m.to.includes('jan@zorg.test')).length, 0, 'the receipt went to the internal route, not the target');
  const receipt = s.internal.messages.find((m) => m.to.includes('jan@zorg.test'))!;
  const parsed = await textOf(receipt.raw);
  t.match(parsed.text, /piet@extern\.test/, 'names the recipients');
  t.match(parsed.text, /klaas@extern\.test/);
  t.match(parsed.text, /geen extra controle/, 'and the check each must pass');
  t.match(parsed.text, /te lezen tot/, 'and the expiry');
  t.ok(parsed.headers.has('x-zegel-origin'), 'X-Zegel-Origin like the other relay mails');
  const row = s.relay.relay.sqlite.db.prepare('SELECT status_id, status_token_hash, sender_wrap FROM secure_messages WHERE queue_id = ?').get(queueId) as Record<string, unknown>;
  const fragment = new URL(statusLink!).hash.slice(1);
  t.equal(row.status_id, tokenOf(statusLink!).id, 'the status id is stored');
  t.notOk(JSON.stringify(row).includes(fragment) || (row.sender_wrap as Buffer).toString('base64url').includes(fragment), 'K_link_s is not');

  const piet = await notificationLink(s, 'piet@extern.test');
  const klaas = await notificationLink(s, 'klaas@extern.test');

  const { page } = await launchBrowser(t);
  const tab = await page({ locale: 'nl-NL' });
  const requests: string[] = [];
  tab.on('request', (request) => requests.push(`${request.url()} ${request.postData() ?? ''} ${JSON.stringify(request.headers())}`));
  await tab.goto(statusLink!);
  await tab.getByRole('heading', { name: 'Status van uw beveiligde bericht' }).waitFor();
  const pietItem = tab.locator('li.status-recipient[data-recipient="piet@extern.test"]');
  await pietItem.getByText('Nog niet geopend').waitFor();

  const opened = await openLink(s.base, piet);
  t.equal(opened.status, 200, 'the recipient opens the message');
  const pietKey = contentKeyOf(piet, opened.body);
  await tab.getByRole('button', { name: 'Vernieuwen' }).click();
  await pietItem.getByText(/Geopend: eerst/).waitFor();
  t.pass('the status page shows the open');
  await tab.locator('li.status-recipient[data-recipient="klaas@extern.test"]').getByText('Nog niet geopend').waitFor();

  // resend to klaas: the browser unwraps K and wraps it for a fresh link
  await tab.getByRole('button', { name: 'Nieuwe link sturen naar klaas@extern.test' }).click();
  await tab.locator('.status-notice', { hasText: /Er is een nieuwe link gestuurd naar klaas@extern\.test/ }).waitFor({ timeout: 20_000 });
  const fresh = await notificationLink(s, 'klaas@extern.test', [klaas]);
  t.not(fresh, klaas, 'a new notification with a new link');
  const old = await openLink(s.base, klaas);
  t.equal(old.status, 404, 'the old link is unknown now');
  t.equal(old.body.error, 'unknown-link');
  const renewed = await openLink(s.base, fresh);
  t.equal(renewed.status, 200, 'the new link opens');
  t.ok(contentKeyOf(fresh, renewed.body).equals(pietKey), 'and unwraps the same content key');
  await tab.getByText('Nieuwe link gestuurd: 1 keer').waitFor();

  t.notOk(requests.some((r) => r.includes(fragment)), 'the status fragment never left the browser');
  const oldFragment = new URL(fresh).hash.slice(1);
  const events = storeView(s.relay.relay.sqlite).events(queueId);
  t.ok(events.some((e) => e.type === 'link-resent'), 'the resend is in the audit trail');
  t.notOk(JSON.stringify(events).includes(oldFragment), 'without the new K_link');
  const oldRow = s.relay.relay.sqlite.db.prepare('SELECT state, replaced_by, wrap FROM secure_links WHERE id = ?').get(new URL(klaas).pathname.split('/')[2]) as Record<string, unknown>;
  t.same(oldRow, { state: 'replaced', replaced_by: new URL(fresh).pathname.split('/')[2], wrap: null }, 'the old link is replaced and shredded');

  // the old link in the browser: the one "does not work" page
  await tab.goto(klaas);
  await tab.getByRole('heading', { name: 'Deze link werkt niet' }).waitFor();
  // a wrong fragment on the status page: the same page
  await tab.goto(`${statusLink!.split('#')[0]}#${'A'.repeat(43)}`);
  await tab.getByRole('heading', { name: 'Deze link werkt niet' }).waitFor();
  t.pass('old link and wrong status fragment show the unknown-link page');
});

t.test('a status link of one message cannot see or act on another; revoke one and all', async (t) => {
  const s = await setup(t);
  await send(s, ['a@extern.test', 'b@extern.test']);
  const [one] = await receiptLink(s, 1);
  await send(s, ['c@extern.test']);
  const links = await receiptLink(s, 2);
  const two = links.find((l) => l !== one)!;
  const a = await notificationLink(s, 'a@extern.test');
  const b = await notificationLink(s, 'b@extern.test');
  const c = await notificationLink(s, 'c@extern.test');
  const cId = new URL(c).pathname.split('/')[2]!;

  const overview = await statusApi(s.base, one!);
  t.equal(overview.status, 200);
  t.same(overview.body.recipients.map((r: { address: string }) => r.address).sort(), ['a@extern.test', 'b@extern.test'], 'sees its own recipients only');

  const { id: twoId } = tokenOf(two);
  const { token: oneToken } = tokenOf(one!);
  const cross = await fetch(`${s.base}/api/status/${twoId}`, { method: 'POST', headers: { 'x-zegel-reader': '1', 'x-zegel-status': oneToken, 'content-type': 'application/json' }, body: '{}' });
  t.equal(cross.status, 404, "one message's token does not open another's status");
  t.equal(((await cross.json()) as { error: string }).error, 'unknown-link');
  const crossRevoke = await statusApi(s.base, one!, '/revoke', { linkId: cId });
  t.equal(crossRevoke.status, 404, "nor revokes another message's link");
  const crossResend = await statusApi(s.base, one!, '/resend', { linkId: cId, newLinkId: 'A'.repeat(22), wrap: 'A'.repeat(80), kSrv: 'A'.repeat(43), kLink: 'A'.repeat(43) });
  t.equal(crossResend.status, 404, 'nor resends it');
  t.equal((await openLink(s.base, c)).status, 200, 'the other message still opens');

  const noCsrf = await statusApi(s.base, one!, '/revoke', {}, { 'x-zegel-reader': '' });
  t.equal(noCsrf.status, 403, 'POSTs need X-Zegel-Reader');
  const wrong = await fetch(`${s.base}/api/status/${tokenOf(one!).id}`, { method: 'POST', headers: { 'x-zegel-reader': '1', 'x-zegel-status': 'B'.repeat(43), 'content-type': 'application/json' }, body: '{}' });
  t.equal(wrong.status, 404, 'a wrong token is the same 404 as an unknown id');
  const missing = await fetch(`${s.base}/api/status/${'C'.repeat(22)}`, { method: 'POST', headers: { 'x-zegel-reader': '1', 'x-zegel-status': oneToken, 'content-type': 'application/json' }, body: '{}' });
  t.equal(missing.status, 404);
  const page = await fetch(`${s.base}/s/${tokenOf(one!).id}`);
  const unknownPage = await fetch(`${s.base}/s/${'C'.repeat(22)}`);
  t.equal(await page.text(), await unknownPage.text(), 'the page shell is the same for every id');

  // schedule for a, then revoke a now: b keeps reading
  const aId = new URL(a).pathname.split('/')[2]!;
  const at = new Date(s.relay.clock.now() + 86400e3).toISOString();
  const scheduled = await statusApi(s.base, one!, '/revoke', { linkId: aId, at });
  t.equal(scheduled.status, 200);
  t.equal(scheduled.body.recipients.find((r: { address: string }) => r.address === 'a@extern.test').revokeAt, at, 'a revocation can be scheduled');
  const revoked = await statusApi(s.base, one!, '/revoke', { linkId: aId });
  t.equal(revoked.status, 200);
  t.equal(revoked.body.recipients.find((r: { address: string }) => r.address === 'a@extern.test').state, 'revoked');
  const aOpen = await openLink(s.base, a);
  t.equal(aOpen.status, 410, 'the revoked recipient cannot open');
  t.equal((await openLink(s.base, b)).status, 200, 'the other recipient still can');
  const all = await statusApi(s.base, one!, '/revoke', {});
  t.equal(all.body.state, 'revoked', 'revoke all');
  t.equal((await openLink(s.base, b)).status, 410, 'nobody can open now');
  const key = await statusApi(s.base, one!, '/key');
  t.equal(key.status, 410, 'no content key for a revoked message');
});

t.test('receipts.sender false: no receipt, no status link', async (t) => {
  const s = await setup(t, { receipts: { sender: false } });
  const queueId = await send(s, ['piet@extern.test']);
  await notificationLink(s, 'piet@extern.test');
  await new Promise((resolve) => setTimeout(resolve, 500));
  t.equal(s.internal.messages.length, 0, 'nothing reached the internal route');
  const row = s.relay.relay.sqlite.db.prepare('SELECT status_id, sender_wrap FROM secure_messages WHERE queue_id = ?').get(queueId);
  t.same(row, { status_id: null, sender_wrap: null }, 'no status link stored');
});
