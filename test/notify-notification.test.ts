import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import t from 'tap';
import { simpleParser, type AddressObject, type ParsedMail } from 'mailparser';
import { parseConfig } from '../src/config/load.js';
import type { ConfigInput } from '../src/config/schema.js';
import { OriginSigner } from '../src/crypto/origin.js';
import { verifyOrigin } from '../src/crypto/origin-stamp.js';
import { ZegelError } from '../src/errors.js';
import { contrast, palette, readableOn } from '../src/notify/colour.js';
import { Notifier, shippedTemplatesDir, type NotificationInput } from '../src/notify/index.js';
import { repoRoot } from './helpers/repo-root.js';

const root = repoRoot;
const signer = new OriginSigner(Buffer.alloc(32, 7));
const NOW = Date.UTC(2026, 4, 14, 12, 0); // Thursday 14 May 2026, 14:00 in Amsterdam
const LINK = `https://lees.voorbeeldzorg.nl/m/${'A'.repeat(22)}#${'k'.repeat(43)}`;
const JAN = { name: 'Jan de Vries', address: 'jan@voorbeeldzorg.nl' };

function notifier(extra: Partial<ConfigInput> = {}, notification: ConfigInput['notification'] = {}): Notifier {
  const config = parseConfig({
    organisation: { name: 'Voorbeeldzorg', domains: ['voorbeeldzorg.nl'], colour: '#ffcc00', logoUrl: 'https://voorbeeldzorg.nl/logo.png' },
    ...extra,
    notification,
  });
  return new Notifier({ config, signer, hostname: 'relay.voorbeeldzorg.nl' });
}

function input(over: Partial<NotificationInput> = {}): NotificationInput {
  return {
    language: 'nl',
    to: 'piet@example.org',
    sender: JAN,
    subject: 'Uitslag onderzoek',
    subjectSensitive: false,
    link: LINK,
    method: 'email-code',
    expiresAt: NOW + 7 * 86400e3,
    now: NOW,
    ...over,
  };
}

const addresses = (value: AddressObject | AddressObject[] | undefined) => (Array.isArray(value) ? value : value ? [value] : []).flatMap((a) => a.value);
const headerBlock = (raw: Buffer) => raw.subarray(0, raw.indexOf('\r\n\r\n')).toString('latin1');
const headerValue = (raw: Buffer, name: string) =>
  new RegExp(`^${name}:[ \\t]*((?:.*)(?:\\r\\n[ \\t].*)*)`, 'im').exec(headerBlock(raw))?.[1]?.replace(/\r\n[ \t]+/g, ' ');
