import { looksLikeText } from './text.js';

/**
 * Which extractor reads a file: magic bytes first (a PDF named `.txt` is a
 * PDF, a DOCX sent as `application/octet-stream` is a ZIP container), then
 * the declared content type and the extension, then a look at the bytes.
 *
 * - `pdf`, `zip` (ZIP archives and the OOXML/ODF documents inside ZIP
 *   containers), `ole` (legacy Office container; only checked for an
 *   encrypted OOXML package), `eml` (a forwarded message), `html`, `text`
 *   (TXT, CSV, XML, JSON and other text, read as text);
 * - `sealed`: S/MIME or OpenPGP encrypted content (unscannable: `encrypted`);
 * - `unsupported`: archives and documents Zegel recognises but cannot open
 *   (7z, RAR, gzip, bzip2, xz, tar, TNEF winmail.dat); unscannable, so the
 *   shipped policy encrypts them (fail closed);
 * - `skip`: images, audio, video and other binaries are not read; they yield
 *   no text and no unscannable event (their file name is still scanned).
 */
export type Kind = 'pdf' | 'zip' | 'ole' | 'eml' | 'html' | 'text' | 'sealed' | 'unsupported' | 'skip';

const SEALED_TYPES = /^application\/(?:pkcs7-mime|x-pkcs7-mime|pgp-encrypted)$/;
const SEALED_EXTENSIONS = new Set(['p7m', 'pgp', 'gpg']);
const UNSUPPORTED_TYPES = /^application\/(?:x-7z-compressed|x-rar-compressed|vnd\.rar|x-rar|gzip|x-gzip|x-tar|x-gtar|x-bzip2|x-xz|ms-tnef|vnd\.ms-tnef)$/;
const UNSUPPORTED_EXTENSIONS = new Set(['7z', 'rar', 'gz', 'tgz', 'tar', 'bz2', 'tbz2', 'xz', 'txz', 'tnef']);

/** Bytes to look at before choosing. */
export const SNIFF_BYTES = 4096;

const ZIP_TYPES = /^application\/(?:zip|x-zip|x-zip-compressed|vnd\.openxmlformats-officedocument\..*|vnd\.oasis\.opendocument\..*|vnd\.ms-(?:word|excel|powerpoint)\..*macroenabled.*)$/;
const ZIP_EXTENSIONS = new Set(['zip', 'docx', 'docm', 'dotx', 'xlsx', 'xlsm', 'xltx', 'pptx', 'pptm', 'ppsx', 'odt', 'ods', 'odp', 'ott', 'ots']);
const HTML_EXTENSIONS = new Set(['html', 'htm', 'xhtml', 'shtml']);
const TEXT_EXTENSIONS = new Set(['txt', 'text', 'csv', 'tsv', 'tab', 'json', 'xml', 'log', 'md', 'rtf', 'ics', 'vcf', 'ini', 'yaml', 'yml', 'svg']);
const TEXT_TYPES = /^(?:text\/.*|application\/(?:json|xml|csv|rtf|x-yaml|yaml|ld\+json)|.*\+(?:xml|json))$/;
const BINARY_TYPES = /^(?:image|audio|video|font)\//;

export function extension(name: string | undefined): string {
  const m = /\.([A-Za-z0-9]{1,8})$/.exec(name ?? '');
  return m?.[1]?.toLowerCase() ?? '';
}

function startsWith(head: Buffer, bytes: number[]): boolean {
  return bytes.every((b, i) => head[i] === b);
}

export function detectKind(head: Buffer, name: string | undefined, contentType: string | undefined): Kind {
  const type = (contentType ?? '').toLowerCase().trim();
  const ext = extension(name);

  // Magic bytes at the start.
  if (startsWith(head, [0x25, 0x50, 0x44, 0x46, 0x2d])) return 'pdf';
  if (startsWith(head, [0x50, 0x4b]) && (head[2] === 3 || head[2] === 5 || head[2] === 7) && head[3] === head[2] + 1) return 'zip';
  if (startsWith(head, [0xd0, 0xcf, 0x11, 0xe0, 0xa1, 0xb1, 0x1a, 0xe1])) return 'ole';
  if (
    startsWith(head, [0x37, 0x7a, 0xbc, 0xaf, 0x27, 0x1c]) || // 7z
    startsWith(head, [0x52, 0x61, 0x72, 0x21, 0x1a, 0x07]) || // RAR
    startsWith(head, [0x1f, 0x8b]) || // gzip
    startsWith(head, [0x42, 0x5a, 0x68]) || // bzip2
    startsWith(head, [0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]) || // xz
    startsWith(head, [0x78, 0x9f, 0x3e, 0x22]) || // TNEF
    head.subarray(257, 262).toString('latin1') === 'ustar' // tar
  ) {
    return 'unsupported';
  }
  if (head.subarray(0, 64).toString('latin1').includes('-----BEGIN PGP MESSAGE-----')) return 'sealed';

  // What the sender says.
  if (SEALED_TYPES.test(type) || SEALED_EXTENSIONS.has(ext)) return 'sealed';
  if (UNSUPPORTED_TYPES.test(type) || UNSUPPORTED_EXTENSIONS.has(ext) || (name ?? '').toLowerCase() === 'winmail.dat') return 'unsupported';
  if (type === 'message/rfc822' || type === 'message/global' || ext === 'eml') return 'eml';
  if (type === 'application/pdf' || type === 'application/x-pdf' || ext === 'pdf') return 'pdf';
  if (ZIP_TYPES.test(type) || ZIP_EXTENSIONS.has(ext)) return 'zip';
  if (type === 'text/html' || type === 'application/xhtml+xml' || HTML_EXTENSIONS.has(ext)) return looksLikeText(head) ? 'html' : 'skip';
  if (TEXT_TYPES.test(type) || TEXT_EXTENSIONS.has(ext)) return looksLikeText(head) ? 'text' : 'skip';
  if (BINARY_TYPES.test(type)) return 'skip';

  // Unknown or generic (application/octet-stream): a PDF after some leading
  // junk (readers accept that), else read it if it is text.
  if (head.subarray(0, 1024).includes('%PDF-')) return 'pdf';
  return head.length && looksLikeText(head) ? 'text' : 'skip';
}
