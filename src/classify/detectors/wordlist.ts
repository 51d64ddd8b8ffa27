/**
 * Word-list detector: an Aho-Corasick automaton of our own over folded text,
 * stored as one dense Int32Array (a DFA: failure links are resolved at build
 * time), so the scan is one table lookup per character.
 *
 * Matching rules (see also normalise.ts):
 * - Case and diacritics are folded: `Patiënt` matches the term `patient`.
 * - Whole words only: a letter or digit directly before or after a match means
 *   no match. `dialyse` does not match inside `dialysecentrum`; Dutch compounds
 *   that matter must be listed themselves.
 * - Inside terms, every run of characters that are not letters or digits
 *   (spaces, line breaks, hyphens, slashes, punctuation) is one separator, and
 *   matches any such run in the text: `ggz-instelling` matches `GGZ instelling`
 *   and `ggz -\n instelling`; `citizen service number` matches
 *   `citizen-service-number`. Letters never match across a missing separator:
 *   `burger service nummer` does not match `burgerservicenummer` (list both).
 * - Combining marks and invisible format characters (soft hyphen, zero-width
 *   joiners) are skipped: `pa\u00ADtiënt` matches `patient`; a zero-width
 *   space separates words.
 *
 * How it works: the folded text is seen as a sequence of symbols, one per
 * letter or digit plus one SEP per run of separators, with a SEP before the
 * first and after the last character. Each term is compiled as
 * SEP letters… SEP, so whole-word matching costs nothing extra. Offsets of the
 * last symbols are kept in a small ring buffer so that hits report offsets
 * into the ORIGINAL text: `start` is the first letter of the term, `end` is
 * just before the separator that follows it.
 */
import type { Detector, Hit } from '../types.js';
import { foldCodePoint, isWordChar, termKey, wordAfter, wordBefore } from '../normalise.js';

const SEP = 0;
/** A letter or digit that occurs in no term. */
const OTHER = 1;
/** Per-code-unit class table values below zero. */
const UNKNOWN = -1;
const IGNORE = -2;
const SLOW = -3;

/** Largest automaton we build (entries of the dense table, 4 bytes each). */
const MAX_TABLE_ENTRIES = 1 << 27;

/** One match of the automaton: `term` indexes `AhoCorasick.terms`. */
export interface WordMatch {
  term: number;
  start: number;
  end: number;
}

export class AhoCorasick {
  /** The terms as listed (the first spelling of each key), in list order. */
  readonly terms: readonly string[];
  /** termKey() of each term. */
  readonly keys: readonly string[];
  /** Longest key, in UTF-16 units. */
  readonly maxKeyLength: number;

  readonly #symbolOf = new Map<number, number>();
  readonly #nSym: number;
  /** Row r (a multiple of nSym + 1): nSym next-row entries, then (state + 1) when the state has output, else 0. */
  readonly #delta: Int32Array;
  /** Per state: the term ending exactly here, or -1. */
  readonly #termAt: Int32Array;
  /** Per state: the nearest proper suffix state with a term, or -1. */
  readonly #dict: Int32Array;
  /** Per term: its length in symbols, the two SEPs included. */
  readonly #symLength: Int32Array;
  /** Per BMP code unit: its symbol, or UNKNOWN / IGNORE / SLOW. Filled lazily. */
  readonly #cls = new Int32Array(0x10000).fill(UNKNOWN);
  readonly #ringMask: number;

