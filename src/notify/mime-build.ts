import type { Transform } from 'node:stream';
import type MimeNode from 'nodemailer/lib/mime-node';
import * as base64 from 'nodemailer/lib/base64';
import * as mimeFuncs from 'nodemailer/lib/mime-funcs';
import * as qp from 'nodemailer/lib/qp';
import { ZegelError } from '../errors.js';

/**
 * The bytes of a mail nodemailer's MailComposer compiled, built in one
 * synchronous pass instead of through `MimeNode.build()`.
 *
 * `build()` streams every node through a PassThrough, a transfer-encoding
 * transform, a pipeline, `setImmediate` hops and two newline transforms; for
 * the relay's own small mails (a notification, a receipt: a few KB held in
 * memory) that machinery cost about 1 ms of the main thread per mail, more
 * than everything else in composing it (issue 15). The mail is the same: the
 * headers come from nodemailer's own `buildHeaders()` (its address, encoded-word
 * and folding rules), the parts from its own quoted-printable and base64
 * encoders (run in this turn, `encodeWith`), the boundaries and the part
 * order from the compiled tree;
 * `test/notify-mime-build-same-bytes.test.ts` proves the output equals
 * `build()`'s byte for byte.
 *
 * Only what the relay's mails use is supported: string or Buffer content and
 * raw parts already in memory. A stream, file or URL content is refused
 * (the Notifier never passes one; the composer has file and URL access off).
 */

/** What this module reads of a node beyond the typed surface: the raw part set by `setRaw`. */
type Node = MimeNode & { _raw?: unknown };

function inMemory(value: unknown, what: string): string | Buffer {
  if (typeof value === 'string' || Buffer.isBuffer(value)) return value;
  throw new ZegelError('ZEGEL_NOTIFY_INPUT', `${what} is not in memory; only string or Buffer content can be built synchronously`);
}

/**
 * Runs nodemailer's own transfer encoder over content held in memory, in
 * this turn: its transform and flush, with what it pushes collected. The
 * encoder is what `build()` pipes the content through (one chunk, as its
 * PassThrough hands it on), so the slicing of long parts and the
 * quoted-printable line breaks are its own.
 */
function encodeWith(encoder: Transform, content: string | Buffer): string {
  const out: string[] = [];
  encoder.push = (chunk: unknown): boolean => {
    if (chunk !== null && chunk !== undefined) out.push(Buffer.isBuffer(chunk) ? chunk.toString('latin1') : String(chunk));
    return true;
  };
  const fail = (err?: Error | null): void => {
    if (err) throw err;
  };
  // 'buffer' is what a stream passes with a Buffer chunk (not a BufferEncoding in Node's types)
  encoder._transform(Buffer.isBuffer(content) ? content : Buffer.from(content, 'utf8'), 'buffer' as BufferEncoding, fail);
  encoder._flush?.(fail);
  return out.join('');
}

