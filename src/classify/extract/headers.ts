import { decodeBytes } from './text.js';
import { decodeWords } from './words.js';

/**
 * MIME header blocks: the raw lines of one part's header, unfolded on
 * demand, and the fields the walker needs (content type, charset, transfer
 * encoding, disposition, file name, format=flowed, multipart boundary).
 *
 * Header text is kept as a latin1 ("binary") string, one character per byte,
 * as mail headers may carry raw 8-bit bytes; `fixBinary` (words.ts) turns
 * UTF-8 among them into text where a value is shown. Parameters follow
 * RFC 2045 (quoted strings, backslash escapes) and RFC 2231 (`name*0`,
 * `name*=charset'lang'%XX`); encoded words (RFC 2047) in a file name are
 * decoded. The rules are those of the splitter Zegel used before (mailsplit
 * with libmime), so messages read the same.
 */

export interface HeaderLine {
  /** The field name, lower case, trimmed. */
  key: string;
  /** The whole raw line, continuation lines joined with CRLF (`Subject: a\r\n b`). */
  line: string;
}

export class HeaderBlock {
  readonly lines: readonly HeaderLine[];

  constructor(raw: Buffer) {
    let text = raw.toString('latin1');
    let end = text.length;
    while (end > 0 && (text.charCodeAt(end - 1) === 0x0a || text.charCodeAt(end - 1) === 0x0d)) end--;
    text = text.slice(0, end);
    const lines: string[] = [];
    for (const line of text.split(/\r?\n/)) {
      const c = line.charCodeAt(0);
      // A line that starts with a blank continues the field before it.
      if (lines.length && (c === 0x20 || c === 0x09)) lines[lines.length - 1] += `\r\n${line}`;
      else lines.push(line);
    }
    // An mbox `From ` line (or an HTTP request line) before the header is no field.
    if (lines.length && /^(?:From |POST )/i.test(lines[0] as string)) lines.shift();
    this.lines = lines.map((line) => ({ key: line.slice(0, Math.max(0, line.indexOf(':'))).toLowerCase().trim(), line }));
  }

  /** Every raw line of a field, in order. */
  get(key: string): string[] {
    const k = key.toLowerCase();
    return this.lines.filter((l) => l.key === k).map((l) => l.line);
  }

  /** The unfolded, trimmed value of the first field named `key`; '' when there is none. */
  first(key: string): string {
    const k = key.toLowerCase();
    const found = this.lines.find((l) => l.key === k);
    if (!found) return '';
    const line = found.line.replace(/(?:\r?\n|\r)[ \t]*/g, ' ').trim();
    return /^\s*[^:]+:(.*)$/.exec(line)?.[1]?.trim() ?? '';
  }
}

/** A structured header value: `text/plain; charset="utf-8"` → value and lower-case parameter names. */
export interface HeaderValue {
  value: string;
  params: Record<string, string>;
}

/**
 * Parses a structured header value. Quotes and backslash escapes are
 * removed; RFC 2231 sections (`name*0`, `name*1*`) are joined and, with a
 * charset (`name*=utf-8''verslag%20cli%C3%ABnt`), decoded; other joined
 * values have their encoded words decoded.
 */
