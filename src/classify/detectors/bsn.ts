/**
 * BSN detector: the Dutch citizen service number (burgerservicenummer).
 *
 * What counts:
 * - 9 digits as one run (`123456782`) or grouped with one kind of separator,
 *   space, dot or hyphen, as 3-3-3 (`123 456 782`, `123.456.782`,
 *   `123-456-782`) or 4-2-3 (`1234.56.782`);
 * - that pass the 11-proef (9·d1 + 8·d2 + … + 2·d8 − 1·d9 ≡ 0 mod 11, not all zeros);
 * - old 8-digit numbers (an implied leading zero) only with a BSN keyword
 *   (bsn, burgerservicenummer, sofinummer, citizen service number, …) within
 *   KEYWORD_PROXIMITY characters: one in eleven 8-digit phone or KvK numbers
 *   passes the 11-proef by chance.
 *
 * What does not (digit boundaries):
 * - digits that continue the number: a digit group joined by one space, dot,
 *   hyphen or slash directly before or after (`12 123456782`,
 *   `123 456 782 10`, `2024/123456782`), so phone numbers (`06-12345678`,
 *   `+31 6 12345678`, `0031 612345678`), dates and longer references never
 *   yield a BSN;
 * - digits inside a longer code: a token shaped like an IBAN (two letters, two
 *   digits, then 11–30 letters or digits, valid or not: `NL91ABNA0417164300`),
 *   or a hexadecimal one (hashes, UUIDs and tokens in links: `3fa9123456782bc`);
 * - phone prefixes: `+` directly before (`+31612345678`), or `(0)`
 *   (`+31 (0)612345678`);
 * - amounts: a currency sign (€ $ £) before, or a dotted number followed by
 *   decimals (`123.456.782,00`).
 * Tab, line breaks and runs of two or more spaces separate numbers, so table
 * cells and CSV fields (`1,123456782,2024`) still count on their own. Letters
 * directly before or after do not disqualify a number: text extracted from
 * HTML tables, PDF and DOCX often glues a label to a value (`Nummer302 566 648`),
 * and file names carry numbers between letters (`dossier_123456782.pdf`).
 *
 * Hit.key is the 9 digits (leading zero added for 8-digit numbers),
 * Hit.excerpt `******782` (only the last three digits).
 */
import type { Detector, Hit } from '../types.js';
import { AhoCorasick, keywordWithin } from './wordlist.js';

/** Keywords that make an 8-digit number a BSN (matched as whole words, folded). */
export const BSN_KEYWORDS: readonly string[] = [
  'bsn',
  'bsnnummer',
  'bsn nr',
  'burgerservicenummer',
  'burgerservicenr',
  'burger service nummer',
  'burgerservice nummer',
  'burger servicenummer',
  'sofinummer',
  'sofi nummer',
  'sofinr',
  'sofi nr',
  'fiscaal nummer',
  'fiscaalnummer',
  'citizen service number',
  'citizen service no',
  'citizen service nr',
];

/** Characters between a keyword and an 8-digit number, at most. */
export const KEYWORD_PROXIMITY = 40;

/** Digit groups joined by one space (also no-break, narrow no-break and thin space), dot or hyphen. */
const SEQUENCE = /[0-9]+(?:[ .\-\u00A0\u202F\u2009][0-9]+)*/g;
const GROUP_SEPARATORS = new Set([' ', '.', '-', '\u00A0', '\u202F', '\u2009']);
const CURRENCY = new Set(['€', '$', '£']);

const isDigit = (ch: string | undefined): boolean => ch !== undefined && ch >= '0' && ch <= '9';

/** The 11-proef over 9 digits: 9·d1 + 8·d2 + … + 2·d8 − 1·d9 ≡ 0 (mod 11), and not all zeros. */
export function elfproef(digits: string): boolean {
  if (!/^[0-9]{9}$/.test(digits) || digits === '000000000') return false;
  let sum = 0;
  for (let i = 0; i < 8; i++) sum += (9 - i) * (digits.charCodeAt(i) - 48);
  sum -= digits.charCodeAt(8) - 48;
  return sum % 11 === 0;
}

