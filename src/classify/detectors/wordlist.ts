/**
 * Word-list detector: an Aho-Corasick automaton of our own over folded text,
 * stored as one dense Int32Array (a DFA: failure links are resolved at build
 * time), so the scan is one table lookup per character.
 *
 * Matching rules (see also normalise.ts, and docs/classification.md):
 * - Case and diacritics are folded: `Patiënt` matches the term `patient`.
 * - Whole words only: a letter or digit directly before or after a match means
 *   no match. `dialyse` does not match inside `dialysecentrum`; Dutch compounds
 *   that matter must be listed themselves, or matched by a prefix term.
 * - Prefix terms: a term that ends in `*` (`nier*`) matches every word that
 *   STARTS with it: `nier`, `nieren`, `nierfalen`, `Nierdialyse`. The left edge
 *   is still a word start (`nier*` does not match `binnier` or `aanierstuk`),
 *   only the right edge is open. In a phrase only the last word can be a prefix
 *   (`chronische nier*` matches `chronische nierinsufficiëntie`). The `*` may
 *   only end a term, once, directly after a letter or digit, and that last word
 *   needs at least MIN_PREFIX_LETTERS (4) letters or digits after folding:
 *   `a*` or `nie*` would flag far too many words. prefixTermProblem
 *   (normalise.ts) says what is wrong with a term; the automaton refuses such a
 *   term and `zegel rules lint` reports it with its list file and line.
 * - What a hit of a prefix term reports: the term as listed (`nier*`, also its
 *   Hit.key, so the engine counts `nier*` as ONE distinct term however many
 *   different words it matched), and offsets from the first letter of the term
 *   to the end of the whole word it matched: the text between them is
 *   `nierdialyse`, not `nier`.
 * - One word, one hit: a match inside a longer match is not reported (see
 *   dropContained), and when several terms match exactly the same span, a
 *   whole-word term wins over a prefix term and a longer prefix over a shorter
 *   one. With `nier`, `nierfalen` and `nier*` listed, `nier` reports `nier`,
 *   `nierfalen` reports `nierfalen` and `nierstenen` reports `nier*`; a text
 *   with all three words has three distinct terms. With only `nier*` listed the
 *   same text has one.
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
 * SEP letters… SEP, so whole-word matching costs nothing extra; a prefix term
 * as SEP letters… (no SEP after it), so it has its output at a state inside
 * the trie and the scan stays one table lookup per character. Hits report
 * offsets into the ORIGINAL text: `start` is the first letter of the term
 * (found by walking back from the end when a match is reported; matches are
 * rare), `end` is just before the separator that follows the matched word.
 * For a prefix term that end is found by reading on to the end of the word,
 * only when it matched.
 */
import type { Detector, Hit } from '../types.js';
import { foldCodePoint, isPrefixKey, isWordChar, prefixTermProblem, termKey, wordAfter, wordBefore } from '../normalise.js';

const SEP = 0;
/** A letter or digit that occurs in no term. */
const OTHER = 1;
/** A character that folds to nothing (a combining mark, a soft hyphen): every state loops to itself on it. */
const IGNORABLE = 2;
/** The first symbol of a letter or digit that occurs in a term. */
const FIRST_LETTER = 3;
/** Per-code-unit class table values below zero. */
const UNKNOWN = -1;
const SLOW = -2;

/** Largest automaton we build (entries of the dense table, 4 bytes each). */
const MAX_TABLE_ENTRIES = 1 << 27;
/** Above every prefix term's rank base: ranks are MAX_RANK − key length. */
const MAX_RANK = 1 << 30;

/**
 * One match of the automaton: `term` indexes `AhoCorasick.terms`; `rank`
 * orders matches of exactly the same span (lower first: whole-word terms, then
 * prefix terms, longer prefixes first), see dropContained.
 */
export interface WordMatch {
  term: number;
  start: number;
  end: number;
  rank: number;
}

