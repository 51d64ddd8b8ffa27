import t from 'tap';
import { ManualClock } from '../src/clock.js';
import { launchBrowser } from './helpers/browser.js';
import { freePort } from './helpers/child-relay.js';
import { startRelay } from './helpers/relay.js';
import { sendSecure } from './helpers/secure-messages.js';
import { startSink } from './helpers/sink.js';

/**
 * In Chromium: after the page read the key from the fragment, neither the
 * address bar nor the history holds it (history.replaceState); the key is in
 * this tab's sessionStorage only, so a reload opens the message again; no
 * request carries the key or a Referer.
 */

t.test('the link key leaves the address bar and history; a reload opens the message again', async (t) => {
  const sink = await startSink(t);
  const port = await freePort();
  const base = `http://127.0.0.1:${port}`;
  const relay = await startRelay(
    t,
    {
      organisation: { name: 'Voorbeeldzorg', domains: ['zorg.test'] },
      delivery: { target: sink.url },
      reader: { listen: `127.0.0.1:${port}`, publicUrl: base },
      verification: { default: 'none' },
    },
    { clock: new ManualClock(Date.now()) },
  );
  const sent = await sendSecure({ relay, sink, clock: new ManualClock() }, ['piet@extern.test'], { subject: 'Uitslag' });
  const { linkId, fragment } = sent.links[0]!;
  const link = `${base}/m/${linkId}#${fragment}`;

  const { page } = await launchBrowser(t);
  const tab = await page();
  const seen: Array<{ url: string; referer: string | undefined }> = [];
  tab.on('request', (r) => seen.push({ url: r.url(), referer: r.headers().referer }));
  await tab.goto(`${base}/assets/reader.css`); // an entry before, to go back to later
  await tab.goto(link);
  await tab.getByRole('button', { name: 'Beantwoorden' }).waitFor({ timeout: 20_000 });
  t.equal(new URL(tab.url()).hash, '', 'no fragment in the address bar');
  t.equal(tab.url(), `${base}/m/${linkId}`);
  t.equal(await tab.evaluate(() => location.hash), '');
  t.equal(await tab.evaluate((k) => sessionStorage.getItem(`zegel:m:${k}`), linkId), fragment, 'the key is kept in sessionStorage');
  t.equal(await tab.evaluate(() => localStorage.length), 0, 'nothing in localStorage');

  // a reload in the same tab opens the message again
  await tab.reload();
  await tab.getByRole('button', { name: 'Beantwoorden' }).waitFor({ timeout: 20_000 });
  t.pass('the message opens again after a reload');
  t.equal(new URL(tab.url()).hash, '');

  // history: leave and come back; the entry has no fragment
  await tab.goto(`${base}/assets/reader.css`);
  await tab.goBack();
  t.equal(tab.url(), `${base}/m/${linkId}`, 'the history entry holds no fragment');
  await tab.getByRole('button', { name: 'Beantwoorden' }).waitFor({ timeout: 20_000 });
  await tab.goBack();
  await tab.goForward();
  t.notMatch(tab.url(), /#/, 'back and forward: still no fragment');

  for (const r of seen) {
    t.notMatch(r.url, fragment, `no request carries the key: ${new URL(r.url).pathname}`);
    t.notOk(r.referer, `no Referer: ${new URL(r.url).pathname}`);
  }

  // another tab (a new browsing context) has no key: the same page as a broken link
  const other = await page();
  await other.goto(`${base}/m/${linkId}`);
  await other.getByRole('heading', { name: /werkt niet/ }).waitFor({ timeout: 20_000 });
  t.pass('without the fragment and in another tab the page shows the unknown-link page');
});
