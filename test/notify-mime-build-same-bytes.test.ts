import crypto from 'node:crypto';
import t from 'tap';
import { simpleParser } from 'mailparser';
import { parseConfig } from '../src/config/load.js';
import { OriginSigner } from '../src/crypto/origin.js';
import { RelaxedBodyHash, bodyOf } from '../src/crypto/relaxed-body.js';
import { mailComposer, newMessageId, textPart, type ComposeInput } from '../src/notify/compose.js';
import { ORIGIN_PLACEHOLDER } from '../src/crypto/origin.js';
import { Notifier, shippedTemplatesDir } from '../src/notify/index.js';
import { buildAlternativeSync, buildMimeSync } from '../src/notify/mime-build.js';
import { Templates, type Language, type MailKind } from '../src/notify/templates.js';

/*
 * The relay builds its own mails (notifications, receipts, code mails) in one
 * synchronous pass (src/notify/mime-build.ts) instead of nodemailer's streaming
 * `build()` (issue 15). These are the same mails: for each case the composer
 * is compiled once and built both ways, and the bytes must be equal. The
 * cases cover what the shipped templates render in Dutch and English and what
 * pushes nodemailer into its other encodings: non-ASCII names and subjects
 * (encoded words, folding), a text part nodemailer must quote-print, an HTML
 * part it base64-encodes, and a part longer than its 64 KiB encoder slices.
 *
 * For plain ASCII addresses the relay writes the mail without MailComposer at
 * all (buildAlternativeSync); that must be the same mail as MailComposer's up
 * to the random boundary, for the cases below and for generated names,
 * subjects and bodies.
 */

const templates = new Templates(shippedTemplatesDir());
const NOW = Date.UTC(2026, 4, 14, 12, 0);
const LINK = `https://lees.voorbeeldzorg.nl/m/${'A'.repeat(22)}#${'k'.repeat(43)}`;

function common(lang: Language, helpText?: string) {
  return { lang, organisation: 'Voorbeeldzorg', colour: '#0b5394', onColour: '#ffffff', linkColour: '#0b5394', helpText, askSender: true, noReplies: false };
}

type Case = { name: string; kind: MailKind; lang: Language; view: object; parties: Pick<ComposeInput, 'from' | 'to' | 'replyTo'>; text?: (text: string) => string };

const jan = { name: 'Jan de Vries', address: 'jan@voorbeeldzorg.nl' };
const via = (name: string) => ({ name: `${name} via Voorbeeldzorg`, address: 'no-reply@voorbeeldzorg.nl' });
const notificationView = (lang: Language, over: object = {}) => ({
  ...common(lang),
  senderName: jan.name,
  senderAddress: jan.address,
  link: LINK,
  neutralSubject: false,
  originalSubject: 'Uitslag onderzoek',
  expires: lang === 'nl' ? 'donderdag 21 mei 2026 om 14:00' : 'Thursday, 21 May 2026 at 14:00',
  methodEmailCode: true,
  ...over,
});