export class AhoCorasick {
  /** The terms as listed (the first spelling of each key), in list order. */
  readonly terms: readonly string[];
  /** termKey() of each term (a prefix term's key ends in `*`). */
  readonly keys: readonly string[];
  /** Longest key, in UTF-16 units. */
  readonly maxKeyLength: number;
  /** Per term: its rank among matches of the same span (WordMatch.rank). */
  readonly ranks: Int32Array;

  readonly #symbolOf = new Map<number, number>();
  readonly #nSym: number;
  /**
   * Row r (a multiple of nSym): per symbol the row of the next state, or its
   * complement (~row, below zero) when the next state has output, so the scan
   * needs one load per character.
   */
  readonly #delta: Int32Array;
  /** Per state: the term ending exactly here, or -1. */
  readonly #termAt: Int32Array;
  /** Per state: the nearest proper suffix state with a term, or -1. */
  readonly #dict: Int32Array;
  /** Per term: its length in symbols, without the SEP before and after it. */
  readonly #letters: Int32Array;
  /** Per term: 1 for a prefix term (`nier*`), 0 for a whole-word term. */
  readonly #prefix: Uint8Array;
  /** One symbol, as the symbols of an ordinary character for #report (no array per match). */
  readonly #oneSymbol: number[] = [0];
  /** Per BMP code unit: its symbol, or UNKNOWN / SLOW. Filled lazily. */
  readonly #cls = new Int32Array(0x10000).fill(UNKNOWN);

  /** Throws for a term with a misplaced `*` or a too short prefix (prefixTermProblem). */
  constructor(terms: readonly string[]) {
    const listed: string[] = [];
    const keys: string[] = [];
    const seen = new Set<string>();
    for (const term of terms) {
      const problem = prefixTermProblem(term);
      if (problem !== undefined) throw new Error(problem);
      const key = termKey(term);
      if (key === '' || seen.has(key)) continue;
      seen.add(key);
      listed.push(term.trim());
      keys.push(key);
    }
    this.terms = listed;
    this.keys = keys;

    // Symbols: SEP, OTHER, IGNORABLE, then every letter or digit that occurs in a key.
    const patterns: number[][] = [];
    let maxKey = 0;
    for (const key of keys) {
      maxKey = Math.max(maxKey, key.length);
      const syms = [SEP];
      const prefix = isPrefixKey(key);
      for (const ch of prefix ? key.slice(0, -1) : key) {
        if (ch === ' ') {
          syms.push(SEP);
          continue;
        }
        const cp = ch.codePointAt(0) ?? 0;
        let sym = this.#symbolOf.get(cp);
        if (sym === undefined) {
          sym = this.#symbolOf.size + FIRST_LETTER;
          this.#symbolOf.set(cp, sym);
        }
        syms.push(sym);
      }
      if (!prefix) syms.push(SEP);
      patterns.push(syms);
    }
    this.maxKeyLength = maxKey;
    const nSym = this.#symbolOf.size + FIRST_LETTER;
    this.#nSym = nSym;
    this.#prefix = Uint8Array.from(keys, (k) => (isPrefixKey(k) ? 1 : 0));
    this.#letters = Int32Array.from(patterns, (p, t) => p.length - (this.#prefix[t] ? 1 : 2));
    // Whole-word terms first (rank 0), then prefix terms, the longest prefix first.
    this.ranks = Int32Array.from(keys, (k) => (isPrefixKey(k) ? MAX_RANK - k.length : 0));

    // Trie.
    const children: Map<number, number>[] = [new Map()];
    const termAt: number[] = [-1];
    const viaSep: boolean[] = [false];
    patterns.forEach((syms, term) => {
      let s = 0;
      for (const sym of syms) {
        let next = children[s]?.get(sym);
        if (next === undefined) {
          next = children.length;
          children.push(new Map());
          termAt.push(-1);
          viaSep.push(sym === SEP);
          children[s]?.set(sym, next);
        }
        s = next;
      }
      termAt[s] = term;
    });

    // Dense DFA, breadth first: a missing edge takes the edge of the failure state.
    const states = children.length;
    if (states * nSym > MAX_TABLE_ENTRIES) throw new Error(`word list too large: ${states} automaton states`);
    const delta = new Int32Array(states * nSym);
    const fail = new Int32Array(states);
    const dict = new Int32Array(states).fill(-1);
    const order: number[] = [0];
    for (let q = 0; q < order.length; q++) {
      const s = order[q] as number;
      const row = s * nSym;
      const failRow = (fail[s] as number) * nSym;
      const kids = children[s] as Map<number, number>;
      for (let sym = 0; sym < nSym; sym++) {
        const child = kids.get(sym);
        if (child !== undefined) {
          delta[row + sym] = child * nSym;
          if (s !== 0) {
            const f = (delta[failRow + sym] as number) / nSym;
            fail[child] = f;
            dict[child] = (termAt[f] as number) >= 0 ? f : (dict[f] as number);
          }
          order.push(child);
        } else {
          delta[row + sym] = s === 0 ? 0 : (delta[failRow + sym] as number);
        }
      }
    }
    // Runs of separators are one separator, ignorable characters are nothing: both leave the state as it is.
    for (let s = 0; s < states; s++) {
      delta[s * nSym + IGNORABLE] = s * nSym;
      if (viaSep[s]) delta[s * nSym + SEP] = s * nSym;
    }
    // Mark the edges into states with output.
    for (let e = 0; e < delta.length; e++) {
      const t = (delta[e] as number) / nSym;
      if ((termAt[t] as number) >= 0 || (dict[t] as number) >= 0) delta[e] = ~(delta[e] as number);
    }
    this.#delta = delta;
    this.#termAt = Int32Array.from(termAt);
    this.#dict = dict;
  }

