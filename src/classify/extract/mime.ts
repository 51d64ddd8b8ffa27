import type { Readable } from 'node:stream';
import type { ExtractEvent, Location, Scope } from '../types.js';
import { pieces } from './bytes.js';
import { textEvent, textEvents, unscannableEvent } from './events.js';
import { extractFile } from './file.js';
import { htmlStream } from './html.js';
import { Deadline, ExtractError, corrupt, type Budget, type ExtractContext, type Place } from './limits.js';
import { MimeError, splitMime, type MimeNode, type SplitItem } from './split.js';
import { decodeStream, unflow } from './text.js';
import { transferDecoder } from './transfer.js';
import { fixBinary, headerValue } from './words.js';

/**
 * Walks a message with Zegel's streaming MIME splitter (split.ts) and turns
 * it into extraction events in message order: the subject, each text body,
 * each attachment (its name, then what its extractor yields). A part's bytes
 * are pulled from the splitter while its extractor reads them, so a large
 * part never sits whole in memory unless its format needs that (PDF, ZIP).
 *
 * Forwarded messages (message/rfc822 parts, `.eml` files) are walked the same
 * way, recursively; their subject and bodies are text of the forwarded
 * message's own location (`attachment:bericht.eml`, scope `attachment`) and
 * their attachments sit below it (`attachment:bericht.eml/verslag.pdf`).
 */

/** Splitter output with one item of look-back, read by one reader at a time. */
class Cursor {
  private back: SplitItem | undefined;

  constructor(private readonly it: AsyncIterator<SplitItem>) {}

  async next(): Promise<SplitItem | undefined> {
    const back = this.back;
    if (back) {
      this.back = undefined;
      return back;
    }
    const step = await this.it.next();
    return step.done ? undefined : step.value;
  }

  unread(item: SplitItem): void {
    this.back = item;
  }

  /** Lets go of the source (without reading the rest of it). */
  async close(): Promise<void> {
    this.back = undefined;
    await this.it.return?.(undefined);
  }
}

/**
 * The decoded bytes of one leaf part, checked against the clock of the
 * attachment it belongs to (`place`) and counted against the message's byte
 * budget (`budget`, for the attachments of the message itself).
 */
async function* partBytes(cursor: Cursor, node: MimeNode, place?: Place, budget?: Budget): AsyncGenerator<Buffer> {
  const decoder = transferDecoder(node.encoding);
  const counted = (out: Buffer): Buffer => {
    if (place) {
      budget?.consume(out.length, place.path);
      place.deadline.check();
    }
    return out;
  };
  for (;;) {
    const item = await cursor.next();
    if (!item) break;
    if (item.type !== 'body' || item.node !== node) {
      cursor.unread(item);
      break;
    }
    for (const piece of pieces(item.value)) {
      const out = counted(decoder.write(piece));
      if (out.length) yield out;
    }
  }
  const tail = counted(decoder.end());
  if (tail.length) yield tail;
}

function isTextBody(node: MimeNode): boolean {
  const type = node.contentType || 'text/plain';
  return !node.filename && node.disposition !== 'attachment' && type.startsWith('text/');
}

const EXTENSIONS: Record<string, string> = {
  'application/pdf': '.pdf',
  'application/zip': '.zip',
  'message/rfc822': '.eml',
  'message/global': '.eml',
  'text/html': '.html',
  'text/plain': '.txt',
  'text/csv': '.csv',
};

/** A file name usable as one step of a location: no path separators or control characters. */
function locationName(name: string): string {
  return name.replace(/[/\\]/g, '_').replace(/[\x00-\x1f\x7f]/g, ' ').trim();
}

/** Ends a text with a line end, so it never runs into the next text at the same location. */
async function* terminated(strings: AsyncIterable<string>): AsyncGenerator<string> {
  let last = '';
  for await (const s of strings) {
    if (s) last = s;
    yield s;
  }
  if (last && !last.endsWith('\n')) yield '\n';
}

