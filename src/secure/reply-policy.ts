/**
 * What a reply from the reader may carry (checked while src/reader/routes/reply.ts streams an upload). The
 * page checks the same list before it uploads (for a readable message), the
 * server checks again while it streams (the page is not trusted): by file
 * name extension, by the declared content type and by the first bytes
 * (Windows PE, ELF, Mach-O, shell scripts, OneNote, HTML and SVG), whichever
 * the sender's mail client might run or render with script.
 */

/** Extensions that mail clients or operating systems run or install when opened (lower case, with the dot). */
export const BLOCKED_EXTENSIONS: readonly string[] = [
  '.exe', '.com', '.bat', '.cmd', '.scr', '.pif', '.cpl', '.msi', '.msp', '.msc', '.dll', '.sys', '.drv', '.ocx',
  '.vbs', '.vbe', '.js', '.jse', '.wsf', '.wsh', '.wsc', '.hta', '.ps1', '.psm1', '.psd1', '.ps1xml', '.reg', '.inf',
  '.lnk', '.url', '.scf', '.jar', '.app', '.apk', '.dmg', '.pkg', '.deb', '.rpm', '.sh', '.bash', '.csh', '.ksh', '.zsh',
  '.command', '.run', '.bin', '.elf', '.gadget', '.application', '.appref-ms', '.appx', '.appxbundle', '.msix', '.msixbundle',
  '.iso', '.img', '.vhd', '.vhdx', '.docm', '.xlsm', '.pptm', '.xlam', '.ppam', '.dotm', '.xltm', '.potm', '.ppsm', '.sldm',
  '.chm', '.hlp', '.library-ms', '.settingcontent-ms', '.xll', '.py', '.pyw', '.pl', '.rb', '.php',
  // active content: pages and images with script, OneNote and binary workbooks (macro carriers)
  '.html', '.htm', '.xhtml', '.shtml', '.mht', '.mhtml', '.svg', '.svgz', '.one', '.onepkg', '.xlsb',
];

/** Content types of executables and scripts. */
const BLOCKED_TYPES = new Set([
  'application/x-msdownload', 'application/x-msdos-program', 'application/x-ms-installer', 'application/x-msi',
  'application/vnd.microsoft.portable-executable', 'application/x-dosexec', 'application/x-executable', 'application/x-elf',
  'application/x-mach-binary', 'application/x-sharedlib', 'application/x-sh', 'application/x-shellscript', 'application/x-csh',
  'application/x-bat', 'application/x-msdos-batch', 'application/javascript', 'text/javascript', 'application/x-javascript',
  'application/ecmascript', 'text/ecmascript', 'application/hta', 'application/x-ms-shortcut', 'application/java-archive',
  'application/x-java-archive', 'application/vnd.android.package-archive', 'application/x-apple-diskimage', 'text/x-shellscript',
  'application/x-powershell', 'text/vbscript', 'application/x-vbscript', 'application/x-python-code', 'text/x-python',
  'text/html', 'application/xhtml+xml', 'image/svg+xml', 'message/rfc822+html', 'multipart/related', 'application/onenote',
  'application/msonenote', 'application/vnd.ms-excel.sheet.binary.macroenabled.12',
]);

/** OneNote section files start with the GUID {7B5C52E4-D88C-4DA7-AEB1-5378D02996D3}. */
const ONENOTE_MAGIC = Buffer.from('e4525c7b8cd8a74d', 'hex');
/** The start of an HTML page or an SVG image, after white space and a UTF-8 BOM, lower case. */
const MARKUP_STARTS = ['<!doctype html', '<html', '<svg', '<script'];

function extensionOf(name: string): string {
  const base = name.trim().replace(/[\s.]+$/, '').toLowerCase();
  const dot = base.lastIndexOf('.');
  return dot >= 0 ? base.slice(dot) : '';
}

/** True when the name or the declared type is one of an executable or script. */
export function blockedByName(name: string, contentType: string | undefined): boolean {
  const type = (contentType ?? '').split(';')[0]!.trim().toLowerCase();
  return BLOCKED_EXTENSIONS.includes(extensionOf(name)) || BLOCKED_TYPES.has(type);
}

/** How many first bytes blockedByContent wants to see. */
export const CONTENT_HEAD_BYTES = 256;

/**
 * True when the first bytes of a file are those of a program (PE/MZ, ELF,
 * Mach-O, a #! script), a OneNote section, or an HTML page or SVG image
 * (whatever its name says).
 */
export function blockedByContent(head: Buffer): boolean {
  if (head.length >= 8 && head.subarray(0, 8).equals(ONENOTE_MAGIC)) return true;
  const text = head.toString('latin1').replace(/^\xef\xbb\xbf/, '').trimStart().toLowerCase();
  if (MARKUP_STARTS.some((start) => text.startsWith(start))) return true;
  // an XML prologue (and comments) before an svg or html root
  if (text.startsWith('<?xml') && /<(svg|html)[\s>]/.test(text)) return true;
  if (head.length >= 2 && head[0] === 0x4d && head[1] === 0x5a) return true; // MZ
  if (head.length >= 4 && head.readUInt32BE(0) === 0x7f454c46) return true; // \x7fELF
  if (head.length >= 4 && [0xfeedface, 0xfeedfacf, 0xcefaedfe, 0xcffaedfe].includes(head.readUInt32BE(0))) return true; // Mach-O
  if (head.length >= 2 && head[0] === 0x23 && head[1] === 0x21) return true; // #!
  return false;
}

/** A file name fit for a Content-Disposition: no path, no control characters, at most 200 characters. */
export function cleanFileName(name: string | undefined): string {
  const base = (name ?? '').split(/[\\/]/).pop() ?? '';
  // eslint-disable-next-line no-control-regex
  const clean = base.replace(/[\u0000-\u001f\u007f]/g, '').trim().slice(0, 200);
  return clean || 'bijlage.bin';
}

/** "Re: <subject>" on one line, without a second "Re:". */
export function replySubject(original: string): string {
  // eslint-disable-next-line no-control-regex
  const line = original.replace(/[\u0000-\u001f\u007f]+/g, ' ').replace(/\s+/g, ' ').trim().slice(0, 900);
  return /^(re|antw|aw)\s*:/i.test(line) ? line : `Re: ${line}`.trimEnd();
}

/** First byte of a Zegel blob: a new-format OpenPGP packet, tag 18 (SEIPD). */
const SEIPD_TAG = 0xd2;

/** The recipient's copy must be ciphertext (its first byte): never store what the page might have sent in clear. */
export function isEncryptedCopy(firstByte: number | undefined): boolean {
  return firstByte === SEIPD_TAG;
}