  #one(sym: number): number[] {
    this.#oneSymbol[0] = sym;
    return this.#oneSymbol;
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
      if (f === '') cls = IGNORABLE;
      else if (f.length === 1) cls = this.#symbolOfFolded(f.charCodeAt(0));
      else cls = SLOW;
    }
    this.#cls[unit] = cls;
    return cls;
  }

  /** The symbols one code point stands for, in order (none for an ignorable one). */
  #symbols(cp: number): number[] {
    if (cp < 0x10000) {
      let cls = this.#cls[cp] as number;
      if (cls === UNKNOWN) cls = this.#classify(cp);
      if (cls === IGNORABLE) return [];
      if (cls !== SLOW) return [cls];
    }
    const out: number[] = [];
    for (const ch of foldCodePoint(cp)) out.push(this.#symbolOfFolded(ch.codePointAt(0) ?? 0));
    return out;
  }

  /**
   * Every match of every term, overlapping ones included, in the order the
   * scan recognised them (whole-word terms at the separator after them,
   * prefix terms at their last letter).
   */
  findAll(text: string): WordMatch[] {
    const out: WordMatch[] = [];
    const cls = this.#cls;
    const delta = this.#delta;
    const n = text.length;
    let row = delta[SEP]!; // the virtual separator before the text
    if (row < 0) row = ~row;
    for (let i = 0; i < n; i++) {
      const unit = text.charCodeAt(i);
      let sym = cls[unit]!;
      if (sym < 0) {
        if (sym === UNKNOWN) sym = this.#classify(unit);
        if (sym === SLOW) {
          // Several symbols from one character (ß → ss), or a surrogate pair.
          const cp = text.codePointAt(i) ?? unit;
          const syms = this.#symbols(cp);
          for (let k = 0; k < syms.length; k++) {
            const next = delta[row + syms[k]!]!;
            if (next < 0 && ~next !== row) this.#report(~next, text, i, out, syms, k);
            row = next < 0 ? ~next : next;
          }
          if (cp > 0xffff) i++;
          continue;
        }
      }
      const next = delta[row + sym]!;
      if (next >= 0) {
        row = next;
        continue;
      }
      // An edge into a state with output; a loop (a second separator) reports nothing new.
      if (~next !== row) this.#report(~next, text, i, out, this.#one(sym), 0);
      row = ~next;
    }
    // The virtual separator after the text.
    const next = delta[row + SEP]!;
    if (next < 0 && ~next !== row) this.#report(~next, text, n, out, this.#one(SEP), 0);
    return out;
  }

  /**
   * Reports the terms that end in the state of `row`, entered on symbol
   * `syms[k]` of the character at `at` (`syms`: all symbols of that character,
   * or the one symbol of an ordinary character). A state entered on a SEP has
   * whole-word terms only, which end before `at`; one entered on a letter has
   * prefix terms only, whose match runs on to the end of the word.
   */
  #report(row: number, text: string, at: number, out: WordMatch[], syms: readonly number[], k: number): void {
    const s = row / this.#nSym;
    let wordEnd = -1;
    for (let st = this.#termAt[s]! >= 0 ? s : this.#dict[s]!; st >= 0; st = this.#dict[st]!) {
      const term = this.#termAt[st]!;
      const rank = this.ranks[term]!;
      if (this.#prefix[term]) {
        const start = this.#start(text, at, this.#letters[term]!, syms, k + 1);
        if (wordEnd < 0) wordEnd = this.#wordEnd(text, at, syms, k);
        out.push({ term, start, end: wordEnd, rank });
      } else {
        const start = this.#start(text, at, this.#letters[term]!, syms, k);
        out.push({ term, start, end: Math.max(at, start + 1), rank });
      }
    }
  }

  /**
   * The end of the word whose symbol `syms[k]` of the character at `at` the
   * scan just read: just before the next separator as the scan sees it
   * (ignorable characters inside or at the end of the word belong to it), or
   * the end of the text.
   */
  #wordEnd(text: string, at: number, syms: readonly number[], k: number): number {
    const first = text.codePointAt(at) ?? 0;
    let i = at + (first > 0xffff ? 2 : 1);
    // The rest of a character that folds to several symbols (ß → ss): a separator in it ends the word after it.
    for (let r = k + 1; r < syms.length; r++) if (syms[r] === SEP) return i;
    const cls = this.#cls;
    const n = text.length;
    while (i < n) {
      const unit = text.charCodeAt(i);
      let sym = cls[unit]!;
      if (sym === UNKNOWN) sym = this.#classify(unit);
      if (sym === SEP) return i;
      if (sym !== SLOW) {
        i++;
        continue;
      }
      const cp = text.codePointAt(i) ?? unit;
      const rest = this.#symbols(cp);
      if (rest[0] === SEP) return i;
      i += cp > 0xffff ? 2 : 1;
      if (rest.includes(SEP)) return i;
    }
    return n;
  }

  /**
   * Where a term of `count` symbols starts that ends with the first
   * `headLength` symbols `head` of the character at `end` (none: it ends
   * before `end`): walks back over them and then the text, symbol by symbol
   * as the scan saw them (ignorable characters skipped, runs of separators as
   * one), to the character of its first letter. Matches are rare; the scan
   * keeps no offsets.
   */
  #start(text: string, end: number, count: number, head: readonly number[], headLength: number): number {
    let seen = 0;
    let afterSep = true;
    for (let k = headLength - 1; k >= 0; k--) {
      if (head[k] === SEP) {
        if (afterSep) continue;
        afterSep = true;
      } else afterSep = false;
      if (++seen === count) return end;
    }
    const cls = this.#cls;
    for (let j = end - 1; j >= 0; j--) {
      let at = j;
      let cp = text.charCodeAt(j);
      // An ordinary character: one symbol (or none), straight from the class table.
      let sym = cls[cp]!;
      if (sym === UNKNOWN) sym = this.#classify(cp);
      if (sym >= 0 && sym !== IGNORABLE) {
        if (sym === SEP) {
          if (afterSep) continue;
          afterSep = true;
        } else afterSep = false;
        if (++seen === count) return at;
        continue;
      }
      if (sym === IGNORABLE) continue;
      if (cp >= 0xdc00 && cp <= 0xdfff && j > 0) {
        const hi = text.charCodeAt(j - 1);
        if (hi >= 0xd800 && hi <= 0xdbff) {
          cp = ((hi - 0xd800) << 10) + (cp - 0xdc00) + 0x10000;
          at = --j;
        }
      }
      const syms = this.#symbols(cp);
      for (let k = syms.length - 1; k >= 0; k--) {
        if (syms[k] === SEP) {
          if (afterSep) continue;
          afterSep = true;
        } else afterSep = false;
        if (++seen === count) return at;
      }
    }
    return 0;
  }
}

