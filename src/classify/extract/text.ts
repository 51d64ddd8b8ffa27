import iconv from 'iconv-lite';
import type { Bytes } from './bytes.js';

/**
 * Decoding bytes to text in any charset, piece by piece, and cutting long
 * texts into chunks of bounded size.
 */

/**
 * Most characters in one text chunk: 60 Ki UTF-16 code units (120 KiB).
 * Small enough that a chunk, and the chunk plus the rules engine's overlap,
 * stays below V8's large-object size (128 KiB): such strings are allocated
 * and die young in the new space, and a 200 MB body is classified in flat
 * memory and without a large-object allocation per chunk (64 Ki two-byte
 * chunks were just over it and cost more to join and flatten than the
 * detectors took to read them; 512 Ki chunks doubled the relay's peak RSS).
 */
export const CHUNK_CHARS = 60 * 1024;

export interface CharDecoder {
  write(input: Buffer): string;
  end(): string | undefined;
}

/**
 * Labels decoded as windows-1252: as browsers do (WHATWG), because mailers
 * label windows-1252 text (€, curly quotes) as iso-8859-1 or us-ascii.
 */
const WINDOWS_1252 = new Set(['iso-8859-1', 'iso8859-1', 'latin1', 'latin-1', 'l1', 'iso_8859-1', 'cp819', 'ibm819', 'windows-1252', 'cp1252', 'x-cp1252']);

/** Labels read as UTF-8, falling back to windows-1252 when the bytes are not valid UTF-8. */
const UTF8_OR_GUESS = new Set(['', 'us-ascii', 'ascii', 'ansi_x3.4-1968', 'utf-8', 'utf8', 'unicode-1-1-utf-8']);

/**
 * UTF-8 until the first invalid sequence, windows-1252 from that byte on.
 * Covers undeclared and mislabelled 8-bit text (a Dutch `ë` in latin1 would
 * otherwise become U+FFFD and escape the word lists). Where the switch falls
 * does not depend on how the bytes are cut into pieces.
 */
class Utf8OrLegacy implements CharDecoder {
  private utf8: TextDecoder | undefined = new TextDecoder('utf-8', { fatal: true, ignoreBOM: false });
  private legacy: CharDecoder | undefined;
  /** The bytes of an incomplete sequence at the end of the input so far (held inside `utf8`). */
  private partial: Buffer = EMPTY;
  private started = false;

  write(input: Buffer): string {
    if (this.utf8) {
      try {
        const text = this.utf8.decode(input, { stream: true });
        this.partial = incompleteTail(this.partial, input);
        this.started ||= input.length > 0;
        return text;
      } catch {
        const bytes = this.partial.length ? Buffer.concat([this.partial, input]) : input;
        const valid = validUtf8Prefix(bytes);
        // A byte-order mark is dropped only at the very start, as the stream decoder does.
        const head = valid ? new TextDecoder('utf-8', { ignoreBOM: this.started }).decode(bytes.subarray(0, valid)) : '';
        this.utf8 = undefined;
        this.partial = EMPTY;
        this.legacy = iconv.getDecoder('windows-1252');
        return head + this.legacy.write(bytes.subarray(valid));
      }
    }
    return (this.legacy as CharDecoder).write(input);
  }

  end(): string | undefined {
    if (this.utf8) {
      try {
        return this.utf8.decode();
      } catch {
        // The text ends inside a sequence: those last bytes are windows-1252 too.
        return iconv.decode(this.partial, 'windows-1252');
      }
    }
    return this.legacy?.end() ?? '';
  }
}

const EMPTY = Buffer.alloc(0);

/** Bytes a UTF-8 lead byte starts (1 for ASCII and stray bytes). */
function sequenceLength(b: number): number {
  return b >= 0xf0 ? 4 : b >= 0xe0 ? 3 : b >= 0xc0 ? 2 : 1;
}

/** The incomplete sequence at the end of valid UTF-8 (`before` + `input`), copied; empty when it ends whole. */
function incompleteTail(before: Buffer, input: Buffer): Buffer {
  const tail = input.length >= 3 ? input.subarray(input.length - 3) : Buffer.concat([before, input]).subarray(-3);
  for (let k = tail.length - 1; k >= 0; k--) {
    const b = tail[k] as number;
    if ((b & 0xc0) === 0x80) continue;
    return tail.length - k < sequenceLength(b) ? Buffer.from(tail.subarray(k)) : EMPTY;
  }
  return EMPTY;
}

/** Length of the longest prefix of `bytes` that is whole, valid UTF-8. */
function validUtf8Prefix(bytes: Buffer): number {
  const accepts = (n: number): boolean => {
    try {
      new TextDecoder('utf-8', { fatal: true }).decode(bytes.subarray(0, n), { stream: true });
      return true;
    } catch {
      return false;
    }
  };
  // A prefix that is valid (an incomplete sequence at its end allowed) stays valid when cut shorter.
  let lo = 0;
  let hi = bytes.length;
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1;
    if (accepts(mid)) lo = mid;
    else hi = mid - 1;
  }
  return lo - incompleteTail(EMPTY, bytes.subarray(0, lo)).length;
}