function buildNode(node: Node, out: Array<string | Buffer>): void {
  if (node._raw) {
    out.push(inMemory(node._raw, 'a raw part'));
    return;
  }
  // the headers first: building them sets the node's content type, multipart and boundary
  const encoding = node.getTransferEncoding();
  out.push(`${node.buildHeaders()}\r\n\r\n`);
  if (node.content) {
    const content = inMemory(node.content, 'the part content');
    if (encoding === 'quoted-printable') out.push(encodeWith(new qp.Encoder({ binary: !/^text\//i.test(node.contentType ?? '') }), content));
    else if (encoding === 'base64') out.push(encodeWith(new base64.Encoder(), content));
    else out.push(content);
  }
  if (node.multipart) {
    node.childNodes.forEach((child, i) => {
      out.push(`${i > 0 ? '\r\n' : ''}--${String(node.boundary)}\r\n`);
      buildNode(child, out);
    });
    out.push(`\r\n--${String(node.boundary)}--\r\n`);
  }
}

const CR = 0x0d;
const LF = 0x0a;

/**
 * The whole mail: every line ending CRLF (nodemailer's `newline: 'win'`) and
 * a final line break (its LastNewline), as `build()` gives it.
 */
export function buildMimeSync(root: MimeNode): Buffer {
  const parts: Array<string | Buffer> = [];
  buildNode(root as Node, parts);
  return crlf(parts);
}

/** The parts joined, with a final line break and every bare LF made CRLF (nodemailer's LastNewline, then LeWindows). */
function crlf(parts: Array<string | Buffer>): Buffer {
  if (parts.every((p): p is string => typeof p === 'string')) {
    // all text (the relay's own mails): the same two steps on the string
    let text = parts.join('');
    if (!text.endsWith('\n')) text += text.endsWith('\r') ? '\n' : '\r\n';
    return Buffer.from(text.replace(/(?<!\r)\n/g, '\r\n'), 'utf8');
  }
  const joined = Buffer.concat(parts.map((p) => (typeof p === 'string' ? Buffer.from(p, 'utf8') : p)));
  // the final line break first (LastNewline runs before the newline transform), then bare LF → CRLF
  const last = joined.length ? joined[joined.length - 1] : undefined;
  const ended = last === LF ? joined : Buffer.concat([joined, Buffer.from(last === CR ? '\n' : '\r\n', 'latin1')]);
  let bare = 0;
  for (let i = 0; i < ended.length; i++) if (ended[i] === LF && (i === 0 || ended[i - 1] !== CR)) bare++;
  if (!bare) return ended;
  const result = Buffer.allocUnsafe(ended.length + bare);
  let at = 0;
  for (let i = 0; i < ended.length; i++) {
    const c = ended[i]!;
    if (c === LF && (i === 0 || ended[i - 1] !== CR)) result[at++] = CR;
    result[at++] = c;
  }
  return result;
}

/**
 * One relay-made mail as the relay composes it: multipart/alternative with a
 * text and an HTML part, written directly (no MailComposer tree, no random
 * boundary per node) when every address is a plain ASCII dot-atom with a
 * lower-case domain, the only form nodemailer would pass through unchanged.
 * The header block follows nodemailer's own rules field by field (its
 * `foldLines`, `encodeWords`, `quoteString` and `buildHeaderValue`, the same
 * order, the same 7bit/quoted-printable/base64 choice per part), so the bytes
 * equal what `MailComposer` and `buildMimeSync` make up to the random
 * boundary; `test/notify-mime-build-same-bytes.test.ts` checks that on
 * generated names, subjects and bodies. Anything else: undefined, and the
 * caller composes with MailComposer.
 */
export interface AlternativeMail {
  /** Extra fields first, in this order (as `headers` given to MailComposer). */
  headers: ReadonlyArray<readonly [string, string]>;
  from: { name?: string | undefined; address: string };
  to: string;
  replyTo?: { name?: string | undefined; address: string } | undefined;
  subject: string;
  messageId: string;
  date: Date;
  /** The text part: its content, or a raw part with its own header (as MailComposer's `text: { raw }`). */
  text: { content: string } | { raw: string };
  html: string;
  /** 16 hex digits (MimeNode's `baseBoundary`). */
  baseBoundary: string;
}

/** An address nodemailer's `_normalizeAddress` leaves as it is and `_convertAddresses` writes bare. */
const SIMPLE_ADDRESS = /^[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*@[a-z0-9](?:[a-z0-9-]*[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]*[a-z0-9])?)*$/;
const CONTROL = /[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]/;

/** MimeNode's `_getTextEncoding`: quoted-printable when latin letters outnumber the rest, else base64. */
function textEncoding(value: string): 'Q' | 'B' {
  let nonLatin = 0;
  let latin = 0;
  for (let i = 0; i < value.length; i++) {
    const code = value.charCodeAt(i);
    if (code <= 0x08 || code === 0x0b || code === 0x0c || (code >= 0x0e && code <= 0x1f) || code >= 0x80) nonLatin++;
    else if ((code >= 0x41 && code <= 0x5a) || (code >= 0x61 && code <= 0x7a)) latin++;
  }
  return nonLatin < latin ? 'Q' : 'B';
}

/** MimeNode's `_encodeHeaderText`. */
function headerText(value: string): string {
  const v = value.replace(/\r?\n|\r/g, ' ');
  return CONTROL.test(v) ? mimeFuncs.encodeWord(v, textEncoding(v), 52) : mimeFuncs.encodeWords(v, textEncoding(v), 52, true);
}

/** MimeNode's `_encodeAddressName`. */
function addressName(name: string): string {
  if (/^[\w ]*$/.test(name)) return name;
  return /^[\x20-\x7e]*$/.test(name) ? mimeFuncs.quoteString(name) : mimeFuncs.encodeWord(name, textEncoding(name), 52);
}

function mailbox(party: { name?: string | undefined; address: string }): string {
  return party.name ? `${addressName(party.name)} <${party.address}>` : party.address;
}

/** One header line the way MimeNode's `buildHeaders` writes it (empty values are left out). */
function field(lines: string[], key: string, value: string): void {
  if (!value.trim()) return;
  lines.push(mimeFuncs.foldLines(`${key}: ${value}`, 76));
}

/** A text part with string content, as MimeNode writes a `text/…; charset=utf-8` alternative. */
function contentPart(contentType: string, content: string, out: Array<string | Buffer>): void {
  const plain = mimeFuncs.isPlainText(content);
  const encoding = plain && !mimeFuncs.hasLongerLines(content, 76) ? '7bit' : textEncoding(content) === 'Q' ? 'quoted-printable' : 'base64';
  const lines: string[] = [];
  field(lines, 'Content-Type', contentType);
  field(lines, 'Content-Transfer-Encoding', encoding);
  out.push(`${lines.join('\r\n')}\r\n\r\n`);
  if (!content) return;
  if (encoding === 'quoted-printable') out.push(encodeWith(new qp.Encoder({ binary: false }), content));
  else if (encoding === 'base64') out.push(encodeWith(new base64.Encoder(), content));
  else out.push(content);
}

export function buildAlternativeSync(mail: AlternativeMail): Buffer | undefined {
  const parties = [mail.from, { address: mail.to }, ...(mail.replyTo ? [mail.replyTo] : [])];
  if (!parties.every((p) => SIMPLE_ADDRESS.test(p.address))) return undefined;
  if (!/^[0-9a-f]{16}$/.test(mail.baseBoundary)) throw new ZegelError('ZEGEL_NOTIFY_INPUT', 'the boundary base must be 16 hex digits');
  const boundary = `--_NmP-${mail.baseBoundary}-Part_1`;
  const lines: string[] = [];
  for (const [key, value] of mail.headers) field(lines, key, headerText(value));
  field(lines, 'From', mailbox(mail.from));
  field(lines, 'To', mail.to);
  if (mail.replyTo) field(lines, 'Reply-To', mailbox(mail.replyTo));
  field(lines, 'Subject', headerText(mail.subject));
  field(lines, 'Message-ID', mail.messageId.replace(/\r?\n|\r/g, ' ').replace(/[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]/g, ''));
  field(lines, 'Date', mail.date.toUTCString().replace(/GMT/, '+0000'));
  field(lines, 'MIME-Version', '1.0');
  field(lines, 'Content-Type', mimeFuncs.buildHeaderValue({ value: 'multipart/alternative', params: { boundary } }));
  const out: Array<string | Buffer> = [`${lines.join('\r\n')}\r\n\r\n`, `--${boundary}\r\n`];
  if ('raw' in mail.text) out.push(mail.text.raw);
  else contentPart('text/plain; charset=utf-8', mail.text.content, out);
  out.push(`\r\n--${boundary}\r\n`);
  contentPart('text/html; charset=utf-8', mail.html, out);
  out.push(`\r\n--${boundary}--\r\n`);
  return crlf(out);
}
