import type { ExtractEvent } from '../types.js';
import { collect, peek, type Bytes } from './bytes.js';
import { extractZip } from './container.js';
import { SNIFF_BYTES, detectKind } from './detect.js';
import { textEvents, unscannableEvent } from './events.js';
import { htmlStream } from './html.js';
import { ExtractError, checkDepth, type ExtractContext, type Place } from './limits.js';
import { walkNested } from './mime.js';
import { pdfText } from './pdf.js';
import { bomCharset, decodeStream } from './text.js';

/** One file to extract: an attachment, an archive entry or an attachment of a forwarded message. */
export interface FileInput {
  /** Its own file name (for the extension), without the path of its containers. */
  name: string;
  /** The declared MIME type (attachments only; archive entries have none). */
  contentType?: string | undefined;
  /** The declared charset (attachments only). */
  charset?: string | undefined;
  bytes: Bytes;
}

/** `<meta charset=…>` or `<meta http-equiv=… content="…; charset=…">` near the start of an HTML file. */
function htmlCharset(head: Buffer): string | undefined {
  return /<meta[^>]+charset\s*=\s*["']?([A-Za-z0-9._:-]+)/i.exec(head.toString('latin1'))?.[1];
}

/** A legacy Office (OLE2) container holding an `EncryptedPackage` stream: a password-protected DOCX/XLSX/PPTX. */
function isEncryptedOfficePackage(buf: Buffer): boolean {
  return buf.includes(Buffer.from('EncryptedPackage', 'utf16le'));
}

/**
 * Extracts one file at `place`: its text as chunks at `attachment:<path>`,
 * nested files (archive entries, attachments of a forwarded message) with
 * their own names and locations, and an `unscannable` event when it cannot
 * be read. Bad input never throws out of here except a fatal limit
 * (`limit:totalBytes`, `limit:timeout`), already reported, which stops the
 * enclosing items up to the top-level attachment.
 */
export async function* extractFile(file: FileInput, place: Place, ctx: ExtractContext): AsyncGenerator<ExtractEvent> {
  const location = `attachment:${place.path}`;
  let close: (() => Promise<void>) | undefined;
  try {
    place.deadline.check();
    const peeked = await peek(file.bytes, SNIFF_BYTES);
    const { head, rest } = peeked;
    close = peeked.close;
    const kind = detectKind(head, file.name, file.contentType);
    switch (kind) {
      case 'pdf':
        yield* textEvents(pdfText(await collect(rest), place), location, 'attachment');
        break;
      case 'zip':
        yield* extractZip(await collect(rest), place, ctx);
        break;
      case 'ole':
        if (isEncryptedOfficePackage(await collect(rest))) throw new ExtractError('encrypted', false, place.path);
        // Legacy .doc/.xls/.ppt binaries are not read: unscannable, so the policy fails closed.
        throw new ExtractError('unsupported', false, place.path);
      case 'sealed':
        throw new ExtractError('encrypted', false, place.path);
      case 'unsupported':
        throw new ExtractError('unsupported', false, place.path);
      case 'eml':
        checkDepth(place, ctx);
        yield* walkNested(rest, place, ctx);
        break;
      case 'html': {
        const charset = file.charset || bomCharset(head) || htmlCharset(head);
        yield* textEvents(htmlStream(decodeStream(rest, charset)), location, 'attachment');
        break;
      }
      case 'text':
        yield* textEvents(decodeStream(rest, file.charset || bomCharset(head)), location, 'attachment');
        break;
      case 'skip':
        // Images and other binaries are not read: no text, no event.
        break;
    }
  } catch (err) {
    if (!(err instanceof ExtractError) || !err.belongsTo(place.path)) throw err;
    if (!err.reported) {
      err.reported = true;
      yield unscannableEvent(location, err.reason);
    }
    if (err.fatal) throw err;
  } finally {
    await close?.();
  }
}
