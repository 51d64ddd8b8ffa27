/**
 * Detectors by kind, as rules name them. The rules engine builds every
 * detector through createDetector and reads word lists with parseWordList.
 */
import type { Detector } from '../types.js';
import { termKey } from '../normalise.js';
import { BsnDetector } from './bsn.js';
import { IbanDetector } from './iban.js';
import { RegexDetector, type Checksum } from './regex.js';
import { MeasuredValuesDetector } from './measured.js';
import { createWordListDetector, type NearCues } from './wordlist.js';

export { PatternError } from './regex.js';

export type DetectorSpec =
  | { kind: 'bsn' }
  | { kind: 'iban' }
  | { kind: 'measured-values' }
  | { kind: 'wordlist'; terms: string[]; near?: NearCues }
  | { kind: 'regex'; pattern: string; flags?: string; checksum?: Checksum; keywords?: string[]; proximity?: number };

/**
 * Builds a detector. Throws PatternError (code ZEGEL_RULE_PATTERN) for a
 * regex RE2 refuses or bad flags, and a plain Error for other bad options.
 */
export function createDetector(spec: DetectorSpec): Detector {
  switch (spec.kind) {
    case 'bsn':
      return new BsnDetector();
    case 'iban':
      return new IbanDetector();
    case 'measured-values':
      return new MeasuredValuesDetector();
    case 'wordlist':
      return createWordListDetector(spec.terms, spec.near);
    case 'regex':
      return new RegexDetector(spec);
  }
}

/**
 * Reads a word list: one term or phrase per line; `#` starts a comment (to the
 * end of the line); blank lines are ignored; terms are trimmed. A term whose
 * normalised form (normalise.ts termKey: folded, separators collapsed) equals an
 * earlier one is dropped, as is a term without letters or digits. Terms keep
 * their listed spelling (that is what findings show).
 */
export function parseWordList(text: string): string[] {
  const terms: string[] = [];
  const seen = new Set<string>();
  for (const raw of text.split(/\r\n|\r|\n/)) {
    const hash = raw.indexOf('#');
    const term = (hash === -1 ? raw : raw.slice(0, hash)).trim();
    if (term === '') continue;
    const key = termKey(term);
    if (key === '' || seen.has(key)) continue;
    seen.add(key);
    terms.push(term);
  }
  return terms;
}
