import nodemailer from 'nodemailer';
import { simpleParser } from 'mailparser';
import t from 'tap';
import { statusToken } from '../src/secure/status-keys.js';
import { launchBrowser } from './helpers/browser.js';
import { freePort } from './helpers/child-relay.js';
import { httpFrom } from './helpers/http-from.js';
import { startRelay, waitFor, type Teardown, type TestRelay } from './helpers/relay.js';
import { startSink, type TestSink } from './helpers/sink.js';

/**
 * The sender's status page under abuse: its bearer token gets the reader's
 * rate limits (per client address and per status id; key, revoke and resend
 * as checks), revoke and resend follow the reader's CSRF rule, and the page
 * takes its key out of the address bar and history like the reader.
 */

interface Setup {
  relay: TestRelay;
  internal: TestSink;
  base: string;
}

async function setup(t: Teardown, rateLimit: Record<string, unknown>): Promise<Setup> {
  const target = await startSink(t);
  const internal = await startSink(t);
  const port = await freePort();
  const relay = await startRelay(t, {
    organisation: { name: 'Voorbeeldzorg', domains: ['zorg.test'] },
    delivery: { target: target.url, internalTarget: internal.url },
    reader: { listen: `127.0.0.1:${port}`, publicUrl: `http://127.0.0.1:${port}`, rateLimit },
    verification: { default: 'none' },
  });
  return { relay, internal, base: `http://127.0.0.1:${port}` };
}

/** Sends a sensitive message and resolves to the status link of its receipt (the n-th receipt). */
async function statusLinkOf(s: Setup, n: number): Promise<string> {
  const transport = nodemailer.createTransport({ host: '127.0.0.1', port: s.relay.port, secure: false, ignoreTLS: true });
  try {
    await transport.sendMail({ envelope: { from: 'jan@zorg.test', to: ['piet@extern.test'] }, from: 'jan@zorg.test', to: 'piet@extern.test', subject: 'Verslag', text: 'BSN 111222333.' });
  } finally {
    transport.close();
  }
  return waitFor(async () => {
    const links: string[] = [];
    for (const m of s.internal.messages.filter((m) => m.to.includes('jan@zorg.test'))) {
      const line = ((await simpleParser(m.raw)).text ?? '').split(/\r?\n/).map((l) => l.trim()).find((l) => l.startsWith(`${s.base}/s/`));
      if (line) links.push(line);
    }
    return links[n];
  }, 20_000, 'the receipt');
}

function tokenOf(statusLink: string): { id: string; token: string } {
  const url = new URL(statusLink);
  const id = url.pathname.split('/')[2]!;
  return { id, token: statusToken(Buffer.from(url.hash.slice(1), 'base64url'), id).toString('base64url') };
}

function call(from: string, s: Setup, statusLink: string, rest = '', body: unknown = {}, headers: Record<string, string> = {}) {
  const { id, token } = tokenOf(statusLink);
  return httpFrom(from, `${s.base}/api/status/${id}${rest}`, {
    method: 'POST',
    headers: { 'x-zegel-reader': '1', 'x-zegel-status': token, 'content-type': 'application/json', ...headers },
    body: JSON.stringify(body),
  });
}

t.test('rate limits per status id and per address; revoke and resend under the CSRF rule; the page drops its fragment', async (t) => {
  const s = await setup(t, { api: { perAddress: 100, perLink: 4, window: '1m' }, checks: { perAddress: 3, perLink: 100, window: '1m' } });
  const first = await statusLinkOf(s, 0);
  const second = await statusLinkOf(s, 1);

  // CSRF: revoke and resend without the header, or from a cross-site page, change nothing
  const overview = await call('127.0.0.1', s, first);
  t.equal(overview.status, 200);
  const linkId = overview.json.recipients[0].linkId as string;
  const noHeader = await call('127.0.0.1', s, first, '/revoke', {}, { 'x-zegel-reader': '0' });
  t.equal(noHeader.status, 403);
  t.same(noHeader.json, { error: 'csrf' });
  const crossSite = await call('127.0.0.1', s, first, '/revoke', { linkId }, { 'sec-fetch-site': 'cross-site' });
  t.equal(crossSite.status, 403);
  t.same(crossSite.json, { error: 'csrf' });
  const resend = await call('127.0.0.1', s, first, '/resend', { linkId }, { 'sec-fetch-site': 'cross-site' });
  t.equal(resend.status, 403, 'resend: the same rule');
  const state = s.relay.relay.sqlite.db.prepare('SELECT state FROM secure_links WHERE id = ?').get(linkId) as { state: string };
  t.equal(state.state, 'active', 'nothing was revoked');

  // per status id: four overviews in all (one above), whoever asks; another status page is not affected
  t.equal((await call('127.0.0.1', s, first)).status, 200);
  t.equal((await call('127.0.0.2', s, first)).status, 200);
  t.equal((await call('127.0.0.2', s, first)).status, 200);
  const limited = await call('127.0.0.2', s, first);
  t.equal(limited.status, 429, 'the status id is over its limit');
  t.equal(limited.json.error, 'rate-limited');
  t.ok(Number(limited.headers['retry-after']) >= 1, 'Retry-After');
  t.equal((await call('127.0.0.2', s, second)).status, 200, 'another status page is not affected');

  // key, revoke and resend are checks: three per address
  const k = [] as number[];
  for (let i = 0; i < 4; i++) k.push((await call('127.0.0.3', s, second, '/key')).status);
  t.same(k, [200, 200, 200, 429], 'the key call is limited as a check');
  t.equal((await call('127.0.0.4', s, second, '/key')).status, 200, 'another address still may');

  // the page: the key leaves the address bar and history, a reload still shows the page
  const { page } = await launchBrowser(t);
  const tab = await page({ locale: 'nl-NL' });
  await tab.goto(second);
  await tab.getByRole('heading', { name: 'Status van uw beveiligde bericht' }).waitFor({ timeout: 20_000 });
  t.equal(new URL(tab.url()).hash, '', 'no fragment in the address bar');
  t.equal(await tab.evaluate(() => location.hash), '');
  t.equal(await tab.evaluate(() => sessionStorage.length), 1, 'the key is in sessionStorage');
  await tab.reload();
  await tab.getByRole('heading', { name: 'Status van uw beveiligde bericht' }).waitFor({ timeout: 20_000 });
  t.pass('a reload shows the status page again');
});
