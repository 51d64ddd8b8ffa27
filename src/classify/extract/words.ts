import { decodeBytes, normaliseCharset } from './text.js';

/**
 * Header text: RFC 2047 encoded words in any charset, and raw 8-bit UTF-8
 * (SMTPUTF8 or careless mailers), which the MIME splitter hands over as a latin1
 * ("binary") string.
 */

const ENCODED_WORD = /=\?([^?\s]+)\?([BbQq])\?([^?\s]*)\?=/g;

/** A latin1 ("binary") string holding UTF-8 bytes becomes the text they encode; anything else is left alone. */
export function fixBinary(value: string): string {
  if (!/[\x80-\xff]/.test(value) || /[^\x00-\xff]/.test(value)) return value;
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(Buffer.from(value, 'latin1'));
  } catch {
    return value;
  }
}

function wordBytes(encoding: string, text: string): Buffer {
  if (encoding === 'b' || encoding === 'B') return Buffer.from(text, 'base64');
  const bytes: number[] = [];
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x5f) bytes.push(0x20);
    else if (c === 0x3d && /^[0-9A-Fa-f]{2}$/.test(text.slice(i + 1, i + 3))) {
      bytes.push(parseInt(text.slice(i + 1, i + 3), 16));
      i += 2;
    } else bytes.push(c & 0xff);
  }
  return Buffer.from(bytes);
}

/**
 * Decodes the encoded words in an (unfolded) header value. Adjacent encoded
 * words in one charset are joined before decoding, so a multi-byte character
 * split over two words survives; blanks between encoded words are dropped.
 */
export function decodeWords(value: string): string {
  const input = fixBinary(value);
  let out = '';
  let at = 0;
  let pending: { charset: string; bytes: Buffer[] } | undefined;
  const flush = (): void => {
    if (pending) out += decodeBytes(Buffer.concat(pending.bytes), pending.charset);
    pending = undefined;
  };
  for (const m of input.matchAll(ENCODED_WORD)) {
    const between = input.slice(at, m.index);
    if (!pending || !/^[ \t\r\n]*$/.test(between)) {
      flush();
      out += between;
    }
    const charset = normaliseCharset(m[1]);
    const bytes = wordBytes(m[2] ?? 'Q', m[3] ?? '');
    if (pending && pending.charset !== charset) flush();
    if (pending) pending.bytes.push(bytes);
    else pending = { charset, bytes: [bytes] };
    at = m.index + m[0].length;
  }
  flush();
  return out + input.slice(at);
}

/** Unfolds a raw header line (`Subject: …` with CRLF + blank continuations) and returns its decoded value. */
export function headerValue(line: string): string {
  const colon = line.indexOf(':');
  const raw = (colon >= 0 ? line.slice(colon + 1) : line).replace(/\r?\n(?=[ \t])/g, '');
  return decodeWords(raw.trim());
}
