import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import t from 'tap';
import { simpleParser } from 'mailparser';
import { parseConfig } from '../src/config/load.js';
import { OriginSigner } from '../src/crypto/origin.js';
import { verifyOrigin } from '../src/crypto/origin-stamp.js';
import { ZegelError } from '../src/errors.js';
import { Notifier } from '../src/notify/index.js';

const signer = new OriginSigner(Buffer.alloc(32, 5));
const NOW = Date.UTC(2026, 4, 14, 12, 0);
const LINK = `https://lees.voorbeeldzorg.nl/m/${'B'.repeat(22)}#${'q'.repeat(43)}`;

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'zegel-dkim-'));
t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
const { privateKey, publicKey } = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
const keyFile = path.join(dir, 'dkim.pem');
fs.writeFileSync(keyFile, privateKey.export({ type: 'pkcs8', format: 'pem' }));

function notifier(privateKeyFile = keyFile): Notifier {
  const config = parseConfig({
    organisation: { name: 'Voorbeeldzorg', domains: ['voorbeeldzorg.nl'] },
    notification: { dkim: { domain: 'Voorbeeldzorg.NL', selector: 'zegel2026', privateKeyFile } },
  });
  return new Notifier({ config, signer, hostname: 'relay.voorbeeldzorg.nl' });
}

/* ---- a small DKIM verifier (RFC 6376, rsa-sha256, relaxed/relaxed) ---- */

function split(raw: Buffer): { fields: string[]; body: string } {
  const text = raw.toString('latin1');
  const end = text.indexOf('\r\n\r\n');
  const fields: string[] = [];
  for (const line of text.slice(0, end).split('\r\n')) {
    if (/^[ \t]/.test(line) && fields.length) fields[fields.length - 1] += `\r\n${line}`;
    else fields.push(line);
  }
  return { fields, body: text.slice(end + 4) };
}

/** Section 3.4.4: WSP runs to one SP, no WSP at line ends, no empty lines at the end, CRLF-terminated. */
function relaxedBody(body: string): string {
  const lines = body.split('\r\n').map((line) => line.replace(/[ \t]+/g, ' ').replace(/ $/, ''));
  while (lines.length && lines[lines.length - 1] === '') lines.pop();
  return lines.length ? `${lines.join('\r\n')}\r\n` : '';
}

/** Section 3.4.2: lower-case name, unfold, WSP runs to one SP, no WSP around the colon or at the end. */
function relaxedHeader(field: string): string {
  const colon = field.indexOf(':');
  const name = field.slice(0, colon).trim().toLowerCase();
  const value = field
    .slice(colon + 1)
    .replace(/\r\n/g, '')
    .replace(/[ \t]+/g, ' ')
    .trim();
  return `${name}:${value}`;
}

function tagsOf(field: string): Record<string, string> {
  const value = field.slice(field.indexOf(':') + 1).replace(/\r\n/g, '');
  return Object.fromEntries(
    value
      .split(';')
      .map((tag) => tag.trim())
      .filter(Boolean)
      .map((tag) => {
        const eq = tag.indexOf('=');
        return [tag.slice(0, eq).trim(), tag.slice(eq + 1).replace(/[ \t]+/g, '')];
      }),
  );
}

interface Verdict {
  tags: Record<string, string>;
  bodyHashOk: boolean;
  signatureOk: boolean;
}

function verifyDkim(raw: Buffer, key: crypto.KeyObject): Verdict {
  const { fields, body } = split(raw);
  const sigField = fields.find((f) => /^dkim-signature:/i.test(f));
  if (!sigField) throw new Error('no DKIM-Signature');
  const tags = tagsOf(sigField);
  const bodyHash = crypto.createHash('sha256').update(relaxedBody(body), 'latin1').digest('base64');
  // section 5.4.2: for each name in h=, the last instance not yet used, from the bottom up
  const byName = new Map<string, string[]>();
  for (const f of fields) {
    if (f === sigField) continue;
    const name = f.slice(0, f.indexOf(':')).trim().toLowerCase();
    byName.set(name, [...(byName.get(name) ?? []), f]);
  }
  const signed: string[] = [];
  for (const name of (tags.h ?? '').split(':').map((n) => n.trim().toLowerCase())) {
    const instance = byName.get(name)?.pop();
    if (instance !== undefined) signed.push(`${relaxedHeader(instance)}\r\n`);
  }
  const emptiedSig = relaxedHeader(sigField.replace(/(;\s*b=)[^;]*$/, '$1'));
  const data = Buffer.from(signed.join('') + emptiedSig, 'latin1');
  const signatureOk = crypto.verify('RSA-SHA256', data, key, Buffer.from(tags.b ?? '', 'base64'));
  return { tags, bodyHashOk: bodyHash === tags.bh, signatureOk };
}

/* ---- tests ---- */