const cases: Case[] = [
  { name: 'Dutch notification, ASCII', kind: 'notification', lang: 'nl', view: notificationView('nl'), parties: { from: via(jan.name), to: 'piet@example.org', replyTo: jan } },
  { name: 'English notification, ASCII', kind: 'notification', lang: 'en', view: notificationView('en'), parties: { from: via(jan.name), to: 'piet@example.org', replyTo: jan } },
  {
    name: 'non-ASCII sender and a long non-ASCII subject (encoded words, folding, quoted-printable text)',
    kind: 'notification',
    lang: 'nl',
    view: notificationView('nl', { senderName: 'Jürgen Müller-Ødegård "de Oude"', originalSubject: `Überweisung für café ${'ë'.repeat(80)} — ${'lang '.repeat(30)}` }),
    parties: { from: via('Jürgen Müller-Ødegård "de Oude"'), to: 'piet@example.org', replyTo: { name: 'Jürgen Müller-Ødegård "de Oude"', address: 'jurgen@voorbeeldzorg.nl' } },
  },
  {
    name: 'hostile display name: quotes, angle brackets, an encoded-word look-alike',
    kind: 'notification',
    lang: 'en',
    view: notificationView('en', { senderName: '<script>alert(1)</script> "=?utf-8?B?QQ==?=" <x@y>' }),
    parties: { from: via('<script>alert(1)</script> "=?utf-8?B?QQ==?=" <x@y>'), to: 'piet@example.org', replyTo: { name: '<script>alert(1)</script>', address: 'jan@voorbeeldzorg.nl' } },
  },
  {
    name: 'Dutch receipt with two recipients',
    kind: 'receipt',
    lang: 'nl',
    view: { ...common('nl'), noReplies: true, askSender: false, recipients: [{ address: 'a@example.org', check: 'eenmalige code per e-mail' }, { address: 'b@example.org', check: 'toegangscode' }], originalSubject: 'Dossier', link: LINK, expires: 'donderdag 21 mei 2026 om 14:00' },
    parties: { from: { name: 'Voorbeeldzorg', address: 'no-reply@voorbeeldzorg.nl' }, to: 'jan@voorbeeldzorg.nl' },
  },
  {
    name: 'English receipt, sensitive subject left out',
    kind: 'receipt',
    lang: 'en',
    view: { ...common('en'), noReplies: true, askSender: false, recipients: [{ address: 'a@example.org', check: 'access code' }], originalSubject: '', link: LINK, expires: 'Thursday, 21 May 2026 at 14:00' },
    parties: { from: { name: 'Voorbeeldzorg', address: 'no-reply@voorbeeldzorg.nl' }, to: 'jan@voorbeeldzorg.nl' },
  },
  {
    name: 'help text in Greek: the HTML part goes base64, the text part quoted-printable',
    kind: 'notification',
    lang: 'nl',
    view: { ...notificationView('nl'), helpText: 'Ερωτήσεις σχετικά με αυτό το μήνυμα; Επικοινωνήστε μαζί μας. '.repeat(200) },
    parties: { from: via(jan.name), to: 'piet@example.org', replyTo: jan },
  },
  {
    name: 'parts over 64 KiB (nodemailer encodes them in slices) with trailing blanks and a line over 900 characters',
    kind: 'notification',
    lang: 'en',
    view: { ...notificationView('en'), helpText: `${'Call us on weekdays, é.   \n'.repeat(3000)}${'x'.repeat(1200)}   ` },
    parties: { from: via(jan.name), to: 'piet@example.org', replyTo: jan },
  },
  { name: 'code mail in Dutch', kind: 'code-mail', lang: 'nl', view: { ...common('nl'), noReplies: true, code: '123456', validUntil: '14:15' }, parties: { from: { name: 'Voorbeeldzorg', address: 'no-reply@voorbeeldzorg.nl' }, to: 'piet@example.org' } },
];

for (const c of cases) {
  t.test(c.name, async (t) => {
    const rendered = templates.render(c.kind, c.lang, c.view);
    const input = { ...c.parties, subject: rendered.subject, text: rendered.text, html: rendered.html, language: c.lang, now: NOW };
    const messageId = newMessageId('relay.voorbeeldzorg.nl');
    // one compiled tree (one boundary), built by nodemailer's stream and by the synchronous builder
    const tree = mailComposer(input, messageId).compile();
    const streamed = await tree.build();
    const built = buildMimeSync(tree);
    t.equal(built.length, streamed.length, 'same length');
    t.ok(built.equals(streamed), 'the same bytes as nodemailer build()');
    // and a fresh tree built only synchronously is the same mail (built() did not lean on state build() left)
    const fresh = mailComposer(input, messageId).compile();
    const alone = buildMimeSync(fresh).toString('latin1');
    const boundary = (raw: string) => /boundary="([^"]+)"/.exec(raw)?.[1] ?? '';
    t.equal(alone.split(boundary(alone)).join('B'), streamed.toString('latin1').split(boundary(streamed.toString('latin1'))).join('B'), 'a tree built only synchronously: same mail up to its random boundary');
    const parsed = await simpleParser(built);
    t.equal(parsed.subject, rendered.subject, 'the subject reads back');
    t.equal((parsed.text ?? '').replace(/\r\n/g, '\n').trimEnd(), rendered.text.trimEnd(), 'the text part reads back');
    t.equal((parsed.html || '').replace(/\r\n/g, '\n').trimEnd(), rendered.html.replace(/\r\n/g, '\n').trimEnd(), 'the HTML part reads back');
    t.notOk(/[^\r]\n/.test(built.toString('latin1')), 'no bare LF');
    t.ok(built.subarray(-2).equals(Buffer.from('\r\n')), 'ends in CRLF');
  });
}

