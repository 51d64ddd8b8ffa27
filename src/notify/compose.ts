import crypto from 'node:crypto';
import MailComposer, { type MailComposerAlternative } from 'nodemailer/lib/mail-composer';
import { ORIGIN_PLACEHOLDER, type OriginSigner } from '../crypto/origin.js';
import { stampOriginSync } from '../crypto/origin-stamp.js';
import { ZegelError } from '../errors.js';
import type { DkimSigner } from './dkim.js';
import { buildAlternativeSync, buildMimeSync } from './mime-build.js';
import type { Language } from './templates.js';

export interface MailParty {
  name?: string;
  address: string;
}

export interface ComposedMail {
  /** `<random@hostname>`, as in the Message-ID header (X-Zegel-Origin covers it, the body and `to`). */
  messageId: string;
  /** Envelope sender to use: the no-reply address. */
  from: string;
  /** The one recipient, also the only address in To. */
  to: string;
  raw: Buffer;
}

export interface ComposeInput {
  hostname: string;
  envelopeFrom: string;
  from: MailParty;
  to: string;
  replyTo?: MailParty | undefined;
  subject: string;
  text: string;
  html: string;
  language: Language;
  now: number;
  signer: OriginSigner;
  dkim?: DkimSigner | undefined;
}

/** One mailbox, no display name, no list: what To and the envelope may hold. */
const MAILBOX = /^[^\s@<>,;:"()[\]\\]+@[^\s@<>,;:"()[\]\\]+$/;

export function checkMailbox(address: string, what: string): string {
  if (!MAILBOX.test(address)) throw new ZegelError('ZEGEL_NOTIFY_INPUT', `${what} is not a single e-mail address: ${JSON.stringify(address)}`);
  return address;
}

/**
 * A plain-ASCII text part (lines within SMTP's limit) is sent as 7bit, so the
 * link stands in the raw bytes exactly as the reader sees it, without
 * quoted-printable soft breaks (nodemailer picks quoted-printable for any line
 * over 76 characters, and a link usually is one). Anything else is left to
 * nodemailer (quoted-printable).
 */
export function textPart(text: string): MailComposerAlternative {
  const lines = text.replace(/\r\n?/g, '\n').split('\n');
  if (!/^[\x20-\x7e\n\t]*$/.test(lines.join('\n')) || lines.some((line) => line.length > 900)) return { content: text };
  return { raw: `Content-Type: text/plain; charset=us-ascii\r\nContent-Transfer-Encoding: 7bit\r\n\r\n${lines.join('\r\n')}` };
}

/** `<128 random bits, base64url>@<hostname>` in angle brackets. */
export function newMessageId(hostname: string, random: Buffer = crypto.randomBytes(16)): string {
  const host = hostname.replace(/[^A-Za-z0-9.-]/g, '') || 'localhost';
  return `<${random.subarray(0, 16).toString('base64url')}@${host}>`;
}

/**
 * The nodemailer composer for one relay-made mail, before its origin mark:
 * multipart/alternative (text first, then HTML), Content-Language,
 * Auto-Submitted and the X-Zegel-Origin placeholder. Exported for
 * `test/notify-mime-build-same-bytes.test.ts`, which builds it both ways.
 */
export function mailComposer(input: Omit<ComposeInput, 'signer' | 'dkim' | 'hostname' | 'envelopeFrom'>, messageId: string): MailComposer {
  return new MailComposer({
    from: { name: input.from.name ?? '', address: input.from.address },
    to: { name: '', address: input.to },
    ...(input.replyTo ? { replyTo: { name: input.replyTo.name ?? '', address: input.replyTo.address } } : {}),
    subject: input.subject,
    messageId,
    date: new Date(input.now),
    text: textPart(input.text),
    html: input.html,
    headers: {
      'Content-Language': input.language,
      'Auto-Submitted': 'auto-generated',
      'X-Zegel-Origin': ORIGIN_PLACEHOLDER,
    },
    newline: 'win',
    disableFileAccess: true,
    disableUrlAccess: true,
  });
}

/**
 * A mail the relay makes itself: multipart/alternative (text first, then
 * HTML), Content-Language, Auto-Submitted: auto-generated and X-Zegel-Origin
 * over its Message-ID, body and envelope recipient; DKIM-signed when a signer is given. No List-Unsubscribe:
 * these mails are transactional. Exactly one address in To.
 */
export async function composeMail(input: ComposeInput): Promise<ComposedMail> {
  const to = checkMailbox(input.to, 'the recipient');
  const envelopeFrom = checkMailbox(input.envelopeFrom, 'the envelope sender');
  checkMailbox(input.from.address, 'the From address');
  if (input.replyTo) checkMailbox(input.replyTo.address, 'the Reply-To address');
  // one draw for the Message-ID (16 bytes) and the multipart boundary (8 bytes, as nodemailer's own)
  const random = crypto.randomBytes(24);
  const messageId = newMessageId(input.hostname, random);
  // written directly when the addresses allow it, else through MailComposer; both in one synchronous
  // pass and the same bytes (src/notify/mime-build.ts)
  const text = textPart(input.text);
  const built =
    buildAlternativeSync({
      headers: [
        ['Content-Language', input.language],
        ['Auto-Submitted', 'auto-generated'],
        ['X-Zegel-Origin', ORIGIN_PLACEHOLDER],
      ],
      from: input.from,
      to,
      replyTo: input.replyTo,
      subject: input.subject,
      messageId,
      date: new Date(input.now),
      text: 'raw' in text && typeof text.raw === 'string' ? { raw: text.raw } : { content: input.text },
      html: input.html,
      baseBoundary: random.subarray(16).toString('hex'),
    }) ?? buildMimeSync(mailComposer({ ...input, to }, messageId).compile());
  let raw = stampOriginSync(input.signer, built, { messageId, recipients: [to] });
  if (input.dkim) raw = await input.dkim.sign(raw);
  return { messageId, from: envelopeFrom, to, raw };
}