async function* bodyEvents(cursor: Cursor, node: MimeNode, location: Location, scope: Scope, place: Place | undefined): AsyncGenerator<ExtractEvent> {
  const bytes = partBytes(cursor, node, place);
  let strings = decodeStream(bytes, node.charset);
  if (node.flowed) strings = unflow(strings, node.delSp);
  if (node.contentType === 'text/html') strings = htmlStream(strings);
  yield* textEvents(terminated(strings), location, scope);
}

/**
 * Walks the message in `source`. `nested` is the place of a forwarded
 * message; without it this is the message itself.
 */
export async function* walkMessage(source: Readable, ctx: ExtractContext): AsyncGenerator<ExtractEvent> {
  // The caller owns the stream: stopping early lets go of it but does not destroy it.
  const it = source.iterator({ destroyOnReturn: false }) as AsyncIterator<Buffer | string>;
  yield* walk({ [Symbol.asyncIterator]: () => it }, ctx);
}

async function* walk(source: AsyncIterable<Buffer | string>, ctx: ExtractContext, nested?: Place): AsyncGenerator<ExtractEvent> {
  const cursor = new Cursor(splitMime(source));
  const own = nested && { location: `attachment:${nested.path}`, scope: 'attachment' as const };
  let current: Location = own?.location ?? 'body';
  let part = 0;
  try {
    for (let item = await cursor.next(); item; item = await cursor.next()) {
      if (item.type !== 'node') continue;
      const node = item;
      if (node.root && node.headers) {
        const line = node.headers.get('subject')[0];
        const subject = line === undefined ? undefined : headerValue(line);
        if (own) {
          if (subject) yield textEvent(own.location, own.scope, `${subject}\n`);
        } else if (subject !== undefined) yield textEvent('subject', 'subject', subject);
      }
      if (node.multipart) continue;
      part++;

      if (isTextBody(node)) {
        current = own?.location ?? 'body';
        if (own) {
          yield* bodyEvents(cursor, node, own.location, own.scope, nested);
          continue;
        }
        try {
          yield* bodyEvents(cursor, node, 'body', 'body', undefined);
        } catch (err) {
          // A body html-to-text cannot handle: the message cannot be checked.
          if (!(err instanceof ExtractError)) throw err;
          yield unscannableEvent('body', err.reason);
        }
        continue;
      }

      const given = node.filename ? fixBinary(node.filename) : '';
      const name = locationName(given) || `part${part}${EXTENSIONS[node.contentType || ''] ?? ''}`;
      const path = nested ? `${nested.path}/${name}` : name;
      current = `attachment:${path}`;
      if (given) yield textEvent(`filename:${path}`, 'filename', given);
      const place: Place = nested
        ? { path, depth: nested.depth + 1, deadline: nested.deadline }
        : { path, depth: 0, deadline: new Deadline(ctx.limits.timeout) };
      const file = {
        name,
        contentType: node.contentType || undefined,
        charset: node.charset || undefined,
        // A forwarded message's parts were counted as the bytes of the message that holds them.
        bytes: partBytes(cursor, node, place, nested ? undefined : ctx.budget),
      };
      if (nested) {
        yield* extractFile(file, place, ctx);
        continue;
      }
      try {
        for await (const event of extractFile(file, place, ctx)) {
          // The consumer's time is not the attachment's time.
          place.deadline.pause();
          yield event;
          place.deadline.resume();
        }
      } catch (err) {
        // A fatal limit stops this attachment; the rest of the message goes on.
        if (!(err instanceof ExtractError)) throw err;
        if (!err.reported) yield unscannableEvent(current, err.reason);
      }
    }
  } catch (err) {
    // Errors of the source (I/O, or a limit hit by the bytes of an enclosing item) go on as they are.
    if (!(err instanceof MimeError)) throw err;
    if (nested) throw corrupt(err, nested.path);
    yield unscannableEvent(current, 'corrupt');
  } finally {
    // Whoever reads the enclosing part next must be the only reader.
    await cursor.close();
  }
}

/** Walks a forwarded message from its bytes (a message/rfc822 part or an `.eml` file). */
export function walkNested(bytes: AsyncIterable<Buffer>, place: Place, ctx: ExtractContext): AsyncGenerator<ExtractEvent> {
  return walk(bytes, ctx, place);
}
