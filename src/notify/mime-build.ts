import type { Transform } from 'node:stream';
import type MimeNode from 'nodemailer/lib/mime-node';
import * as base64 from 'nodemailer/lib/base64';
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