/** Normalises a MIME charset label (`"UTF-8"`, `utf-8*nl`, `'ISO-8859-1'`). */
export function normaliseCharset(label: string | false | undefined): string {
  return (label || '')
    .replace(/\*.*$/, '')
    .replace(/^["']|["']$/g, '')
    .trim()
    .toLowerCase();
}

/** A streaming decoder for `charset`; unknown labels read as UTF-8 with the windows-1252 fallback. */
export function charDecoder(charset: string | false | undefined): CharDecoder {
  const label = normaliseCharset(charset);
  if (UTF8_OR_GUESS.has(label)) return new Utf8OrLegacy();
  if (WINDOWS_1252.has(label)) return iconv.getDecoder('windows-1252');
  if (iconv.encodingExists(label)) {
    try {
      return iconv.getDecoder(label);
    } catch {
      // An alias iconv-lite knows but cannot decode with: fall through.
    }
  }
  return new Utf8OrLegacy();
}

/** Decodes a whole (short) buffer, e.g. an encoded word in a header. */
export function decodeBytes(buf: Buffer, charset: string | false | undefined): string {
  const d = charDecoder(charset);
  return d.write(buf) + (d.end() ?? '');
}

/** The charset a byte-order mark announces, if any. */
export function bomCharset(head: Buffer): string | undefined {
  if (head[0] === 0xef && head[1] === 0xbb && head[2] === 0xbf) return 'utf-8';
  if (head[0] === 0xff && head[1] === 0xfe) return 'utf-16le';
  if (head[0] === 0xfe && head[1] === 0xff) return 'utf-16be';
  return undefined;
}

/** Decodes a byte stream to strings (one per piece). */
export async function* decodeStream(bytes: Bytes, charset: string | false | undefined): AsyncGenerator<string> {
  const decoder = charDecoder(charset);
  for await (const piece of bytes) {
    const text = decoder.write(piece);
    if (text) yield text;
  }
  const tail = decoder.end();
  if (tail) yield tail;
}

/**
 * format=flowed (RFC 3676): a line ending in a space continues on the next
 * line. Joining them keeps a grouped number (`123 456 782`) on one line.
 */
export async function* unflow(strings: AsyncIterable<string>, delSp: boolean): AsyncGenerator<string> {
  let carry = '';
  // The last characters given out (as they were), so that `^--` sees the line start whatever the pieces.
  let before = '';
  for await (const s of strings) {
    let text = carry + s;
    // A line end may be split between pieces: keep a trailing space (+CR) for the next piece.
    const m = / \r?$/.exec(text);
    carry = m ? text.slice(m.index) : '';
    if (m) text = text.slice(0, m.index);
    if (!text) continue;
    // The signature separator `-- ` is a hard line end.
    const at = before.length;
    const joined = (before + text).replace(/(?<!^--) \r?\n/gm, (match: string, offset: number) => (offset < at ? match : delSp ? '' : ' ')).slice(at);
    before = (before + text).slice(-3);
    if (joined) yield joined;
  }
  if (carry) yield carry;
}

/** Where to cut `text` to at most `max` characters: at a line end or blank near the end, never inside a surrogate pair. */
function cutPoint(text: string, max: number): number {
  const window = Math.min(4096, max >> 2);
  for (let i = max; i > max - window; i--) {
    const c = text.charCodeAt(i - 1);
    if (c === 0x0a || c === 0x20 || c === 0x09) return i;
  }
  const c = text.charCodeAt(max - 1);
  return c >= 0xd800 && c <= 0xdbff ? max - 1 : max;
}

/**
 * Regroups strings into chunks of at most `max` characters: small pieces are
 * joined (fewer, larger chunks for the detectors), long texts are cut. Only
 * `max` characters are joined at a time, so no string longer than a chunk
 * is built here, however long the input strings are.
 */
export async function* rechunk(strings: AsyncIterable<string>, max = CHUNK_CHARS): AsyncGenerator<string> {
  let parts: string[] = [];
  let size = 0;
  for await (let s of strings) {
    while (s) {
      if (size + s.length < max) {
        parts.push(s);
        size += s.length;
        break;
      }
      const take = max - size;
      parts.push(take === s.length ? s : s.slice(0, take));
      s = take === s.length ? '' : s.slice(take);
      const text = parts.length === 1 ? (parts[0] as string) : parts.join('');
      const at = cutPoint(text, max);
      yield at === text.length ? text : text.slice(0, at);
      const rest = at === text.length ? '' : text.slice(at);
      parts = rest ? [rest] : [];
      size = rest.length;
    }
  }
  if (size) yield parts.join('');
}

/** True when a piece of bytes looks like text (no NUL, few control characters). */
export function looksLikeText(head: Buffer): boolean {
  if (bomCharset(head)) return true;
  if (!head.length) return true;
  let control = 0;
  for (const c of head) {
    if (c === 0) return false;
    if (c < 0x20 && c !== 0x09 && c !== 0x0a && c !== 0x0d && c !== 0x0c && c !== 0x1b) control++;
  }
  return control / head.length < 0.01;
}
