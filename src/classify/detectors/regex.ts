/**
 * Regex detector for organisation-specific identifiers (patient numbers,
 * case numbers, …). Patterns are compiled with RE2, which runs in time linear
 * in the text: no pattern can backtrack catastrophically. RE2 refuses what it
 * cannot run in linear time (backreferences, lookahead, lookbehind); such a
 * pattern, or bad flags, raise a PatternError (code ZEGEL_RULE_PATTERN).
 *
 * Options:
 * - checksum: a match counts only when its characters pass it
 *   (`elfproef`, `mod97`, `luhn`; see the functions below);
 * - keywords with proximity: a match counts only when one of the keywords, as a
 *   whole word (case and diacritics folded, as in word lists), ends at most
 *   `proximity` characters before it or starts at most that far after it
 *   (DEFAULT_PROXIMITY when not given).
 *
 * Hit.key is the matched text; Hit.excerpt masks all but its last three
 * characters (`*****123`).
 */
import RE2 from 're2';
import type { Detector, Hit } from '../types.js';
import { ibanRemainder } from './iban.js';
import { AhoCorasick, keywordWithin } from './wordlist.js';
import { ZegelError } from '../../errors.js';

export type Checksum = 'elfproef' | 'mod97' | 'luhn';

export interface RegexOptions {
  pattern: string;
  /** Any of `i`, `m`, `s`, `u`; `g` is added. */
  flags?: string;
  checksum?: Checksum;
  keywords?: string[];
  /** Characters between a keyword and a match, at most. */
  proximity?: number;
}

/** A pattern (or its flags) that cannot be compiled in linear time, or at all. */
export class PatternError extends ZegelError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('ZEGEL_RULE_PATTERN', message, options);
    this.name = 'PatternError';
  }
}

export const DEFAULT_PROXIMITY = 40;
/** Matches longer than this are still reported, but may be missed at a chunk border. */
export const MAX_REGEX_MATCH = 256;

const FLAGS = /^(?!.*(.).*\1)[imsu]*$/;

/**
 * Elfproef, the variant of the BSN: over the n digits of the match, weights
 * n, n−1, …, 2 for all but the last digit and −1 for the last; the sum must be
 * divisible by 11 and the digits not all zero. Needs at least 2 digits.
 */
export function elfproefDigits(digits: string): boolean {
  const n = digits.length;
  if (n < 2 || !/^[0-9]+$/.test(digits) || /^0+$/.test(digits)) return false;
  let sum = 0;
  for (let i = 0; i < n - 1; i++) sum += (n - i) * (digits.charCodeAt(i) - 48);
  sum -= digits.charCodeAt(n - 1) - 48;
  return sum % 11 === 0;
}

/** Luhn (credit cards, many client numbers): at least 2 digits. */
export function luhn(digits: string): boolean {
  if (digits.length < 2 || !/^[0-9]+$/.test(digits)) return false;
  let sum = 0;
  for (let i = 0; i < digits.length; i++) {
    let d = digits.charCodeAt(digits.length - 1 - i) - 48;
    if (i % 2 === 1) {
      d *= 2;
      if (d > 9) d -= 9;
    }
    sum += d;
  }
  return sum % 10 === 0;
}

/** ISO 7064 MOD 97-10 as for IBANs (first four characters moved to the end, letters 10–35): remainder 1. */
export function mod97(alnum: string): boolean {
  return alnum.length >= 5 && ibanRemainder(alnum) === 1;
}

/** Whether a match passes the checksum: elfproef and luhn use its digits, mod97 its letters and digits. */
export function passesChecksum(checksum: Checksum, match: string): boolean {
  switch (checksum) {
    case 'elfproef':
      return elfproefDigits(match.replace(/[^0-9]/g, ''));
    case 'luhn':
      return luhn(match.replace(/[^0-9]/g, ''));
    case 'mod97':
      return mod97(match.replace(/[^A-Za-z0-9]/g, ''));
  }
}

/** All but the last three characters masked: `*****123`; three or fewer characters are masked entirely. */
export function redactMatch(match: string): string {
  const chars = [...match];
  if (chars.length <= 3) return '*'.repeat(chars.length);
  return '*'.repeat(chars.length - 3) + chars.slice(-3).join('');
}

/** Compiles a pattern with RE2, or throws PatternError. */
export function compilePattern(pattern: string, flags = ''): RE2 {
  if (!FLAGS.test(flags)) throw new PatternError(`flags must be a combination of i, m, s and u, not '${flags}'`);
  let re: RE2;
  try {
    re = new RE2(pattern, `${flags}g`);
  } catch (err) {
    throw new PatternError(`${(err as Error).message} (RE2 syntax: no backreferences or lookaround)`, { cause: err });
  }
  re.lastIndex = 0;
  if (re.exec('') !== null) throw new PatternError('pattern matches the empty string');
  re.lastIndex = 0;
  return re;
}

export class RegexDetector implements Detector {
  readonly maxMatchLength: number;
  readonly #re: RE2;
  readonly #checksum: Checksum | undefined;
  readonly #keywords: AhoCorasick | undefined;
  readonly #proximity: number;

  constructor(options: RegexOptions) {
    this.#re = compilePattern(options.pattern, options.flags);
    this.#checksum = options.checksum;
    if (this.#checksum !== undefined && !['elfproef', 'mod97', 'luhn'].includes(this.#checksum)) {
      throw new Error(`unknown checksum '${String(this.#checksum)}'`);
    }
    this.#proximity = options.proximity ?? DEFAULT_PROXIMITY;
    if (!Number.isInteger(this.#proximity) || this.#proximity < 0) throw new Error('proximity must be a whole number of characters, 0 or more');
    const keywords = options.keywords && options.keywords.length > 0 ? new AhoCorasick(options.keywords) : undefined;
    if (keywords && keywords.terms.length === 0) throw new Error('keywords have no letters or digits');
    this.#keywords = keywords;
    this.maxMatchLength = MAX_REGEX_MATCH + (keywords ? this.#proximity + 2 * keywords.maxKeyLength + 16 : 0);
  }

  find(text: string): Hit[] {
    const hits: Hit[] = [];
    const re = this.#re;
    re.lastIndex = 0;
    for (let m = re.exec(text); m !== null; m = re.exec(text)) {
      const match = m[0];
      const start = m.index;
      if (match.length === 0) {
        re.lastIndex = start + 1; // an empty match elsewhere than at 0 (e.g. only a \b)
        continue;
      }
      const end = start + match.length;
      if (this.#checksum !== undefined && !passesChecksum(this.#checksum, match)) continue;
      if (this.#keywords && !keywordWithin(this.#keywords, text, start, end, this.#proximity)) continue;
      hits.push({ start, end, excerpt: redactMatch(match), key: match });
    }
    re.lastIndex = 0;
    return hits;
  }
}