  constructor(terms: readonly string[]) {
    const listed: string[] = [];
    const keys: string[] = [];
    const seen = new Set<string>();
    for (const term of terms) {
      const key = termKey(term);
      if (key === '' || seen.has(key)) continue;
      seen.add(key);
      listed.push(term.trim());
      keys.push(key);
    }
    this.terms = listed;
    this.keys = keys;

    // Symbols: SEP, OTHER, then every letter or digit that occurs in a key.
    const patterns: number[][] = [];
    let maxKey = 0;
    let maxSyms = 2;
    for (const key of keys) {
      maxKey = Math.max(maxKey, key.length);
      const syms = [SEP];
      for (const ch of key) {
        if (ch === ' ') {
          syms.push(SEP);
          continue;
        }
        const cp = ch.codePointAt(0) ?? 0;
        let sym = this.#symbolOf.get(cp);
        if (sym === undefined) {
          sym = this.#symbolOf.size + 2;
          this.#symbolOf.set(cp, sym);
        }
        syms.push(sym);
      }
      syms.push(SEP);
      maxSyms = Math.max(maxSyms, syms.length);
      patterns.push(syms);
    }
    this.maxKeyLength = maxKey;
    this.#nSym = this.#symbolOf.size + 2;
    let ring = 1;
    while (ring <= maxSyms) ring <<= 1;
    this.#ringMask = ring - 1;
    this.#symLength = Int32Array.from(patterns, (p) => p.length);

    // Trie.
    const children: Map<number, number>[] = [new Map()];
    const termAt: number[] = [-1];
    patterns.forEach((syms, term) => {
      let s = 0;
      for (const sym of syms) {
        let next = children[s]?.get(sym);
        if (next === undefined) {
          next = children.length;
          children.push(new Map());
          termAt.push(-1);
          children[s]?.set(sym, next);
        }
        s = next;
      }
      termAt[s] = term;
    });

    // Dense DFA, breadth first: a missing edge takes the edge of the failure state.
    const states = children.length;
    const stride = this.#nSym + 1;
    if (states * stride > MAX_TABLE_ENTRIES) throw new Error(`word list too large: ${states} automaton states`);
    const delta = new Int32Array(states * stride);
    const fail = new Int32Array(states);
    const dict = new Int32Array(states).fill(-1);
    const order: number[] = [0];
    for (let q = 0; q < order.length; q++) {
      const s = order[q] as number;
      const row = s * stride;
      const failRow = (fail[s] as number) * stride;
      const kids = children[s] as Map<number, number>;
      for (let sym = 0; sym < this.#nSym; sym++) {
        const child = kids.get(sym);
        if (child !== undefined) {
          delta[row + sym] = child * stride;
          if (s !== 0) {
            const f = (delta[failRow + sym] as number) / stride;
            fail[child] = f;
            dict[child] = (termAt[f] as number) >= 0 ? f : (dict[f] as number);
          }
          order.push(child);
        } else {
          delta[row + sym] = s === 0 ? 0 : (delta[failRow + sym] as number);
        }
      }
    }
    for (let s = 0; s < states; s++) {
      if ((termAt[s] as number) >= 0 || (dict[s] as number) >= 0) delta[s * stride + this.#nSym] = s + 1;
    }
    this.#delta = delta;
    this.#termAt = Int32Array.from(termAt);
    this.#dict = dict;
  }

  /** Symbol of one folded code point. */
  #symbolOfFolded(cp: number): number {
    const sym = this.#symbolOf.get(cp);
    if (sym !== undefined) return sym;
    return isWordChar(String.fromCodePoint(cp)) ? OTHER : SEP;
  }

