import fs from 'node:fs';
import path from 'node:path';
import { Readable } from 'node:stream';
import t from 'tap';
import type { SecureContent } from '../src/crypto/content.js';
import { newKey } from '../src/crypto/key-schedule.js';
import { decryptBytes } from '../src/crypto/payload.js';
import { encryptContent } from '../src/pipeline/secure-content.js';
import { BlobStore } from '../src/store/blobs.js';
import { tempDir } from './helpers/relay.js';

/*
 * The secure job hands a message the spool holds in memory to the parser as
 * one buffer (issue 15: no stream pipeline per message) and streams it from
 * the spool file otherwise. Both must store the same thing: the same
 * SecureContent (sender, recipients, subject, date, text, HTML, attachment
 * names and sizes), the same attachment bytes and the same references for
 * threading.
 */

const crlf = (lines: string[]) => Buffer.from(lines.join('\r\n'), 'utf8');

const messages: Record<string, Buffer> = {
  'plain text with a BSN': crlf([
    'From: Jan de Vries <jan@zorg.test>',
    'To: <a@extern.test>, <b@extern.test>',
    'Subject: Dossier overdracht',
    'Date: Thu, 14 May 2026 12:00:00 +0000',
    'Message-ID: <m1@zorg.test>',
    'MIME-Version: 1.0',
    'Content-Type: text/plain; charset=us-ascii',
    '',
    'Graag uw reactie op het dossier van de client met BSN 123456782.',
    '',
  ]),
  'multipart: text, HTML, two attachments, encoded headers, folded references': crlf([
    'From: =?UTF-8?Q?J=C3=BCrgen_M=C3=BCller?= <jurgen@zorg.test>',
    'To: a@extern.test',
    'Cc: =?UTF-8?B?w5hkZWfDpXJk?= <o@extern.test>',
    'Subject: =?UTF-8?Q?Verslag_cli=C3=ABnt?=',
    'In-Reply-To: <vraag-1@extern.test>',
    'References: <begin@zorg.test>',
    ' <vraag-1@extern.test>',
    'MIME-Version: 1.0',
    'Content-Type: multipart/mixed; boundary="b1"',
    '',
    '--b1',
    'Content-Type: multipart/alternative; boundary="b2"',
    '',
    '--b2',
    'Content-Type: text/plain; charset=utf-8',
    'Content-Transfer-Encoding: quoted-printable',
    '',
    'Beste collega, het verslag van de cli=C3=ABnt staat in de bijlage.',
    '--b2',
    'Content-Type: text/html; charset=utf-8',
    '',
    '<p>Beste collega, het <b>verslag</b> staat in de bijlage.</p>',
    '--b2--',
    '--b1',
    'Content-Type: application/pdf; name="verslag.pdf"',
    'Content-Disposition: attachment; filename="verslag.pdf"',
    'Content-Transfer-Encoding: base64',
    '',
    Buffer.from('%PDF-1.4 verslag '.repeat(500)).toString('base64').replace(/.{76}/g, '$&\r\n'),
    '--b1',
    'Content-Type: text/plain; name="notitie.txt"',
    'Content-Disposition: attachment; filename="notitie.txt"',
    '',
    'Een notitie.',
    '--b1--',
    '',
  ]),
};

async function stored(dir: string, source: Readable | Buffer) {
  const blobs = new BlobStore(dir);
  const key = newKey();
  const secureId = `s${Math.random().toString(36).slice(2, 12)}`;
  const result = await encryptContent({ source, contentKey: key, secureId, blobs, subjectFor: (s) => s.trim(), receivedAt: Date.UTC(2026, 4, 14) });
  await result.bodyWritten;
  const read = async (blob: string) => Buffer.from(await decryptBytes(key, fs.readFileSync(path.join(blobs.dir, secureId, `${blob}.pgp`))));
  const content = JSON.parse((await read(result.bodyBlob)).toString('utf8')) as SecureContent;
  const attachments = await Promise.all(content.attachments.map(async (a) => ({ name: a.name, contentType: a.contentType, size: a.size, bytes: (await read(a.blob)).toString('base64') })));
  return { content: { ...content, attachments: attachments.map(({ bytes: _bytes, ...rest }) => rest) }, attachments, references: result.references, subject: result.subject, from: result.from };
}

for (const [name, raw] of Object.entries(messages)) {
  t.test(`${name}: from memory as from the spool file`, async (t) => {
    const dir = tempDir(t);
    const fromStream = await stored(dir, Readable.from([raw.subarray(0, 100), raw.subarray(100)], { objectMode: false }));
    const fromMemory = await stored(dir, raw);
    t.same(fromMemory.content, fromStream.content, 'the same SecureContent');
    t.same(fromMemory.attachments, fromStream.attachments, 'the same attachment bytes');
    t.equal(fromMemory.references, fromStream.references, 'the same references');
    t.equal(fromMemory.subject, fromStream.subject);
    t.same(fromMemory.from, fromStream.from);
    t.ok(fromMemory.content.text?.includes(name.startsWith('plain') ? 'BSN 123456782' : 'cliënt'), 'the text is there');
  });
}

t.test('the multipart message: what the reader will show', async (t) => {
  const { content, attachments, references } = await stored(tempDir(t), messages['multipart: text, HTML, two attachments, encoded headers, folded references']!);
  t.equal(content.from, 'Jürgen Müller <jurgen@zorg.test>');
  t.same(content.cc, ['Ødegård <o@extern.test>']);
  t.equal(content.subject, 'Verslag cliënt');
  t.match(content.html, /<b>verslag<\/b>/);
  t.same(attachments.map((a) => [a.name, a.size]), [['verslag.pdf', 8500], ['notitie.txt', 12]]);
  t.match(references, /In-Reply-To: <vraag-1@extern\.test>/);
  t.match(references, /References: <begin@zorg\.test>\r\n <vraag-1@extern\.test>/, 'folding kept');
});
