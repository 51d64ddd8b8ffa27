import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import t from 'tap';
import MailComposer from 'nodemailer/lib/mail-composer';
import { ORIGIN_PLACEHOLDER, OriginSigner } from '../src/crypto/origin.js';
import { OriginStamper, stampOrigin, verifyOrigin } from '../src/crypto/origin-stamp.js';
import { ZegelError } from '../src/errors.js';
import { tempDir } from './helpers/relay.js';

/**
 * A relay-made mail is composed with a placeholder X-Zegel-Origin of the final
 * length; once the body is known the placeholder is overwritten with the mark
 * over the Message-ID, the envelope recipients and the body, in a buffer or in
 * the spool file a streamed mail was written to. Nothing else changes.
 */

const signer = new OriginSigner(crypto.randomBytes(32));
const ID = '<r1@relay.org.test>';
const TO = ['Piet@Example.org'];

function composed(extraHeaders: Record<string, string> = {}, text = 'Beste Piet,\r\n\r\nde link: https://relay.org.test/m/abc#def\r\n'): MailComposer {
  return new MailComposer({
    from: 'no-reply@org.test',
    to: TO[0],
    subject: 'Een bericht',
    messageId: ID,
    text,
    attachments: [{ filename: 'bijlage.bin', content: crypto.randomBytes(300_000) }],
    headers: { ...extraHeaders, 'X-Zegel-Origin': ORIGIN_PLACEHOLDER },
    newline: 'win',
  });
}

/** The positions where two buffers of equal length differ. */
function diffAt(a: Buffer, b: Buffer): number[] {
  const out: number[] = [];
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) out.push(i);
  return out;
}

t.test('a composed buffer: only the placeholder changes, and the mark verifies for exactly this mail', async (t) => {
  const raw = await composed().compile().build();
  const stamped = await stampOrigin(signer, raw, { messageId: ID, recipients: TO });
  t.equal(stamped.length, raw.length);
  const changed = diffAt(raw, stamped);
  const at = raw.indexOf(ORIGIN_PLACEHOLDER.slice(3));
  t.ok(changed.length > 0 && changed.every((i) => i >= at && i < at + 87), 'only bytes of the placeholder token changed');
  t.ok(await verifyOrigin(signer, stamped, ['piet@example.org']), 'verifies (recipients compared lower-cased)');
  t.notOk(await verifyOrigin(signer, stamped, ['piet@example.org', 'jan@example.org']), 'not for other recipients');
  t.notOk(await verifyOrigin(new OriginSigner(crypto.randomBytes(32)), stamped, TO), 'not with another secret');
  const end = stamped.indexOf('\r\n\r\n') + 4;
  const edited = Buffer.concat([stamped.subarray(0, end), Buffer.from('P.S.\r\n'), stamped.subarray(end)]);
  t.notOk(await verifyOrigin(signer, edited, TO), 'not with a changed body');
  t.notOk(await verifyOrigin(signer, raw, TO), 'the placeholder itself never verifies');
});

t.test('the placeholder is found in X-Zegel-Origin only, folded or not', async (t) => {
  const raw = await composed({ Comments: `echo ${ORIGIN_PLACEHOLDER}` }).compile().build();
  const stamped = await stampOrigin(signer, raw, { messageId: ID, recipients: TO });
  t.ok(await verifyOrigin(signer, stamped, TO));
  t.equal(stamped.toString('latin1').split(ORIGIN_PLACEHOLDER.slice(3)).length, 2, 'the copy in Comments is left alone');

  const folded = Buffer.from(`Message-ID: ${ID}\r\nX-Zegel-Origin: v2\r\n ${ORIGIN_PLACEHOLDER.slice(3)}\r\nSubject: s\r\n\r\nbody\r\n`, 'latin1');
  t.ok(await verifyOrigin(signer, await stampOrigin(signer, folded, { messageId: ID, recipients: TO }), TO), 'folded after v2');

  const none = Buffer.from(`Message-ID: ${ID}\r\nSubject: ${ORIGIN_PLACEHOLDER}\r\n\r\nX-Zegel-Origin: ${ORIGIN_PLACEHOLDER}\r\n`, 'latin1');
  const err = await stampOrigin(signer, none, { messageId: ID, recipients: TO }).catch((e: unknown) => e);
  t.type(err, ZegelError);
  t.equal((err as ZegelError).code, 'ZEGEL_ORIGIN_STAMP', 'no placeholder in an X-Zegel-Origin header field: refused');
});

t.test('a streamed mail: the stamper passes the bytes through, then stamps the file it went to', async (t) => {
  const dir = tempDir(t);
  const reference = await composed().compile().build();
  for (const size of [1, 7, 4096, 65536, reference.length]) {
    const file = path.join(dir, `mail-${size}`);
    const chunks: Buffer[] = [];
    for (let i = 0; i < reference.length; i += size) chunks.push(reference.subarray(i, i + size));
    const stamper = new OriginStamper(signer, { messageId: ID, recipients: TO });
    await pipeline(Readable.from(chunks), stamper, fs.createWriteStream(file));
    t.ok(fs.readFileSync(file).equals(reference), `chunks of ${size}: passed through unchanged`);
    await stamper.stamp(file);
    const stamped = fs.readFileSync(file);
    t.ok(stamped.equals(await stampOrigin(signer, reference, { messageId: ID, recipients: TO })), `chunks of ${size}: the same mark as the buffer`);
    t.ok(await verifyOrigin(signer, stamped, TO));
  }
});

t.test('a streamed mail without a placeholder is refused at stamp time', async (t) => {
  const file = path.join(tempDir(t), 'mail');
  const stamper = new OriginStamper(signer, { messageId: ID, recipients: TO });
  await pipeline(Readable.from([Buffer.from(`Message-ID: ${ID}\r\n\r\nbody\r\n`)]), stamper, fs.createWriteStream(file));
  const err = await stamper.stamp(file).catch((e: unknown) => e);
  t.equal((err as ZegelError).code, 'ZEGEL_ORIGIN_STAMP');
});