export function parseHeaderValue(str: string): HeaderValue {
  const params = new Map<string, string>();
  let value = '';
  let key: string | undefined;
  let inKey = false;
  let main: string | undefined;
  let quote = false;
  let escaped = false;
  for (let i = 0; i < str.length; i++) {
    const ch = str.charAt(i);
    if (inKey) {
      if (ch === '=') {
        key = value.trim().toLowerCase();
        inKey = false;
        value = '';
      } else value += ch;
      continue;
    }
    if (escaped) value += ch;
    else if (ch === '\\') {
      escaped = true;
      continue;
    } else if (quote && ch === '"') quote = false;
    else if (!quote && ch === '"') quote = true;
    else if (!quote && ch === ';') {
      if (key === undefined) main = value.trim();
      else params.set(key, value.trim());
      inKey = true;
      value = '';
    } else value += ch;
    escaped = false;
  }
  value = value.trim();
  if (!inKey) {
    if (key === undefined) main = value;
    else params.set(key, value);
  } else if (value) {
    // A parameter without a value: `attachment; inline`.
    params.set(value.toLowerCase(), '');
  }

  // RFC 2231: gather the sections of each continued or charset-tagged parameter.
  const continued = new Map<string, { charset: string | undefined; sections: Array<{ nr: number; value: string }> }>();
  for (const [name, raw] of [...params]) {
    const m = /\*((\d+)\*?)?$/.exec(name);
    if (!m) continue;
    const base = name.slice(0, m.index).toLowerCase();
    const nr = Number(m[2]) || 0;
    let entry = continued.get(base);
    if (!entry) {
      entry = { charset: undefined, sections: [] };
      continued.set(base, entry);
    }
    let section = raw;
    const tagged = nr === 0 && m[0].endsWith('*') ? /^([^']*)'[^']*'(.*)$/.exec(raw) : null;
    if (tagged) {
      entry.charset = tagged[1] || 'utf-8';
      section = tagged[2] ?? '';
    }
    entry.sections.push({ nr, value: section });
    params.delete(name);
    // A continued parameter replaces a plain one of the same name.
    params.delete(base);
  }
  for (const [base, entry] of continued) {
    const joined = entry.sections
      .sort((a, b) => a.nr - b.nr)
      .map((s) => s.value)
      .join('');
    params.set(base, entry.charset ? decodeBytes(percentBytes(joined), entry.charset) : decodeWords(joined));
  }
  return { value: main ?? '', params: Object.fromEntries(params) };
}

/** `%XX` escapes as bytes; any other character as its UTF-8 bytes. */
function percentBytes(s: string): Buffer {
  const out: number[] = [];
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c === 0x25 && /^[0-9A-Fa-f]{2}$/.test(s.slice(i + 1, i + 3))) {
      out.push(parseInt(s.slice(i + 1, i + 3), 16));
      i += 2;
    } else if (c < 0x80) out.push(c);
    else out.push(...Buffer.from(s.charAt(i), 'utf8'));
  }
  return Buffer.from(out);
}

/**
 * The type a named part without a Content-Type header is taken for, from its
 * extension (libmime's table, for the kinds the extractors tell apart);
 * unknown extensions are application/octet-stream.
 */
const TYPE_OF_EXTENSION: Record<string, string> = {
  pdf: 'application/pdf',
  zip: 'application/zip',
  eml: 'message/rfc822',
  mht: 'message/rfc822',
  txt: 'text/plain',
  text: 'text/plain',
  log: 'text/plain',
  csv: 'text/csv',
  tsv: 'text/tab-separated-values',
  htm: 'text/html',
  html: 'text/html',
  xml: 'application/xml',
  json: 'application/json',
  ics: 'text/calendar',
  vcf: 'text/vcard',
  rtf: 'application/rtf',
  md: 'text/markdown',
  yaml: 'text/yaml',
  yml: 'text/yaml',
  docx: 'application/vnd.openxmlformats-officedocument.wordprocessingml.document',
  xlsx: 'application/vnd.openxmlformats-officedocument.spreadsheetml.sheet',
  pptx: 'application/vnd.openxmlformats-officedocument.presentationml.presentation',
  odt: 'application/vnd.oasis.opendocument.text',
  ods: 'application/vnd.oasis.opendocument.spreadsheet',
  odp: 'application/vnd.oasis.opendocument.presentation',
  doc: 'application/msword',
  xls: 'application/vnd.ms-excel',
  ppt: 'application/vnd.ms-powerpoint',
  p7m: 'application/pkcs7-mime',
  gz: 'application/gzip',
  tgz: 'application/gzip',
  '7z': 'application/x-7z-compressed',
  rar: 'application/vnd.rar',
  tar: 'application/x-tar',
  bz2: 'application/x-bzip2',
  xz: 'application/x-xz',
  svg: 'image/svg+xml',
  png: 'image/png',
  jpg: 'image/jpeg',
  jpeg: 'image/jpeg',
  jpe: 'image/jpeg',
  gif: 'image/gif',
  bmp: 'image/bmp',
  webp: 'image/webp',
  tif: 'image/tiff',
  tiff: 'image/tiff',
  ico: 'image/vnd.microsoft.icon',
  heic: 'image/heic',
  heif: 'image/heif',
  avif: 'image/avif',
  mp3: 'audio/mpeg',
  wav: 'audio/wav',
  m4a: 'audio/mp4',
  ogg: 'audio/ogg',
  oga: 'audio/ogg',
  flac: 'audio/x-flac',
  aac: 'audio/x-aac',
  wma: 'audio/x-ms-wma',
  amr: 'audio/amr',
  mp4: 'video/mp4',
  m4v: 'video/x-m4v',
  mov: 'video/quicktime',
  avi: 'video/x-msvideo',
  mkv: 'video/x-matroska',
  webm: 'video/webm',
  wmv: 'video/x-ms-wmv',
  mpg: 'video/mpeg',
  mpeg: 'video/mpeg',
  '3gp': 'video/3gpp',
  ttf: 'font/ttf',
  otf: 'font/otf',
  woff: 'font/woff',
  woff2: 'font/woff2',
};

/** The extension of a file name as path.posix.parse sees it (`a.tar.gz` → `gz`, `.profile` → ''). */
function extensionOf(name: string): string {
  const base = name.replace(/\/+$/, '').split('/').pop() ?? '';
  const dot = base.lastIndexOf('.');
  return dot > 0 ? base.slice(dot + 1) : '';
}

/** The part fields the walker reads, from a parsed header block. */
export interface PartFields {
  /** Lower case (`text/plain`); false when the header gives none. */
  contentType: string | false;
  charset: string | false;
  filename: string | false;
  /** Lower case (`attachment`, `inline`); false when there is none. */
  disposition: string | false;
  /** Lower case, comments removed (`base64`); '' when there is none. */
  encoding: string;
  /** The subtype of a multipart (`mixed`); false for a leaf part. */
  multipart: string | false;
  /** The multipart boundary as bytes; false when there is none. */
  boundary: Buffer | false;
  flowed: boolean;
  delSp: boolean;
}

export function partFields(headers: HeaderBlock): PartFields {
  const disposition = parseHeaderValue(headers.first('content-disposition'));
  let contentHeader: string;
  if (headers.get('content-type').length) contentHeader = headers.first('content-type');
  else {
    // No Content-Type: from the file name's extension, else by disposition.
    const ext = extensionOf(disposition.params.filename ?? '');
    if (ext) contentHeader = TYPE_OF_EXTENSION[ext.toLowerCase().replace(/\s/g, '')] ?? 'application/octet-stream';
    else contentHeader = /^attachment$/i.test(disposition.value) ? 'application/octet-stream' : 'text/plain';
  }
  const type = parseHeaderValue(contentHeader);
  const contentType = type.value.toLowerCase().trim() || false;
  let dispositionValue: string | false = disposition.value.toLowerCase().trim() || false;
  if (dispositionValue && dispositionValue.includes('=?')) dispositionValue = decodeWords(dispositionValue);
  const rawName = disposition.params.filename || type.params.name || '';
  const slash = contentType ? contentType.indexOf('/') : -1;
  const format = (type.params.format ?? '').toLowerCase().trim();
  const flowed = format === 'flowed';
  return {
    contentType,
    charset: type.params.charset || false,
    filename: rawName ? decodeWords(rawName) || false : false,
    disposition: dispositionValue,
    encoding: headers
      .first('content-transfer-encoding')
      .replace(/\(.*\)/g, '')
      .toLowerCase()
      .trim(),
    multipart: (contentType && contentType.slice(0, slash) === 'multipart' && contentType.slice(slash + 1)) || false,
    boundary: type.params.boundary ? Buffer.from(type.params.boundary) : false,
    flowed,
    delSp: flowed && (type.params.delsp ?? '').toLowerCase().trim() === 'yes',
  };
}