/**
 * Drops matches that lie inside a longer match, so that one mention of
 * `ziekte van Alzheimer` counts as one term, not also as `alzheimer`, and
 * `chronische nierziekte` (term `chronische nier*`) not also as `nier*`.
 * Of matches with exactly the same span one is kept, the lowest `rank`
 * (WordMatch.rank: a whole-word term before a prefix term, a longer prefix
 * before a shorter one): `nierfalen` is the term `nierfalen`, not also `nier*`.
 * Partly overlapping matches are both kept. Returns matches in text order.
 */
export function dropContained<M extends { start: number; end: number; rank?: number }>(matches: M[]): M[] {
  const sorted = [...matches].sort((a, b) => a.start - b.start || b.end - a.end || (a.rank ?? 0) - (b.rank ?? 0));
  const kept: M[] = [];
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
 * (its first spelling when several fold to the same key; `nier*` for a prefix
 * term, never the word of the text), so the engine counts distinct terms by
 * key. A match inside a longer match is not reported.
 */
export class WordListDetector implements Detector {
  readonly automaton: AhoCorasick;
  readonly maxMatchLength: number;

  /**
   * `extraLength`: how far past a term a subclass's `refine` reads (the
   * measured-values detector reads the value after its keyword).
   */
  constructor(terms: readonly string[], extraLength = 0) {
    this.automaton = new AhoCorasick(terms);
    // Originals may be longer than keys (whitespace runs, marks); this covers ordinary text.
    // A prefix term's hit runs on to the end of its word, but whether it is a hit is
    // settled within this length from its start, which is what the engine's chunk
    // borders need (engine.ts accepts a hit by where it starts).
    this.maxMatchLength = 2 * this.automaton.maxKeyLength + 32 + extraLength;
  }

  /** True when a subclass overrides `refine` (MergedWordLists then calls it). */
  get refines(): boolean {
    return this.refine !== WordListDetector.prototype.refine;
  }

  /**
   * The hits of this list in `text` after a look at their surroundings; the
   * word list itself keeps every hit. A subclass (MeasuredValuesDetector)
   * keeps a keyword only with a value after it: the scan stays one pass of
   * the automaton, and only matches cost a look at the text.
   */
  refine(_text: string, hits: Hit[]): Hit[] {
    return hits;
  }

  /** The list's hits, through `refine`. */
  find(text: string): Hit[] {
    const terms = this.automaton.terms;
    const hits = dropContained(this.automaton.findAll(text)).map((m) => {
      const term = terms[m.term] as string;
      return { start: m.start, end: m.end, excerpt: term, key: term };
    });
    return this.refine(text, hits);
  }
}

/** Cue words that a word-list hit needs close by (`near:` in a rule). */
export interface NearCues {
  /** Whole words or phrases; `lid*` a prefix term, as in a list. */
  terms: readonly string[];
  /** Characters between a hit and a cue, at most. */
  within: number;
}

/**
 * A word list whose hits count only with a cue close by: a party's name with
 * `lid`, `kandidaat` or `wethouder` within `within` characters, a union's name
 * with `lid` or `bijstaan`, a disease with `mijn moeder` or `hij heeft`. The
 * names alone are common in ordinary mail (an election notice names every
 * party); a name next to a cue is a statement about someone. The scan stays
 * the one automaton pass of the list (the engine merges it with the other word
 * lists); only a hit costs a look at its surroundings (keywordWithin). A cue
 * that overlaps the hit counts (gap 0).
 */
export class NearWordListDetector extends WordListDetector {
  readonly cues: AhoCorasick;
  readonly within: number;

  constructor(terms: readonly string[], near: NearCues) {
    const cues = new AhoCorasick(near.terms);
    // keywordWithin reads this far on either side of a hit: the engine keeps as much context at chunk borders
    super(terms, near.within + 2 * cues.maxKeyLength + 16);
    this.cues = cues;
    this.within = near.within;
  }

  /** Keeps the hits with a cue at most `within` characters away. */
  override refine(text: string, hits: Hit[]): Hit[] {
    return hits.filter((hit) => keywordWithin(this.cues, text, hit.start, hit.end, this.within));
  }
}

export function createWordListDetector(terms: readonly string[], near?: NearCues): WordListDetector {
  return near ? new NearWordListDetector(terms, near) : new WordListDetector(terms);
}

/**
 * Several word lists scanned in one pass: one automaton over all their terms,
 * each term knowing the lists it is in (and its spelling there). `find` gives
 * per list exactly the hits that list's own detector gives.
 */
export class MergedWordLists {
  readonly #ac: AhoCorasick;
  readonly #lists: number;
  /** Per automaton term: the lists it belongs to, with the spelling listed there (flat pairs). */
  readonly #owners: Array<Array<number | string>>;
  /** The lists whose hits `refine` filters (by index), with their detectors. */
  readonly #refining: Array<[number, WordListDetector]>;

  constructor(lists: readonly WordListDetector[]) {
    this.#lists = lists.length;
    this.#refining = lists.flatMap((list, index): Array<[number, WordListDetector]> => (list.refines ? [[index, list]] : []));
    this.#ac = new AhoCorasick(lists.flatMap((l) => l.automaton.terms));
    const termOf = new Map(this.#ac.keys.map((key, term) => [key, term]));
    this.#owners = this.#ac.keys.map(() => []);
    lists.forEach((list, index) => {
      list.automaton.keys.forEach((key, t) => {
        this.#owners[termOf.get(key) as number]?.push(index, list.automaton.terms[t] as string);
      });
    });
  }

  /** Hits of each list (in the order given to the constructor) in `text`. */
  find(text: string): Hit[][] {
    const per: Array<Array<{ start: number; end: number; rank: number; term: string }>> = Array.from({ length: this.#lists }, () => []);
    for (const m of this.#ac.findAll(text)) {
      const owners = this.#owners[m.term] as Array<number | string>;
      for (let k = 0; k < owners.length; k += 2) per[owners[k] as number]?.push({ start: m.start, end: m.end, rank: m.rank, term: owners[k + 1] as string });
    }
    const hits = per.map((matches) => dropContained(matches).map((m) => ({ start: m.start, end: m.end, excerpt: m.term, key: m.term })));
    for (const [index, list] of this.#refining) if (hits[index]!.length) hits[index] = list.refine(text, hits[index]!);
    return hits;
  }
}

/**
 * True when one of the automaton's terms, as a whole word of `text` (a prefix
 * term: at the start of a word), ends at most `proximity` characters before
 * `start` or begins at most `proximity` characters after `end`. Only a window
 * around the match is scanned.
 */
export function keywordWithin(keywords: AhoCorasick, text: string, start: number, end: number, proximity: number): boolean {
  const margin = proximity + 2 * keywords.maxKeyLength + 16;
  const from = Math.max(0, start - margin);
  const to = Math.min(text.length, end + margin);
  for (const k of keywords.findAll(text.slice(from, to))) {
    const ks = from + k.start;
    const ke = from + k.end;
    // The window may cut a word: check the boundaries in the whole text (a prefix term's word may go on).
    if (wordBefore(text, ks) || (!isPrefixKey(keywords.keys[k.term] as string) && wordAfter(text, ke))) continue;
    const gap = ke <= start ? start - ke : ks >= end ? ks - end : 0;
    if (gap <= proximity) return true;
  }
  return false;
}
