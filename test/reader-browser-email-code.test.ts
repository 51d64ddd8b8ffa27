import crypto from 'node:crypto';
import { storeView } from './helpers/store-view.js';
import fs from 'node:fs';
import nodemailer from 'nodemailer';
import { simpleParser } from 'mailparser';
import t from 'tap';
import { freePort } from './helpers/child-relay.js';
import { launchBrowser, PHONE } from './helpers/browser.js';
import { startRelay, waitFor } from './helpers/relay.js';
import { startSink } from './helpers/sink.js';

/**
 * The whole recipient journey in a real browser, over real SMTP: a message
 * with a BSN is sent through the relay, the notification reaches the next
 * hop, its link opens in Chromium on a phone-sized screen, the recipient asks
 * for an e-mail code, types the code from the code mail, reads the message and
 * saves the attachment, which has the original bytes.
 */
t.test('recipient opens a secure message with an e-mail code on a 360 px phone and saves the attachment', async (t) => {
  const sink = await startSink(t);
  const port = await freePort();
  const relay = await startRelay(t, {
    organisation: { name: 'Voorbeeldzorg', domains: ['zorg.test'], colour: '#0b5394' },
    delivery: { target: sink.url },
    reader: { listen: `127.0.0.1:${port}`, publicUrl: `http://127.0.0.1:${port}` },
  });
  const attachment = Buffer.concat([Buffer.from('%PDF-1.4 verslag\n'), crypto.randomBytes(300_000)]);
  const transport = nodemailer.createTransport({ host: '127.0.0.1', port: relay.port, secure: false, ignoreTLS: true });
  t.teardown(() => transport.close());
  const info = await transport.sendMail({
    envelope: { from: 'jan@zorg.test', to: ['piet@extern.test'] },
    from: 'Jan de Vries <jan@zorg.test>',
    to: 'Piet Jansen <piet@extern.test>',
    cc: 'secretariaat@zorg.test',
    subject: 'Verslag cliënt',
    text: 'Beste Piet,\n\nHierbij het verslag. BSN 111222333.\n\nGroet, Jan',
    attachments: [{ filename: 'verslag juni.pdf', content: attachment, contentType: 'application/pdf' }],
  });
  // the internal Cc gets the original; the external recipient the notification
  const notification = await waitFor(() => sink.messages.find((m) => m.to.includes('piet@extern.test')), 20_000, 'the notification');
  const parsed = await simpleParser(notification.raw);
  const link = (parsed.text ?? '').split(/\r?\n/).map((l) => l.trim()).find((l) => l.startsWith(`http://127.0.0.1:${port}/m/`));
  t.ok(link, 'the notification has the link');
  t.match(parsed.html || '', /Klik voor bericht/, 'with the Dutch button');

  const { page } = await launchBrowser(t);
  const tab = await page(PHONE);
  const requests: string[] = [];
  tab.on('request', (request) => requests.push(`${request.url()} ${request.postData() ?? ''} ${JSON.stringify(request.headers())}`));
  await tab.goto(link!);
  await tab.getByRole('button', { name: 'Stuur mij een code' }).click();
  await tab.getByText(/We hebben een code gestuurd naar/).waitFor();

  const codeMail = await waitFor(() => sink.messages.find((m) => m.to.includes('piet@extern.test') && m !== notification), 20_000, 'the code mail');
  const codeText = (await simpleParser(codeMail.raw)).text ?? '';
  const code = /\b(\d{6})\b/.exec(codeText)?.[1];
  t.ok(code, 'the code mail carries a 6-digit code');
  t.notMatch((await simpleParser(codeMail.raw)).subject ?? '', /\d{6}/, 'not in its subject');

  await tab.getByLabel('Code (6 cijfers)').fill(code!);
  await tab.getByLabel('Code (6 cijfers)').press('Enter');
  await tab.getByRole('heading', { name: 'Verslag cliënt' }).waitFor({ timeout: 20_000 });
  const body = await tab.locator('body').innerText();
  t.match(body, /BSN 111222333/, 'the body is shown');
  t.match(body, /Jan de Vries/, 'the sender');
  t.match(body, /piet@extern\.test/, 'To');
  t.match(body, /secretariaat@zorg\.test/, 'Cc');
  const scrollWidth = await tab.evaluate(() => document.documentElement.scrollWidth);
  t.ok(scrollWidth <= 360, `no horizontal scrolling on a 360 px screen (${scrollWidth})`);

  const downloadPromise = tab.waitForEvent('download');
  await tab.getByRole('button', { name: /verslag juni\.pdf/ }).click();
  const download = await downloadPromise;
  t.equal(download.suggestedFilename(), 'verslag juni.pdf', 'saved under its own (safe) name');
  const saved = await download.path();
  t.ok(fs.readFileSync(saved).equals(attachment), 'the saved attachment has the original bytes');

  const fragment = new URL(link!).hash.slice(1);
  t.notOk(requests.some((r) => r.includes(fragment)), 'the fragment (K_link) never left the browser');
  const events = storeView(relay.relay.sqlite).events(/queued as (\S+)/.exec(info.response)![1]!);
  const types = events.map((e) => e.type);
  for (const type of ['code-sent', 'check-passed', 'opened', 'downloaded']) t.ok(types.includes(type as never), `event ${type} recorded`);
  t.notOk(JSON.stringify(events).includes(code!), 'no event holds the code');
});
