import { pipeline } from 'node:stream/promises';
import { Readable } from 'node:stream';
import { MailParser, type AddressObject, type AttachmentStream, type MessageText } from 'mailparser';
import { newSecureId } from '../crypto/key-schedule.js';
import { encryptBytes, encryptStream } from '../crypto/payload.js';
import type { SecureContent } from '../crypto/content.js';
import type { BlobRepository } from '../store/blobs.js';

export interface EncryptedContent {
  bodyBlob: string;
  blobs: Array<{ id: string; bytes: number }>;
  /**
   * The body blob on its way to disk: it settles once the blob is durable
   * (or failed). The caller awaits it with its own writes (the notifications'
   * spool files), so the fsyncs run side by side, and before it commits.
   */
  bodyWritten: Promise<void>;
  /** The message's In-Reply-To and References header lines as sent (folding kept), for threading. */
  references: string;
  /** The decoded Subject header as the sender wrote it, tags included. */
  subject: string;
  /** Display name and address of the From header, for the notification's "Jan de Vries via …". */
  from: { name?: string | undefined; address: string | undefined };
}

export interface EncryptContentInput {
  /** The spooled message: its bytes when held in memory (the spool's cache), else a stream of the file. */
  source: Readable | Buffer;
  contentKey: Buffer;
  secureId: string;
  blobs: BlobRepository;
  /** Turns the decoded Subject header into the subject recipients see (tags removed). */
  subjectFor: (subject: string) => string;
  /** Used when the message has no usable Date header. */
  receivedAt: number;
}

function addresses(value: AddressObject | AddressObject[] | undefined): string[] {
  if (!value) return [];
  const list = Array.isArray(value) ? value : [value];
  return list.flatMap((group) => group.value.map((a) => (a.name ? `${a.name} <${a.address ?? ''}>` : (a.address ?? '')))).filter(Boolean);
}

/**
 * Parses a spooled message (streaming) and stores what the reader shows, as
 * ciphertext only: each attachment is encrypted while it is read and written
 * straight to its blob, never held whole in memory; the body, subject,
 * addresses and attachment names go into one encrypted SecureContent blob.
 */
export async function encryptContent(input: EncryptContentInput): Promise<EncryptedContent> {
  const { contentKey, secureId, blobs } = input;
  const parser = new MailParser({ skipImageLinks: true, skipTextLinks: true, skipTextToHtml: true });
  const stored: Array<{ id: string; bytes: number }> = [];
  const attachments: SecureContent['attachments'] = [];
  let headers: Map<string, unknown> = new Map();
  let references = '';
  let text: string | undefined;
  let html: string | undefined;
  let failure: unknown;

  parser.on('headers', (h: Map<string, unknown>) => {
    headers = h;
  });
  parser.on('headerLines', (lines: Array<{ key: string; line: string }>) => {
    references = lines
      .filter((l) => l.key === 'in-reply-to' || l.key === 'references')
      .map((l) => l.line)
      .join('\r\n');
  });
  parser.on('data', (data: AttachmentStream | MessageText) => {
    if (data.type === 'text') {
      if (typeof data.text === 'string') text = data.text;
      if (typeof data.html === 'string') html = data.html;
      return;
    }
    const attachment = data;
    const id = newSecureId();
    void (async () => {
      try {
        let size = 0;
        const counted = Readable.from(
          (async function* () {
            for await (const chunk of attachment.content as AsyncIterable<Buffer>) {
              size += chunk.length;
              yield chunk;
            }
          })(),
        );
        const bytes = await blobs.write(secureId, id, await encryptStream(contentKey, counted));
        stored.push({ id, bytes });
        attachments.push({ blob: id, name: attachment.filename || 'bijlage.bin', contentType: attachment.contentType || 'application/octet-stream', size });
      } catch (err) {
        failure ??= err;
        (attachment.content as Readable).resume();
      } finally {
        attachment.release?.();
      }
    })();
  });

  if (Buffer.isBuffer(input.source)) {
    // a message in memory goes to the parser in one write: no stream pipeline to set up and tear down
    const done = new Promise<void>((resolve, reject) => {
      parser.once('error', reject);
      parser.once('end', resolve);
    });
    parser.end(input.source);
    parser.resume();
    await done;
  } else {
    await pipeline(input.source, parser);
  }
  if (failure) throw failure;

  const date = headers.get('date');
  const subject = typeof headers.get('subject') === 'string' ? (headers.get('subject') as string) : '';
  const from = headers.get('from') as AddressObject | undefined;
  const first = from?.value[0];
  const content: SecureContent = {
    v: 1,
    from: addresses(from)[0] ?? '',
    to: addresses(headers.get('to') as AddressObject | AddressObject[] | undefined),
    cc: addresses(headers.get('cc') as AddressObject | AddressObject[] | undefined),
    date: new Date(date instanceof Date && !Number.isNaN(date.getTime()) ? date.getTime() : input.receivedAt).toISOString(),
    subject: input.subjectFor(subject),
    attachments,
    ...(typeof headers.get('message-id') === 'string' ? { messageId: headers.get('message-id') as string } : {}),
    ...(text !== undefined ? { text } : {}),
    ...(html !== undefined ? { html } : {}),
  };
  const bodyBlob = newSecureId();
  const ciphertext = Buffer.from(await encryptBytes(contentKey, Buffer.from(JSON.stringify(content), 'utf8')));
  // not awaited here: the caller writes its notifications meanwhile and awaits both (bodyWritten)
  const bodyWritten = blobs.write(secureId, bodyBlob, Readable.from([ciphertext])).then((bytes) => {
    if (bytes !== ciphertext.length) throw new Error(`body blob of ${secureId}: wrote ${bytes} of ${ciphertext.length} bytes`);
  });
  // handled here so a failure before the caller awaits it is no unhandled rejection; the caller still gets it
  bodyWritten.catch(() => undefined);
  stored.unshift({ id: bodyBlob, bytes: ciphertext.length });
  return { bodyBlob, blobs: stored, bodyWritten, references, subject, from: { name: first?.name || undefined, address: first?.address } };
}
