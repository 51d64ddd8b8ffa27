import { SaxesParser } from 'saxes';
import type { Bytes } from './bytes.js';
import { corrupt, type Place } from './limits.js';
import { bomCharset, charDecoder } from './text.js';

/**
 * Streaming XML text extraction with saxes for the XML parts of OOXML and
 * ODF documents. saxes does not expand entities declared in a DTD, so no
 * entity bomb; malformed XML is `corrupt`.
 */

/** Receives parser events (local names, prefixes dropped) and collects text. */
export abstract class XmlText {
  private out: string[] = [];

  abstract open(name: string, attrs: Record<string, string>): void;
  abstract close(name: string): void;
  abstract text(text: string): void;

  protected emit(s: string): void {
    if (!s) return;
    this.out.push(s);
  }

  take(): string {
    const s = this.out.join('');
    this.out = [];
    return s;
  }
}

function localName(name: string): string {
  const colon = name.indexOf(':');
  return colon < 0 ? name : name.slice(colon + 1);
}

/** Parses an XML byte stream, yielding the reader's text piece by piece. */
export async function* xmlText(bytes: Bytes, reader: XmlText, place: Place): AsyncGenerator<string> {
  const parser = new SaxesParser({ position: false });
  parser.on('opentag', (tag) => reader.open(localName(tag.name), tag.attributes as Record<string, string>));
  parser.on('closetag', (tag) => reader.close(localName(tag.name)));
  parser.on('text', (text) => reader.text(text));
  parser.on('cdata', (text) => reader.text(text));
  let decoder: ReturnType<typeof charDecoder> | undefined;
  const write = (s: string): void => {
    try {
      parser.write(s);
    } catch (err) {
      throw corrupt(err);
    }
  };
  for await (const piece of bytes) {
    decoder ??= charDecoder(bomCharset(piece) ?? 'utf-8');
    write(decoder.write(piece));
    place.deadline.check();
    const text = reader.take();
    if (text) yield text;
  }
  if (decoder) write(decoder.end() ?? '');
  try {
    parser.close();
  } catch (err) {
    throw corrupt(err);
  }
  const text = reader.take();
  if (text) yield text;
}