/** The text part with its line wrapping undone, for matching sentences. */
const prose = (parsed: ParsedMail) => (parsed.text ?? '').replace(/\s+/g, ' ');
/** The visible text of an HTML part: tags out, the five entities back. */
const visible = (html: string) =>
  html
    .replace(/<[^>]*>/g, ' ')
    .replace(/&lt;/g, '<')
    .replace(/&gt;/g, '>')
    .replace(/&quot;/g, '"')
    .replace(/&#39;/g, "'")
    .replace(/&amp;/g, '&')
    .replace(/\s+/g, ' ');

t.test('Dutch notification: subject, From via, Reply-To, link line, button, check, expiry, headers', async (t) => {
  const mail = await notifier().notification(input());
  t.equal(mail.from, 'no-reply@voorbeeldzorg.nl', 'envelope sender is the no-reply address');
  t.equal(mail.to, 'piet@example.org');
  t.match(mail.messageId, /^<[A-Za-z0-9_-]{22}@relay\.voorbeeldzorg\.nl>$/);
  const parsed: ParsedMail = await simpleParser(mail.raw);

  t.equal(parsed.subject, 'Uitslag onderzoek', 'the original subject');
  t.same(addresses(parsed.from), [{ address: 'no-reply@voorbeeldzorg.nl', name: 'Jan de Vries via Voorbeeldzorg' }]);
  t.same(addresses(parsed.replyTo), [{ address: 'jan@voorbeeldzorg.nl', name: 'Jan de Vries' }]);
  t.same(addresses(parsed.to), [{ address: 'piet@example.org', name: '' }]);
  t.equal(parsed.cc, undefined);
  t.equal(parsed.bcc, undefined);

  // the link alone on its own line of the text part
  const lines = (parsed.text ?? '').split(/\r?\n/);
  t.ok(lines.includes(LINK), 'the link is a line of its own in the text part');
  t.ok(mail.raw.toString('latin1').split('\r\n').includes(LINK), 'and in the raw bytes too (7bit, no soft breaks)');

  const html = parsed.html || '';
  t.match(html, /<html lang="nl"/);
  t.match(html, />Klik voor bericht<\/a>/, 'button text');
  t.match(html, `href="${LINK}"`, 'button and text link point at the link');
  t.ok(visible(html).includes(LINK), 'the full link is visible as text in the HTML part');
  t.match(html, /bgcolor="#ffcc00"/, 'organisation colour on the button');
  t.match(html, /color:#000000;text-decoration:none/, 'black label on a yellow button');
  t.match(html, /<img src="https:\/\/voorbeeldzorg\.nl\/logo\.png" alt="Voorbeeldzorg"/, 'logo with alt text');

  const text = prose(parsed);
  t.match(text, 'Jan de Vries (jan@voorbeeldzorg.nl) heeft u via Voorbeeldzorg een beveiligd bericht gestuurd');
  t.match(text, 'eenmalige code naar dit e-mailadres');
  t.match(text, 'U kunt het bericht lezen tot donderdag 21 mei 2026 om 14:00.');
  t.match(text, 'Voorbeeldzorg mailt veilig.');
  t.match(text, 'Vragen over dit bericht? Neem contact op met de afzender.');
  t.notMatch(text, 'antwoorden op deze mail worden niet gelezen', 'replies go to the sender, so no "not read" line');
  t.ok((parsed.text ?? '').split('\n').every((line) => line.length <= 76 || line === LINK), 'text wrapped at 76 columns, the link whole');

  // headers
  t.equal(headerValue(mail.raw, 'Message-ID'), mail.messageId);
  t.equal(headerValue(mail.raw, 'Date'), 'Thu, 14 May 2026 12:00:00 +0000');
  t.equal(headerValue(mail.raw, 'Auto-Submitted'), 'auto-generated');
  t.equal(headerValue(mail.raw, 'Content-Language'), 'nl');
  t.equal(headerValue(mail.raw, 'List-Unsubscribe'), undefined, 'no List-Unsubscribe: transactional');
  t.equal(headerValue(mail.raw, 'X-Mailer'), undefined);
  const origin = headerValue(mail.raw, 'X-Zegel-Origin');
  t.match(origin, /^v2 [A-Za-z0-9_-]{43}\.[A-Za-z0-9_-]{43}$/);
  t.ok(await verifyOrigin(signer, mail.raw, [mail.to]), 'X-Zegel-Origin verifies over the Message-ID, the body and the recipient');
  t.notOk(await verifyOrigin(new OriginSigner(Buffer.alloc(32, 8)), mail.raw, [mail.to]), 'and not with another secret');
  t.notOk(await verifyOrigin(signer, mail.raw, ['ander@example.org']), 'nor for another recipient');
  t.match(headerValue(mail.raw, 'Content-Type'), /^multipart\/alternative;/);
  const raw = mail.raw.toString('latin1');
  t.ok(raw.indexOf('Content-Type: text/plain') < raw.indexOf('Content-Type: text/html'), 'text first, then HTML');
  t.equal(raw.match(/^Content-Type: /gm)?.length, 3, 'exactly the alternative, the text and the HTML part');
});

t.test('English notification: button, neutral subject when sensitive, no original subject anywhere', async (t) => {
  const mail = await notifier().notification(input({ language: 'en', subject: 'Uitslag HIV-test', subjectSensitive: true, method: 'access-code' }));
  const parsed = await simpleParser(mail.raw);
  t.equal(parsed.subject, 'Secure message from Voorbeeldzorg');
  t.notOk(mail.raw.toString('latin1').includes('HIV'), 'the sensitive subject appears nowhere');
  t.match(parsed.html || '', /<html lang="en"/);
  t.match(parsed.html || '', />Open message<\/a>/);
  t.match(prose(parsed), 'you will be asked for the access code you agreed with the sender');
  t.match(prose(parsed), 'You can read the message until Thursday, 21 May 2026 at 14:00.');
  t.equal(headerValue(mail.raw, 'Content-Language'), 'en');

  const nl = await simpleParser((await notifier().notification(input({ subjectSensitive: true }))).raw);
  t.equal(nl.subject, 'Beveiligd bericht van Voorbeeldzorg');
  const empty = await simpleParser((await notifier().notification(input({ subject: '   ' }))).raw);
  t.equal(empty.subject, 'Beveiligd bericht van Voorbeeldzorg', 'an empty subject gets the neutral one too');
});

t.test('each verification method names its check', async (t) => {
  const expect = {
    none: ['zonder extra controle', 'without any further check'],
    'access-code': ['toegangscode die u met de afzender hebt afgesproken', 'access code you agreed with the sender'],
    'email-code': ['eenmalige code naar dit e-mailadres', 'one-time code to this e-mail address'],
    'sms-code': ['eenmalige code per sms', 'one-time code by text message (SMS)'],
  } as const;
  const n = notifier();
  for (const [method, [nl, en]] of Object.entries(expect) as Array<[NotificationInput['method'], readonly [string, string]]>) {
    const pnl = await simpleParser((await n.notification(input({ method }))).raw);
    const pen = await simpleParser((await n.notification(input({ method, language: 'en' }))).raw);
    t.match(prose(pnl), nl, `${method} nl text`);
    t.match(visible(pnl.html || ''), nl, `${method} nl html`);
    t.match(prose(pen), en, `${method} en text`);
    t.match(visible(pen.html || ''), en, `${method} en html`);
    for (const [other, [onl]] of Object.entries(expect)) if (other !== method) t.notMatch(prose(pnl), onl, `${method} does not mention ${other}`);
  }
});

t.test('sender without display name: the local part in From', async (t) => {
  const parsed = await simpleParser((await notifier().notification(input({ sender: { address: 'j.devries@voorbeeldzorg.nl' } }))).raw);
  t.same(addresses(parsed.from), [{ address: 'no-reply@voorbeeldzorg.nl', name: 'j.devries via Voorbeeldzorg' }]);
  t.same(addresses(parsed.replyTo), [{ address: 'j.devries@voorbeeldzorg.nl', name: '' }]);
  t.match(prose(parsed), ' j.devries@voorbeeldzorg.nl heeft u via Voorbeeldzorg');
});

t.test('notification.replyTo: false leaves Reply-To out', async (t) => {
  const mail = await notifier({}, { replyTo: false }).notification(input());
  const parsed = await simpleParser(mail.raw);
  t.equal(parsed.replyTo, undefined);
  t.equal(headerValue(mail.raw, 'Reply-To'), undefined);
  t.same(addresses(parsed.from), [{ address: 'no-reply@voorbeeldzorg.nl', name: 'Jan de Vries via Voorbeeldzorg' }]);
  t.match(prose(parsed), 'antwoorden op deze mail worden niet gelezen');
});

t.test('notification.from: sender puts the sender in From; the envelope stays no-reply', async (t) => {
  const mail = await notifier({}, { from: 'sender' }).notification(input());
  const parsed = await simpleParser(mail.raw);
  t.same(addresses(parsed.from), [{ address: 'jan@voorbeeldzorg.nl', name: 'Jan de Vries' }]);
  t.equal(parsed.replyTo, undefined, 'no Reply-To: From already is the sender');
  t.equal(mail.from, 'no-reply@voorbeeldzorg.nl');
});

t.test('a configured no-reply address and help text', async (t) => {
  const mail = await notifier(
    { organisation: { name: 'Voorbeeldzorg', domains: ['voorbeeldzorg.nl'], helpText: { nl: 'Vragen? Bel 020 123 45 67.', en: 'Questions? Call +31 20 123 45 67.' } } },
    { noReplyAddress: 'geen-antwoord@post.voorbeeldzorg.nl' },
  ).notification(input());
  const parsed = await simpleParser(mail.raw);
  t.equal(mail.from, 'geen-antwoord@post.voorbeeldzorg.nl');
  t.equal(addresses(parsed.from)[0]?.address, 'geen-antwoord@post.voorbeeldzorg.nl');
  t.match(prose(parsed), 'Vragen? Bel 020 123 45 67.');
  t.notMatch(prose(parsed), 'Neem contact op met de afzender', 'the configured help text replaces the default');
  t.match(parsed.html || '', 'Vragen? Bel 020 123 45 67.');
  t.notMatch(parsed.html || '', '<img', 'no logo configured: no image');
  t.match(parsed.html || '', 'bgcolor="#0b5394"', 'default colour');
  t.match(parsed.html || '', 'color:#ffffff;text-decoration:none', 'white on the default blue');
});

t.test('a hostile display name is escaped in HTML and stays one header line', async (t) => {
  const name = '<script>alert("x")</script>\r\nBcc: evil@attacker.test';
  const mail = await notifier().notification(input({ sender: { name, address: 'jan@voorbeeldzorg.nl' } }));
  const parsed = await simpleParser(mail.raw);
  const html = parsed.html || '';
  t.notMatch(html, /<script/i, 'no script element');
  t.match(html, '&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;');
  t.equal(parsed.bcc, undefined);
  t.equal(headerValue(mail.raw, 'Bcc'), undefined, 'no header injected');
  t.same(addresses(parsed.to), [{ address: 'piet@example.org', name: '' }]);
  t.equal(addresses(parsed.from)[0]?.name, '<script>alert("x")</script> Bcc: evil@attacker.test via Voorbeeldzorg');
  t.equal(addresses(parsed.from)[0]?.address, 'no-reply@voorbeeldzorg.nl');
});

t.test('one notification per recipient: no other recipient anywhere in the bytes', async (t) => {
  const recipients = ['piet@example.org', 'klaas@zorg.example', 'marie@huisarts.example'];
  const n = notifier();
  for (const to of recipients) {
    const mail = await n.notification(input({ to }));
    const raw = mail.raw.toString('latin1').toLowerCase();
    for (const other of recipients) if (other !== to) t.notOk(raw.includes(other.split('@')[0]!), `${to}'s mail does not name ${other}`);
    const parsed = await simpleParser(mail.raw);
    t.same(addresses(parsed.to).map((a) => a.address), [to]);
  }
  const a = await n.notification(input());
  const b = await n.notification(input());
  t.not(a.messageId, b.messageId, 'a fresh Message-ID each time');
});

t.test('HTML: only the logo is a remote resource; tables and inline styles', async (t) => {
  const parsed = await simpleParser((await notifier().notification(input())).raw);
  const html = parsed.html || '';
  const remote = [...html.matchAll(/\b(?:src|background)\s*=\s*"([^"]*)"|url\(([^)]*)\)/gi)].map((m) => m[1] ?? m[2]);
  t.same(remote, ['https://voorbeeldzorg.nl/logo.png']);
  t.notMatch(html, /<style|<link|<script/i, 'no style sheets, links to resources or scripts');
  t.match(html, /<meta name="viewport" content="width=device-width, initial-scale=1">/);
  t.match(html, /max-width:600px/);
  const urls = [...html.matchAll(/https?:\/\/[^\s"<]+/g)].map((m) => m[0]);
  t.same([...new Set(urls)].sort(), [LINK, 'https://voorbeeldzorg.nl/logo.png'].sort(), 'no other URL in the HTML');
});

t.test('colours: readable label on the button, links at 4.5:1 on white', async (t) => {
  t.equal(readableOn('#ffcc00'), '#000000');
  t.equal(readableOn('#0b5394'), '#ffffff');
  t.equal(readableOn('#777777'), '#000000', 'mid grey: black contrasts more');
  for (const colour of ['#ffcc00', '#0b5394', '#ffffff', '#00ff00', '#777777', '#e91e63', '#000000']) {
    const p = palette(colour);
    t.ok(contrast(p.colour, p.onColour) >= 4.5, `${colour}: button label ${p.onColour} at ${contrast(p.colour, p.onColour).toFixed(2)}:1`);
    t.ok(contrast(p.link, '#ffffff') >= 4.5, `${colour}: link ${p.link} at ${contrast(p.link, '#ffffff').toFixed(2)}:1`);
  }
  t.equal(palette('not a colour').colour, '#0b5394');
});

t.test('bad input is refused with ZEGEL_NOTIFY_INPUT', async (t) => {
  const n = notifier();
  for (const bad of [
    input({ link: 'javascript:alert(1)' }),
    input({ link: `${LINK} extra` }),
    input({ to: 'piet@example.org, klaas@zorg.example' }),
    input({ to: 'Piet <piet@example.org>' }),
    input({ sender: { address: 'not an address' } }),
    input({ language: 'de' as 'nl' }),
    input({ method: 'fax' as 'none' }),
  ]) {
    await t.rejects(n.notification(bad), { code: 'ZEGEL_NOTIFY_INPUT' });
  }
});

t.test('templates: shipped dir found from the module, a missing file fails construction', async (t) => {
  t.equal(shippedTemplatesDir(), path.join(root, 'templates'));
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'zegel-notify-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  for (const name of fs.readdirSync(path.join(root, 'templates'))) {
    if (/\.(html|txt)$/.test(name)) fs.copyFileSync(path.join(root, 'templates', name), path.join(dir, name));
  }
  const config = parseConfig({ organisation: { name: 'Voorbeeldzorg', domains: ['voorbeeldzorg.nl'] } });
  t.ok(new Notifier({ config, signer, hostname: 'h.example', templatesDir: dir }), 'a full copy loads');
  fs.rmSync(path.join(dir, 'notification.en.txt'));
  fs.writeFileSync(path.join(dir, 'code-mail.nl.html'), '{{#open}} never closed');
  let error: unknown;
  try {
    new Notifier({ config, signer, hostname: 'h.example', templatesDir: dir });
  } catch (err) {
    error = err;
  }
  t.ok(error instanceof ZegelError);
  t.equal((error as ZegelError).code, 'ZEGEL_TEMPLATE_INVALID');
  t.match((error as Error).message, /notification\.en\.txt: missing/);
  t.match((error as Error).message, /code-mail\.nl\.html: Unclosed section "open"/);
});

t.test('no organisation domain: no-reply falls back to the relay hostname', async (t) => {
  const config = parseConfig({ organisation: { name: 'Voorbeeldzorg' } });
  const mail = await new Notifier({ config, signer, hostname: 'relay.voorbeeldzorg.nl' }).notification(input());
  t.equal(mail.from, 'no-reply@relay.voorbeeldzorg.nl');
});
