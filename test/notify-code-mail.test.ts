import t from 'tap';
import { simpleParser, type AddressObject, type ParsedMail } from 'mailparser';
import { parseConfig } from '../src/config/load.js';
import { OriginSigner } from '../src/crypto/origin.js';
import { verifyOrigin } from '../src/crypto/origin-stamp.js';
import { Notifier } from '../src/notify/index.js';

const signer = new OriginSigner(Buffer.alloc(32, 3));
const NOW = Date.UTC(2026, 4, 14, 11, 50); // 13:50 in Amsterdam
const CODE = '482913';

const config = parseConfig({
  organisation: { name: 'Voorbeeldzorg', domains: ['voorbeeldzorg.nl'], colour: '#0b5394' },
  notification: { replyTo: true },
});
const notifier = new Notifier({ config, signer, hostname: 'relay.voorbeeldzorg.nl' });

const addresses = (value: AddressObject | AddressObject[] | undefined) => (Array.isArray(value) ? value : value ? [value] : []).flatMap((a) => a.value);
const headerBlock = (raw: Buffer) => raw.subarray(0, raw.indexOf('\r\n\r\n')).toString('latin1');
const headerValue = (raw: Buffer, name: string) =>
  new RegExp(`^${name}:[ \\t]*((?:.*)(?:\\r\\n[ \\t].*)*)`, 'im').exec(headerBlock(raw))?.[1]?.replace(/\r\n[ \t]+/g, ' ');
const prose = (parsed: ParsedMail) => (parsed.text ?? '').replace(/\s+/g, ' ');

t.test('code mail (nl): the code in the body, never in the subject or any header', async (t) => {
  const mail = await notifier.codeMail({ language: 'nl', to: 'piet@example.org', code: CODE, expiresAt: NOW + 15 * 60e3, now: NOW });
  const parsed = await simpleParser(mail.raw);
  t.equal(parsed.subject, 'Uw code voor het beveiligde bericht van Voorbeeldzorg');
  t.notMatch(parsed.subject ?? '', /\d/, 'no digits in the subject');
  t.notOk(headerBlock(mail.raw).includes(CODE), 'the code is in no header');
  t.match(prose(parsed), 'Uw code voor het beveiligde bericht van Voorbeeldzorg: 482913, geldig tot 14:05.');
  t.match(parsed.html || '', /<html lang="nl"/);
  t.match(parsed.html || '', `>${CODE}</p>`, 'the code shown large in the HTML part');
  t.same(addresses(parsed.from), [{ address: 'no-reply@voorbeeldzorg.nl', name: 'Voorbeeldzorg' }]);
  t.same(addresses(parsed.to), [{ address: 'piet@example.org', name: '' }]);
  t.equal(parsed.replyTo, undefined, 'no Reply-To on a code mail');
  t.equal(mail.from, 'no-reply@voorbeeldzorg.nl');
  t.equal(headerValue(mail.raw, 'Auto-Submitted'), 'auto-generated');
  t.equal(headerValue(mail.raw, 'Content-Language'), 'nl');
  const origin = headerValue(mail.raw, 'X-Zegel-Origin');
  t.ok(origin && (await verifyOrigin(signer, mail.raw, [mail.to])), 'X-Zegel-Origin verifies for this mail to its recipient');
  t.equal(headerValue(mail.raw, 'Message-ID'), mail.messageId);
  t.match(prose(parsed), 'antwoorden op deze mail worden niet gelezen');
});

t.test('code mail (en), and a code that expires after midnight shows the date', async (t) => {
  const mail = await notifier.codeMail({ language: 'en', to: 'piet@example.org', code: CODE, expiresAt: NOW + 15 * 60e3, now: NOW });
  const parsed = await simpleParser(mail.raw);
  t.equal(parsed.subject, 'Your code for the secure message from Voorbeeldzorg');
  t.match(prose(parsed), 'Your code for the secure message from Voorbeeldzorg: 482913, valid until 14:05.');
  t.match(parsed.html || '', /<html lang="en"/);

  const late = Date.UTC(2026, 4, 14, 21, 55); // 23:55 in Amsterdam
  const overnight = await simpleParser((await notifier.codeMail({ language: 'nl', to: 'piet@example.org', code: CODE, expiresAt: late + 15 * 60e3, now: late })).raw);
  t.match(prose(overnight), 'geldig tot vrijdag 15 mei 2026 om 00:10.');
  const winter = Date.UTC(2026, 0, 10, 9, 0); // CET: 10:00
  const w = await simpleParser((await notifier.codeMail({ language: 'en', to: 'piet@example.org', code: CODE, expiresAt: winter + 10 * 60e3, now: winter })).raw);
  t.match(prose(w), 'valid until 10:10.', 'Amsterdam time in winter too');
});

t.test('code mail refuses a code that could break the layout', async (t) => {
  await t.rejects(notifier.codeMail({ language: 'nl', to: 'piet@example.org', code: '12 34', expiresAt: NOW, now: NOW }), { code: 'ZEGEL_NOTIFY_INPUT' });
  await t.rejects(notifier.codeMail({ language: 'nl', to: 'piet@example.org', code: '', expiresAt: NOW, now: NOW }), { code: 'ZEGEL_NOTIFY_INPUT' });
});

t.test('code-forgotten notice to the sender', async (t) => {
  const mail = await notifier.forgotNotice({ language: 'nl', to: 'jan@voorbeeldzorg.nl', recipient: 'piet@example.org', now: NOW });
  const parsed = await simpleParser(mail.raw);
  t.equal(parsed.subject, 'Toegangscode vergeten voor uw beveiligde bericht');
  t.match(prose(parsed), 'piet@example.org heeft de toegangscode voor uw beveiligde bericht niet meer.');
  t.match(prose(parsed), 'Spreek een nieuwe code af via een ander kanaal dan e-mail');
  t.notMatch(prose(parsed), 'onderwerp', 'no original subject unless the caller passes it');
  t.notMatch(prose(parsed), 'Neem contact op met de afzender', 'the sender is not told to contact the sender');
  t.same(addresses(parsed.from), [{ address: 'no-reply@voorbeeldzorg.nl', name: 'Voorbeeldzorg' }]);
  t.same(addresses(parsed.to), [{ address: 'jan@voorbeeldzorg.nl', name: '' }]);
  t.equal(parsed.replyTo, undefined);
  const origin = headerValue(mail.raw, 'X-Zegel-Origin');
  t.ok(origin && (await verifyOrigin(signer, mail.raw, [mail.to])), 'X-Zegel-Origin verifies for this mail to its recipient');
  t.equal(headerValue(mail.raw, 'Auto-Submitted'), 'auto-generated');

  const withSubject = await simpleParser(
    (await notifier.forgotNotice({ language: 'en', to: 'jan@voorbeeldzorg.nl', recipient: 'piet@example.org', subject: 'Uitslag <onderzoek>', now: NOW })).raw,
  );
  t.equal(withSubject.subject, 'Access code forgotten for your secure message', 'the Subject stays neutral');
  t.match(prose(withSubject), 'piet@example.org no longer has the access code for your secure message.');
  t.match(prose(withSubject), 'This concerns the message with the subject “Uitslag <onderzoek>”.');
  t.match(withSubject.html || '', 'Uitslag &lt;onderzoek&gt;', 'escaped in HTML');
  t.match(withSubject.html || '', /<html lang="en"/);
});