t.test('notification is DKIM-signed: d=, s=, body hash and signature verify', async (t) => {
  const mail = await notifier().notification({
    language: 'nl',
    to: 'piet@example.org',
    sender: { name: 'Jan de Vriës', address: 'jan@voorbeeldzorg.nl' },
    subject: 'Uitslag patiënt',
    subjectSensitive: false,
    link: LINK,
    method: 'sms-code',
    expiresAt: NOW + 86400e3,
    now: NOW,
  });
  t.match(mail.raw.toString('latin1'), /^DKIM-Signature: /, 'the signature is the first header');
  const verdict = verifyDkim(mail.raw, publicKey);
  t.equal(verdict.tags.v, '1');
  t.equal(verdict.tags.a, 'rsa-sha256');
  t.equal(verdict.tags.c, 'relaxed/relaxed');
  t.equal(verdict.tags.d, 'voorbeeldzorg.nl');
  t.equal(verdict.tags.s, 'zegel2026');
  const h = (verdict.tags.h ?? '').split(':');
  for (const name of ['from', 'to', 'subject', 'date', 'message-id', 'reply-to', 'content-type', 'mime-version', 'x-zegel-origin', 'auto-submitted', 'content-language']) {
    t.ok(h.includes(name), `h= covers ${name}`);
  }
  t.ok(verdict.bodyHashOk, 'bh= is the relaxed body hash');
  t.ok(verdict.signatureOk, 'b= verifies with the public key');

  // the mail still parses, and the origin mark still verifies
  const parsed = await simpleParser(mail.raw);
  t.equal(parsed.subject, 'Uitslag patiënt');
  t.ok(parsed.text?.split(/\r?\n/).includes(LINK));
  const origin = parsed.headers.get('x-zegel-origin');
  t.ok(typeof origin === 'string' && (await verifyOrigin(signer, mail.raw, [mail.to])));

  // tampering is detected
  const bodyTampered = Buffer.from(mail.raw.toString('latin1').replace('\r\n\r\n', '\r\n\r\nadded line\r\n'), 'latin1');
  t.notOk(verifyDkim(bodyTampered, publicKey).bodyHashOk, 'a changed body breaks the body hash');
  const headerTampered = Buffer.from(mail.raw.toString('latin1').replace('Auto-Submitted: auto-generated', 'Auto-Submitted: no'), 'latin1');
  t.notOk(verifyDkim(headerTampered, publicKey).signatureOk, 'a changed signed header breaks the signature');
  const otherKey = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 }).publicKey;
  t.notOk(verifyDkim(mail.raw, otherKey).signatureOk, 'another key does not verify');
});

t.test('code mail and forgotten-code notice are signed too', async (t) => {
  const n = notifier();
  const code = await n.codeMail({ language: 'en', to: 'piet@example.org', code: '123456', expiresAt: NOW + 900e3, now: NOW });
  const forgot = await n.forgotNotice({ language: 'nl', to: 'jan@voorbeeldzorg.nl', recipient: 'piet@example.org', now: NOW });
  for (const mail of [code, forgot]) {
    const verdict = verifyDkim(mail.raw, publicKey);
    t.ok(verdict.bodyHashOk && verdict.signatureOk, 'verifies');
    t.equal(verdict.tags.d, 'voorbeeldzorg.nl');
  }
});

t.test('without notification.dkim there is no signature', async (t) => {
  const config = parseConfig({ organisation: { name: 'Voorbeeldzorg', domains: ['voorbeeldzorg.nl'] } });
  const mail = await new Notifier({ config, signer, hostname: 'h.example' }).codeMail({ language: 'nl', to: 'piet@example.org', code: '123456', expiresAt: NOW, now: NOW });
  t.notMatch(mail.raw.toString('latin1'), /^DKIM-Signature:/im);
});

t.test('an unusable key file fails construction with ZEGEL_DKIM_KEY', async (t) => {
  const notPem = path.join(dir, 'garbage.pem');
  fs.writeFileSync(notPem, 'not a key');
  const ed = path.join(dir, 'ed25519.pem');
  fs.writeFileSync(ed, crypto.generateKeyPairSync('ed25519').privateKey.export({ type: 'pkcs8', format: 'pem' }));
  for (const file of [path.join(dir, 'missing.pem'), notPem, ed]) {
    let error: unknown;
    try {
      notifier(file);
    } catch (err) {
      error = err;
    }
    t.ok(error instanceof ZegelError, path.basename(file));
    t.equal((error as ZegelError).code, 'ZEGEL_DKIM_KEY');
  }
});

t.test('the key file is read once, at construction', async (t) => {
  const copy = path.join(dir, 'once.pem');
  fs.copyFileSync(keyFile, copy);
  const n = notifier(copy);
  fs.rmSync(copy);
  const mail = await n.codeMail({ language: 'nl', to: 'piet@example.org', code: '123456', expiresAt: NOW, now: NOW });
  t.ok(verifyDkim(mail.raw, publicKey).signatureOk);
});