/** `******782`: only the last three digits. */
export function redactBsn(digits: string): string {
  return `******${digits.slice(-3)}`;
}

/** Candidate shape of one digit-group sequence: its 9 (or 8) digits, or undefined. */
function shape(seq: string): { digits: string; separator: string } | undefined {
  if (/^[0-9]+$/.test(seq)) {
    return seq.length === 9 || seq.length === 8 ? { digits: seq, separator: '' } : undefined;
  }
  const m = /^([0-9]+)(\D)([0-9]+)(\D)([0-9]+)$/.exec(seq);
  if (!m) return undefined;
  const [, a = '', s1 = '', b = '', s2 = '', c = ''] = m;
  if (s1 !== s2) return undefined;
  const lengths = `${a.length}${b.length}${c.length}`;
  if (lengths !== '333' && lengths !== '423') return undefined;
  return { digits: a + b + c, separator: s1 };
}

const isAlnum = (ch: string | undefined): boolean =>
  ch !== undefined && ((ch >= '0' && ch <= '9') || (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z'));

/**
 * True when [start, end) lies inside a longer letters-and-digits token that is
 * a code rather than a label glued to a number: shaped like an IBAN (AA00 plus
 * 11–30 letters or digits, valid or not), or hexadecimal (hashes, UUIDs, tokens in links).
 */
function insideCodeToken(text: string, start: number, end: number): boolean {
  let from = start;
  while (isAlnum(text[from - 1])) from--;
  let to = end;
  while (isAlnum(text[to])) to++;
  if (from === start && to === end) return false;
  const token = text.slice(from, to);
  return /^[A-Za-z]{2}[0-9]{2}[A-Za-z0-9]{11,30}$/.test(token) || /^[0-9A-Fa-f]+$/.test(token);
}

/** True when the text around [start, end) shows the digits are part of something longer. */
function continues(text: string, start: number, end: number, separator: string): boolean {
  const before = text[start - 1];
  const after = text[end];
  // An international phone number: +31612345678 (longer anyway), + 612345678.
  if (before === '+') return true;
  // Continuations the sequence pattern does not join: a slash, or `(0)` of a phone number.
  if (before === '/' && isDigit(text[start - 2])) return true;
  if (after === '/' && isDigit(text[end + 1])) return true;
  if (before === ')' && isDigit(text[start - 2])) return true;
  // A currency sign, directly or one space before: € 123.456.782
  const sign = GROUP_SEPARATORS.has(before ?? '') ? text[start - 2] : before;
  if (sign !== undefined && CURRENCY.has(sign)) return true;
  // Decimals after a number with thousands separators: 123.456.782,00
  if (separator === '.' && after === ',' && isDigit(text[end + 1])) return true;
  return insideCodeToken(text, start, end);
}

/** Finds valid BSNs in text. */
export class BsnDetector implements Detector {
  readonly maxMatchLength = 128;
  readonly #keywords = new AhoCorasick(BSN_KEYWORDS);

  find(text: string): Hit[] {
    const hits: Hit[] = [];
    SEQUENCE.lastIndex = 0;
    for (let m = SEQUENCE.exec(text); m !== null; m = SEQUENCE.exec(text)) {
      const seq = m[0];
      if (seq.length < 8 || seq.length > 11) continue;
      const found = shape(seq);
      if (!found) continue;
      const start = m.index;
      const end = start + seq.length;
      if (continues(text, start, end, found.separator)) continue;
      let digits = found.digits;
      if (digits.length === 8) {
        digits = `0${digits}`;
        if (!elfproef(digits) || !this.#keywordNear(text, start, end)) continue;
      } else if (!elfproef(digits)) {
        continue;
      }
      hits.push({ start, end, excerpt: redactBsn(digits), key: digits });
    }
    return hits;
  }

  /** True when a BSN keyword lies within KEYWORD_PROXIMITY characters of [start, end). */
  #keywordNear(text: string, start: number, end: number): boolean {
    return keywordWithin(this.#keywords, text, start, end, KEYWORD_PROXIMITY);
  }
}