t.test('one Notifier, recipients interleaved in Dutch and English: each mail its own link, language, date and stamp', async (t) => {
  const signer = new OriginSigner(Buffer.alloc(32, 3));
  const config = parseConfig({ organisation: { name: 'Voorbeeldzorg', domains: ['voorbeeldzorg.nl'] } });
  const notifier = new Notifier({ config, signer, hostname: 'relay.voorbeeldzorg.nl' });
  const people = [
    { to: 'an@example.org', language: 'nl' as const, days: 7, expect: 'donderdag 21 mei 2026 om 14:00' },
    { to: 'bo@example.com', language: 'en' as const, days: 8, expect: 'Friday, 22 May 2026 at 14:00' },
    { to: 'cor@example.net', language: 'nl' as const, days: 9, expect: 'zaterdag 23 mei 2026 om 14:00' },
    { to: 'dee@example.org', language: 'en' as const, days: 10, expect: 'Sunday, 24 May 2026 at 14:00' },
  ];
  const mails = await Promise.all(
    people.map((p, i) =>
      notifier.notification({
        language: p.language,
        to: p.to,
        sender: jan,
        subject: 'Uitslag onderzoek',
        subjectSensitive: false,
        link: `https://lees.voorbeeldzorg.nl/m/${String(i).repeat(22)}#${String.fromCharCode(97 + i).repeat(43)}`,
        method: 'email-code',
        expiresAt: NOW + p.days * 86400e3,
        now: NOW,
      }),
    ),
  );
  t.equal(new Set(mails.map((m) => m.messageId)).size, people.length, 'a Message-ID of its own each');
  for (const [i, p] of people.entries()) {
    const mail = mails[i]!;
    const raw = mail.raw.toString('latin1');
    const parsed = await simpleParser(mail.raw);
    t.equal(mail.to, p.to);
    t.match(parsed.headers.get('content-language'), p.language, `${p.to}: Content-Language ${p.language}`);
    t.match((parsed.text ?? '').replace(/\s+/g, ' '), p.expect, `${p.to}: the expiry in ${p.language}`);
    t.ok(raw.split('\r\n').includes(`https://lees.voorbeeldzorg.nl/m/${String(i).repeat(22)}#${String.fromCharCode(97 + i).repeat(43)}`), `${p.to}: its own link, on a line of its own`);
    for (const [j, other] of people.entries()) {
      if (j === i) continue;
      t.notOk(raw.includes(other.to), `${p.to}: no other recipient's address`);
      t.notOk(raw.includes(`${String.fromCharCode(97 + j).repeat(43)}`), `${p.to}: no other recipient's key`);
    }
    // the stamp verifies the way ingress checks it: the MAC, then the streaming body hash
    const mark = /^X-Zegel-Origin:[ \t]*((?:.*)(?:\r\n[ \t].*)*)/im.exec(raw)?.[1]?.replace(/\r\n[ \t]+/g, ' ').trim() ?? '';
    const expected = signer.verify(mark, { messageId: mail.messageId, recipients: [p.to] });
    t.ok(expected, `${p.to}: X-Zegel-Origin verifies for its Message-ID and recipient`);
    const hash = new RelaxedBodyHash();
    hash.update(bodyOf(mail.raw));
    t.ok(expected?.equals(await hash.digest()), `${p.to}: and for its body, hashed by ingress's streaming canonicaliser`);
  }
});

/** The mail with its multipart boundary replaced, for comparing two builds. */
const unbounded = (raw: Buffer): string => {
  const text = raw.toString('latin1');
  const boundary = /boundary="([^"]+)"/.exec(text)?.[1] ?? '';
  return boundary ? text.split(boundary).join('BOUNDARY') : text;
};

