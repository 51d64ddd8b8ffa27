import type { Readable } from 'node:stream';
import type { ExtractEvent, ExtractLimits } from '../types.js';
import { Budget } from './limits.js';
import { walkMessage } from './mime.js';

/**
 * Text extraction for the content classifier: turns a message into text
 * chunks and unscannable parts, in message order.
 *
 * - `subject` (RFC 2047 decoded, any charset);
 * - every text body part (`body`): text/plain and text/html (converted to
 *   text), any charset, quoted-printable and base64 decoded, in chunks of at
 *   most `CHUNK_CHARS` characters;
 * - every attachment: its name (`filename:<name>`), then its text
 *   (`attachment:<name>`): PDF, DOCX, XLSX, PPTX, ODT/ODS/ODP, CSV, TXT,
 *   HTML, XML, JSON and other text, forwarded messages and ZIP archives
 *   (recursively, `attachment:archief.zip/map/overdracht.docx`,
 *   `attachment:bericht.eml/verslag.pdf`);
 * - an `unscannable` event for a part that cannot be read: `encrypted`,
 *   `corrupt`, or a limit (`limit:depth`, `limit:entries`,
 *   `limit:totalBytes`, `limit:ratio`, `limit:timeout`); extraction of that
 *   part stops, the rest of the message goes on.
 *
 * Images, audio, video, legacy binary Office files and other binaries are
 * not read: they yield their file name only, no text and no unscannable
 * event. Bad input never makes the generator throw; it throws only for an
 * error of `source` itself (e.g. I/O) or a programming error.
 *
 * The caller owns `source`: when it stops reading early (`return()` on the
 * generator), extraction lets go of the stream but does not destroy it.
 */
export function extractMessage(source: Readable, limits: ExtractLimits): AsyncGenerator<ExtractEvent> {
  return walkMessage(source, { limits, budget: new Budget(limits.totalBytes) });
}

export { CHUNK_CHARS } from './text.js';
