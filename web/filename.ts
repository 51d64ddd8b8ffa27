/**
 * A file name that is safe to offer as a download on every common system:
 * no directories, no control or bidirectional-override characters, no
 * characters Windows forbids, no leading dots (hidden files), no reserved
 * Windows device names, at most 150 characters with the extension kept.
 * Pure: no DOM, so the Node tests import it.
 */

export const MAX_FILE_NAME = 150;

// C0 and C1 controls, DEL, and the invisible formatting characters that can
// make "factuur‮fdp.exe" look like a PDF: bidi marks, embeddings, overrides and
// isolates, zero-width characters, the BOM, and Unicode line/paragraph separators.
// eslint-disable-next-line no-control-regex
const INVISIBLE = /[\u0000-\u001f\u007f-\u009f\u061c\u200b-\u200f\u2028-\u202e\u2060-\u2064\u2066-\u206f\ufeff\ufff9-\ufffb]/g;
const WINDOWS_FORBIDDEN = /[<>:"|?*]/g;
const RESERVED = /^(con|prn|aux|nul|com[0-9¹²³]|lpt[0-9¹²³]|conin\$|conout\$)$/i;

function codePoints(s: string): string[] {
  return Array.from(s);
}

export function safeFileName(name: string, fallback = 'bijlage'): string {
  let s = typeof name === 'string' ? name.normalize('NFC') : '';
  // keep only the last path segment (both separators), as mail clients do
  const parts = s.split(/[/\\]+/).filter((p) => p.length > 0);
  s = parts.length > 0 ? (parts[parts.length - 1] as string) : '';
  s = s.replace(INVISIBLE, '').replace(WINDOWS_FORBIDDEN, '_');
  s = s.replace(/\s+/g, ' ');
  // no hidden files, no ".." ; Windows drops trailing dots and spaces
  s = s.replace(/^[.\s]+/, '').replace(/[.\s]+$/, '');
  if (s.length === 0) return fallback;

  const dot = s.lastIndexOf('.');
  let stem = dot > 0 ? s.slice(0, dot) : s;
  let ext = dot > 0 ? s.slice(dot) : '';
  // an "extension" that is really a long tail of text is part of the stem
  if (codePoints(ext).length > 16) {
    stem = s;
    ext = '';
  }
  // CON, nul.txt, com1.tar.gz, … are device names on Windows whatever follows
  const firstPart = (stem.split('.')[0] ?? '').trim();
  if (RESERVED.test(firstPart)) stem = `_${stem}`;

  const room = MAX_FILE_NAME - codePoints(ext).length;
  const stemPoints = codePoints(stem);
  if (stemPoints.length > room) stem = stemPoints.slice(0, room).join('').replace(/[.\s]+$/, '');
  if (stem.length === 0) stem = fallback;
  return stem + ext;
}
