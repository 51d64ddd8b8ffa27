/**
 * IBAN detector: account numbers of every country in the SWIFT IBAN registry,
 * with the country's length and the ISO 7064 mod-97 check.
 *
 * Accepted forms, in any case: compact (`NL91ABNA0417164300`) or printed in
 * groups of four separated by single spaces (`NL91 ABNA 0417 1643 00`). A
 * letter or digit directly before or after means no match. Check digits 00,
 * 01 and 99 are never valid.
 *
 * Hit.key is the compact upper-case IBAN, Hit.excerpt the country and the
 * last four characters (`NL…4300`).
 */
import type { Detector, Hit } from '../types.js';
import { wordAfter, wordBefore } from '../normalise.js';

/** IBAN length per country code (SWIFT IBAN registry). */
export const IBAN_LENGTHS: Readonly<Record<string, number>> = {
  AD: 24, AE: 23, AL: 28, AT: 20, AZ: 28, BA: 20, BE: 16, BG: 22, BH: 22, BI: 27,
  BR: 29, BY: 28, CH: 21, CR: 22, CY: 28, CZ: 24, DE: 22, DJ: 27, DK: 18, DO: 28,
  EE: 20, EG: 29, ES: 24, FI: 18, FK: 18, FO: 18, FR: 27, GB: 22, GE: 22, GI: 23,
  GL: 18, GR: 27, GT: 28, HN: 28, HR: 21, HU: 28, IE: 22, IL: 23, IQ: 23, IS: 26,
  IT: 27, JO: 30, KW: 30, KZ: 20, LB: 28, LC: 32, LI: 21, LT: 20, LU: 20, LV: 21,
  LY: 25, MC: 27, MD: 24, ME: 22, MK: 19, MN: 20, MR: 27, MT: 31, MU: 30, NI: 28,
  NL: 18, NO: 15, OM: 23, PK: 24, PL: 28, PS: 29, PT: 25, QA: 29, RO: 24, RS: 22,
  RU: 33, SA: 24, SC: 31, SD: 18, SE: 24, SI: 19, SK: 24, SM: 27, SO: 23, ST: 25,
  SV: 28, TL: 23, TN: 24, TR: 26, UA: 29, VA: 22, VG: 24, XK: 20, YE: 30,
};

/** Where an IBAN may start: two letters and two check digits. */
const START = /[A-Za-z]{2}[0-9]{2}/g;
const ALNUM = /^[A-Za-z0-9]$/;

/**
 * ISO 7064 MOD 97-10 as IBANs use it: the first four characters moved to the
 * end, letters counted as 10–35. An IBAN is valid when this is 1.
 */
export function ibanRemainder(compact: string): number {
  const s = compact.slice(4) + compact.slice(0, 4);
  let r = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c >= 48 && c <= 57) r = (r * 10 + (c - 48)) % 97;
    else if (c >= 65 && c <= 90) r = (r * 100 + (c - 55)) % 97;
    else if (c >= 97 && c <= 122) r = (r * 100 + (c - 87)) % 97;
    else return -1;
  }
  return r;
}

/** True for a compact IBAN (any case) of a registry country, with its length and a valid check. */
export function isValidIban(compact: string): boolean {
  const iban = compact.toUpperCase();
  const length = IBAN_LENGTHS[iban.slice(0, 2)];
  if (length === undefined || iban.length !== length) return false;
  if (!/^[A-Z]{2}[0-9]{2}[A-Z0-9]+$/.test(iban)) return false;
  const check = iban.slice(2, 4);
  if (check === '00' || check === '01' || check === '99') return false;
  return ibanRemainder(iban) === 1;
}

/** `NL…4300`: country and last four characters. */
export function redactIban(compact: string): string {
  return `${compact.slice(0, 2)}…${compact.slice(-4)}`;
}

/**
 * Reads the rest of an IBAN of `length` characters starting at `start`
 * (where the country code is): compact, or grouped by four with single
 * spaces. Returns the compact form and where it ends, or undefined.
 */
function readIban(text: string, start: number, length: number): { compact: string; end: number } | undefined {
  let compact = text.slice(start, start + 4);
  let i = start + 4;
  const grouped = text[i] === ' ' || text[i] === '\u00A0';
  let inGroup = 0;
  while (compact.length < length) {
    const ch = text[i];
    if (ch === undefined) return undefined;
    if (ALNUM.test(ch)) {
      if (grouped && inGroup === 4) return undefined;
      compact += ch;
      inGroup++;
      i++;
    } else if (grouped && (ch === ' ' || ch === '\u00A0') && (inGroup === 4 || compact.length === 4) && ALNUM.test(text[i + 1] ?? '')) {
      inGroup = 0;
      i++;
    } else {
      return undefined;
    }
  }
  return { compact: compact.toUpperCase(), end: i };
}

/** Finds valid IBANs in text. */
export class IbanDetector implements Detector {
  /** 34 characters (the longest IBAN) plus the spaces between groups of four. */
  readonly maxMatchLength = 48;

  find(text: string): Hit[] {
    const hits: Hit[] = [];
    START.lastIndex = 0;
    for (let m = START.exec(text); m !== null; m = START.exec(text)) {
      const start = m.index;
      const length = IBAN_LENGTHS[m[0].slice(0, 2).toUpperCase()];
      if (length === undefined || wordBefore(text, start)) continue;
      const read = readIban(text, start, length);
      if (!read || wordAfter(text, read.end) || !isValidIban(read.compact)) continue;
      hits.push({ start, end: read.end, excerpt: redactIban(read.compact), key: read.compact });
      START.lastIndex = read.end;
    }
    return hits;
  }
}
