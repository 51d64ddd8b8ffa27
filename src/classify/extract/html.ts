import { compile } from 'html-to-text';
import { corrupt } from './limits.js';

/**
 * HTML to plain text with html-to-text. Visible text only: link targets,
 * images (alt text and data: URIs), scripts and styles are left out, so a
 * tracking number in a URL or a base64 image does not read as an identifier.
 * No word wrapping (it could break `123 456 782` over two lines); table
 * cells are separated by a tab and rows by a line end (no column padding, so
 * the output stays linear in the input even for hostile tables).
 */
const convert = compile({
  wordwrap: false,
  formatters: {
    cell(elem, walk, builder) {
      walk(elem.children, builder);
      builder.addLiteral('\t');
    },
  },
  selectors: [
    { selector: 'a', options: { ignoreHref: true } },
    { selector: 'img', format: 'skip' },
    { selector: 'script', format: 'skip' },
    { selector: 'style', format: 'skip' },
    { selector: 'h1', options: { uppercase: false } },
    { selector: 'h2', options: { uppercase: false } },
    { selector: 'h3', options: { uppercase: false } },
    { selector: 'h4', options: { uppercase: false } },
    { selector: 'h5', options: { uppercase: false } },
    { selector: 'h6', options: { uppercase: false } },
    { selector: 'table', format: 'block' },
    { selector: 'tr', format: 'block', options: { leadingLineBreaks: 1, trailingLineBreaks: 1 } },
    { selector: 'td', format: 'cell' },
    { selector: 'th', format: 'cell' },
  ],
});

/** HTML is converted in segments of about this many characters, cut after a tag. */
export const HTML_SEGMENT = 1024 * 1024;

/** Converts one HTML segment; a document html-to-text cannot handle (e.g. nesting too deep) is corrupt. */
export function htmlToText(html: string): string {
  try {
    return convert(html);
  } catch (err) {
    throw corrupt(err);
  }
}

/** Where to end a segment: after a closing block tag near the end, else after any tag, else at `max`. */
function segmentEnd(html: string, max: number): number {
  const from = Math.max(0, max - 64 * 1024);
  const window = html.slice(from, max);
  const block = /<\/(?:p|div|table|tr|li|ul|ol|h[1-6]|blockquote|pre|body)\s*>|<br\s*\/?>/gi;
  let end = -1;
  for (const m of window.matchAll(block)) end = m.index + m[0].length;
  if (end < 0) end = window.lastIndexOf('>') + 1;
  return end > 0 ? from + end : max;
}

/**
 * Converts a stream of HTML strings to text strings, segment by segment, so a
 * large HTML body never sits whole in memory and its text arrives in order.
 */
export async function* htmlStream(strings: AsyncIterable<string>, segment = HTML_SEGMENT): AsyncGenerator<string> {
  let buffer = '';
  for await (const s of strings) {
    buffer += s;
    while (buffer.length >= segment) {
      const end = segmentEnd(buffer, segment);
      const text = htmlToText(buffer.slice(0, end));
      buffer = buffer.slice(end);
      if (text) yield `${text}\n`;
    }
  }
  if (buffer) {
    const text = htmlToText(buffer);
    if (text) yield text;
  }
}