  /** Fills the class table entry of one BMP code unit. */
  #classify(unit: number): number {
    let cls: number;
    if (unit >= 0xd800 && unit <= 0xdfff) {
      cls = SLOW;
    } else {
      const f = foldCodePoint(unit);
      if (f === '') cls = IGNORE;
      else if (f.length === 1) cls = this.#symbolOfFolded(f.charCodeAt(0));
      else cls = SLOW;
    }
    this.#cls[unit] = cls;
    return cls;
  }

  /** Every match of every term, overlapping ones included, in order of their end. */
  findAll(text: string): WordMatch[] {
    const out: WordMatch[] = [];
    const cls = this.#cls;
    const delta = this.#delta;
    const nSym = this.#nSym;
    const mask = this.#ringMask;
    const ring = new Int32Array(mask + 1);
    const n = text.length;
    let row = delta[SEP]!; // the virtual separator before the text
    let pos = 0;
    let lastSep = true;
    for (let i = 0; i < n; i++) {
      const unit = text.charCodeAt(i);
      let sym = cls[unit]!;
      if (sym < 0) {
        if (sym === UNKNOWN) sym = this.#classify(unit);
        if (sym === IGNORE) continue;
        if (sym === SLOW) {
          // Several symbols from one character (ß → ss), or a surrogate pair.
          const cp = text.codePointAt(i) ?? unit;
          for (const ch of foldCodePoint(cp)) {
            const s = this.#symbolOfFolded(ch.codePointAt(0) ?? 0);
            if (s === SEP) {
              if (lastSep) continue;
              lastSep = true;
            } else {
              lastSep = false;
            }
            pos++;
            ring[pos & mask] = i;
            row = delta[row + s]!;
            if (delta[row + nSym] !== 0) this.#report(row, pos, ring, out);
          }
          if (cp > 0xffff) i++;
          continue;
        }
      }
      if (sym === SEP) {
        if (lastSep) continue;
        lastSep = true;
      } else {
        lastSep = false;
      }
      pos++;
      ring[pos & mask] = i;
      row = delta[row + sym]!;
      if (delta[row + nSym] !== 0) this.#report(row, pos, ring, out);
    }
    if (!lastSep) {
      // The virtual separator after the text.
      pos++;
      ring[pos & mask] = n;
      row = delta[row + SEP]!;
      if (delta[row + nSym] !== 0) this.#report(row, pos, ring, out);
    }
    return out;
  }

  #report(row: number, pos: number, ring: Int32Array, out: WordMatch[]): void {
    const mask = this.#ringMask;
    const s = this.#delta[row + this.#nSym]! - 1;
    const end = ring[pos & mask]!;
    for (let st = this.#termAt[s]! >= 0 ? s : this.#dict[s]!; st >= 0; st = this.#dict[st]!) {
      const term = this.#termAt[st]!;
      const start = ring[(pos - this.#symLength[term]! + 2) & mask]!;
      out.push({ term, start, end: Math.max(end, start + 1) });
    }
  }
}

/**
 * Drops matches that lie inside a longer match, so that one mention of
 * `ziekte van Alzheimer` counts as one term, not also as `alzheimer`.
 * Partly overlapping matches are both kept. Returns matches in text order.
 */
export function dropContained(matches: WordMatch[]): WordMatch[] {
  const sorted = [...matches].sort((a, b) => a.start - b.start || b.end - a.end);
  const kept: WordMatch[] = [];
  let maxEnd = -1;
  for (const m of sorted) {
    if (m.end <= maxEnd) continue;
    kept.push(m);
    maxEnd = m.end;
  }
  return kept;
}

/**
 * A detector for a word list. Hit.key and Hit.excerpt are the term as listed
 * (its first spelling when several fold to the same key), so the engine counts
 * distinct terms by key. A match inside a longer match is not reported.
 */
export function createWordListDetector(terms: readonly string[]): Detector {
  const ac = new AhoCorasick(terms);
  // Originals may be longer than keys (whitespace runs, marks); this covers ordinary text.
  const maxMatchLength = 2 * ac.maxKeyLength + 32;
  return {
    maxMatchLength,
    find(text: string): Hit[] {
      return dropContained(ac.findAll(text)).map((m) => {
        const term = ac.terms[m.term] as string;
        return { start: m.start, end: m.end, excerpt: term, key: term };
      });
    },
  };
}

/**
 * True when one of the automaton's terms, as a whole word of `text`, ends at
 * most `proximity` characters before `start` or begins at most `proximity`
 * characters after `end`. Only a window around the match is scanned.
 */
export function keywordWithin(keywords: AhoCorasick, text: string, start: number, end: number, proximity: number): boolean {
  const margin = proximity + 2 * keywords.maxKeyLength + 16;
  const from = Math.max(0, start - margin);
  const to = Math.min(text.length, end + margin);
  for (const k of keywords.findAll(text.slice(from, to))) {
    const ks = from + k.start;
    const ke = from + k.end;
    // The window may cut a word: check the boundaries in the whole text.
    if (wordBefore(text, ks) || wordAfter(text, ke)) continue;
    const gap = ke <= start ? start - ke : ks >= end ? ks - end : 0;
    if (gap <= proximity) return true;
  }
  return false;
}