function direct(input: Omit<ComposeInput, 'signer' | 'dkim' | 'hostname' | 'envelopeFrom'>, messageId: string): Buffer | undefined {
  const text = textPart(input.text);
  return buildAlternativeSync({
    headers: [
      ['Content-Language', input.language],
      ['Auto-Submitted', 'auto-generated'],
      ['X-Zegel-Origin', ORIGIN_PLACEHOLDER],
    ],
    from: input.from,
    to: input.to,
    replyTo: input.replyTo,
    subject: input.subject,
    messageId,
    date: new Date(input.now),
    text: 'raw' in text && typeof text.raw === 'string' ? { raw: text.raw } : { content: input.text },
    html: input.html,
    baseBoundary: crypto.randomBytes(8).toString('hex'),
  });
}

const withComposer = (input: Parameters<typeof direct>[0], messageId: string): Buffer => buildMimeSync(mailComposer(input, messageId).compile());

t.test('written directly: the same mail as MailComposer up to the boundary, for every case above', async (t) => {
  for (const c of cases) {
    const rendered = templates.render(c.kind, c.lang, c.view);
    const input = { ...c.parties, subject: rendered.subject, text: rendered.text, html: rendered.html, language: c.lang, now: NOW };
    const messageId = newMessageId('relay.voorbeeldzorg.nl');
    const built = direct(input, messageId);
    t.ok(built, `${c.name}: written directly`);
    t.equal(unbounded(built!), unbounded(withComposer(input, messageId)), `${c.name}: same bytes up to the boundary`);
    t.match(built!.toString('latin1'), /boundary="--_NmP-[0-9a-f]{16}-Part_1"/, `${c.name}: a boundary of nodemailer's form with 64 random bits`);
  }
});

t.test('written directly: generated names, subjects and bodies give the same bytes as MailComposer', async (t) => {
  const pieces = ['Jan', 'de', 'Vries', 'é', 'Ø', '"', "'", '<', '>', '(', ')', ',', ';', ':', '@', '\\', '=?', '?=', '_', '.', '-', 'Ελλάδα', '中文', '😀', '  ', '\t', 'x'.repeat(40), '=', '&', '#'];
  const pick = (n: number) => Array.from({ length: crypto.randomInt(0, n) }, () => pieces[crypto.randomInt(pieces.length)]).join(crypto.randomInt(2) ? ' ' : '');
  const differ: string[] = [];
  for (let i = 0; i < 400; i++) {
    const name = pick(8);
    const lang: Language = crypto.randomInt(2) ? 'nl' : 'en';
    const input = {
      from: { name: name ? `${name} via Voorbeeldzorg` : '', address: 'no-reply@voorbeeldzorg.nl' },
      to: `ontvanger${i}@example.org`,
      replyTo: crypto.randomInt(2) ? { name, address: 'jan.de-vries+zorg@voorbeeldzorg.nl' } : undefined,
      subject: pick(30).replace(/\t/g, ' ') || 'Beveiligd bericht',
      text: `${pick(60)}\n\n${LINK}\n${pick(200)}\n`,
      html: `<p>${pick(80)}</p>\n<a href="${LINK}">${pick(5)}</a>\n`,
      language: lang,
      now: NOW + i * 60_000,
    };
    const messageId = newMessageId('relay.voorbeeldzorg.nl');
    const built = direct(input, messageId);
    if (!built) {
      differ.push(`${i}: not written directly`);
      continue;
    }
    if (unbounded(built) !== unbounded(withComposer(input, messageId))) differ.push(JSON.stringify(input));
  }
  t.same(differ, [], 'no generated mail differs');
});

t.test('addresses nodemailer would rewrite (upper-case or IDN domain, quoted local part): left to MailComposer', async (t) => {
  const base = { subject: 'Dossier', text: 'Tekst\n', html: '<p>Tekst</p>\n', language: 'nl' as const, now: NOW };
  for (const to of ['piet@Example.ORG', 'piet@zorg-ë.nl', '"piet jan"@example.org', 'piet@[127.0.0.1]']) {
    t.equal(direct({ ...base, from: { name: 'Voorbeeldzorg', address: 'no-reply@voorbeeldzorg.nl' }, to }, '<a@b>'), undefined, to);
  }
  t.equal(direct({ ...base, from: { name: 'X', address: 'no-reply@Voorbeeldzorg.nl' }, to: 'piet@example.org' }, '<a@b>'), undefined, 'an upper-case From domain');
});
