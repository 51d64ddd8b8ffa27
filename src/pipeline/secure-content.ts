import { pipeline } from 'node:stream/promises';
import { Readable } from 'node:stream';
import { MailParser, type AddressObject, type AttachmentStream, type MessageText } from 'mailparser';
import { newSecureId } from '../crypto/key-schedule.js';
import { encryptBytes, encryptStream } from '../crypto/payload.js';
import type { SecureContent } from '../crypto/content.js';
import type { BlobStore } from '../store/blobs.js';

export interface EncryptedContent {
  bodyBlob: string;
  blobs: Array<{ id: string; bytes: number }>;
  /** The decoded Subject header as the sender wrote it, tags included. */
  subject: string;
  /** Display name and address of the From header, for the notification's "Jan de Vries via …". */
  from: { name?: string | undefined; address: string | undefined };
}

export interface EncryptContentInput {
  source: Readable;
  contentKey: Buffer;
  secureId: string;
  blobs: BlobStore;
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
  let text: string | undefined;
  let html: string | undefined;
  let failure: unknown;

  parser.on('headers', (h: Map<string, unknown>) => {
    headers = h;
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

  await pipeline(input.source, parser);
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
  const ciphertext = await encryptBytes(contentKey, Buffer.from(JSON.stringify(content), 'utf8'));
  const bytes = await blobs.write(secureId, bodyBlob, Readable.from([Buffer.from(ciphertext)]));
  stored.unshift({ id: bodyBlob, bytes });
  return { bodyBlob, blobs: stored, subject, from: { name: first?.name || undefined, address: first?.address } };
}
