/**
 * Text normalisation for matching: case folding and diacritic folding, so that
 * `patiënt`, `patient` and `PATIENT` compare equal.
 *
 * Folding works per code point: NFKD, drop combining marks, lower-case, and a
 * few letters without a decomposition (ß → ss, æ → ae, ø → o, …). Combining
 * marks and invisible format characters (soft hyphen, zero-width joiners, BOM)
 * fold to nothing, so `pa\u00ADtiënt` = `patient`; the zero-width space is a
 * word break and folds to a space. Compatibility forms expand
 * (`ĳ` → `ij`, `ﬁ` → `fi`, `²` → `2`).
 *
 * Offsets: `normaliseText` returns the folded text with, for every folded UTF-16
 * unit, the span of the ORIGINAL text it came from, so a match in folded text is
 * reported with offsets into the original (`originalSpan`). Detectors never
 * report offsets into folded text.
 *
 * Terms: termKey is a listed term's canonical form; a prefix term (`nier*`,
 * see detectors/wordlist.ts) keeps its `*`, and prefixTermProblem says what
 * is wrong with a misplaced `*` or a too short prefix.
 */

/** Letters that NFKD leaves alone but that readers treat as a base letter plus decoration. */
const EXTRA_FOLDS: Readonly<Record<string, string>> = {
  ß: 'ss',
  ẞ: 'ss',
  æ: 'ae',
  œ: 'oe',
  ø: 'o',
  ł: 'l',
  đ: 'd',
  ð: 'd',
  þ: 'th',
  ı: 'i',
  ς: 'σ',
};

const MARK = /\p{M}/gu;
const IGNORABLE = /^[\p{M}\p{Cf}]$/u;
const WORD_CHAR = /^[\p{L}\p{N}]$/u;

function stripMarks(s: string): string {
  return s.normalize('NFKD').replace(MARK, '');
}

function computeFold(ch: string): string {
  if (ch === '\u200B') return ' '; // zero-width space: a word break, unlike other format characters
  if (IGNORABLE.test(ch)) return '';
  // Strip marks before and after lower-casing: `İ` lower-cases to `i` plus a combining dot.
  let out = '';
  for (const c of stripMarks(stripMarks(ch).toLowerCase())) out += EXTRA_FOLDS[c] ?? c;
  return out;
}

/** Folded forms of BMP code units, filled on first use. */
const bmpCache: (string | undefined)[] = new Array<string | undefined>(0x10000);
/** Folded forms of astral code points. */
const astralCache = new Map<number, string>();

/**
 * The folded form of one code point: '' for ignorable characters, usually one
 * UTF-16 unit, sometimes more (`ß` → `ss`). Lone surrogates fold to U+FFFD.
 */
export function foldCodePoint(cp: number): string {
  if (cp < 0x10000) {
    let f = bmpCache[cp];
    if (f === undefined) {
      f = cp >= 0xd800 && cp <= 0xdfff ? '\uFFFD' : computeFold(String.fromCharCode(cp));
      bmpCache[cp] = f;
    }
    return f;
  }
  let f = astralCache.get(cp);
  if (f === undefined) {
    f = computeFold(String.fromCodePoint(cp));
    astralCache.set(cp, f);
  }
  return f;
}

/** True for letters and digits (of any script): the characters words are made of. */
export function isWordChar(ch: string): boolean {
  return WORD_CHAR.test(ch);
}

/** 0 unknown, 1 letter or digit, 2 ignorable (mark, format character), 3 anything else. */
const unitKindCache = new Uint8Array(0x10000);

function kindOf(cp: number): number {
  if (cp < 0x10000) {
    const known = unitKindCache[cp] ?? 0;
    if (known !== 0) return known;
  }
  const f = foldCodePoint(cp);
  let kind = f === '' ? 2 : 3;
  for (const c of f) if (isWordChar(c)) kind = 1;
  if (cp < 0x10000) unitKindCache[cp] = kind;
  return kind;
}

/**
 * True when a letter or digit (after folding) ends right before `index`,
 * looking through ignorable marks and format characters.
 */
export function wordBefore(text: string, index: number): boolean {
  let i = index - 1;
  while (i >= 0) {
    let cp = text.charCodeAt(i);
    if (cp >= 0xdc00 && cp <= 0xdfff && i > 0) {
      const hi = text.charCodeAt(i - 1);
      if (hi >= 0xd800 && hi <= 0xdbff) {
        cp = ((hi - 0xd800) << 10) + (cp - 0xdc00) + 0x10000;
        i--;
      }
    }
    const kind = kindOf(cp);
    if (kind !== 2) return kind === 1;
    i--;
  }
  return false;
}

/**
 * True when a letter or digit (after folding) starts at `index`, looking
 * through ignorable marks and format characters.
 */
export function wordAfter(text: string, index: number): boolean {
  let i = index;
  while (i < text.length) {
    const cp = text.codePointAt(i) ?? 0;
    const kind = kindOf(cp);
    if (kind !== 2) return kind === 1;
    i += cp > 0xffff ? 2 : 1;
  }
  return false;
}

/** Folded text with, per folded UTF-16 unit, where it came from in the original. */
export interface NormalisedText {
  text: string;
  /** starts[j]: original index of the character folded unit j came from. */
  starts: Int32Array;
  /** ends[j]: original index just after that character. */
  ends: Int32Array;
}

/** Case-folds and diacritic-folds `s`, keeping a map back to the original offsets. */
export function normaliseText(s: string): NormalisedText {
  const n = s.length;
  let starts: Int32Array = new Int32Array(n + 8);
  let ends: Int32Array = new Int32Array(n + 8);
  const parts: string[] = [];
  let pending = '';
  let j = 0;
  const push = (unit: string, from: number, to: number): void => {
    if (j >= starts.length) {
      const grow = (a: Int32Array): Int32Array => {
        const b = new Int32Array(a.length * 2);
        b.set(a);
        return b;
      };
      starts = grow(starts);
      ends = grow(ends);
    }
    starts[j] = from;
    ends[j] = to;
    j++;
    pending += unit;
    if (pending.length >= 8192) {
      parts.push(pending);
      pending = '';
    }
  };
  for (let i = 0; i < n; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x80) {
      push(c >= 0x41 && c <= 0x5a ? String.fromCharCode(c + 32) : s[i] as string, i, i + 1);
      continue;
    }
    const cp = s.codePointAt(i) ?? c;
    const width = cp > 0xffff ? 2 : 1;
    const f = foldCodePoint(cp);
    if (f === '' && j > 0) ends[j - 1] = i + width; // a mark belongs to the letter before it
    for (let k = 0; k < f.length; k++) push(f[k] as string, i, i + width);
    i += width - 1;
  }
  parts.push(pending);
  return { text: parts.join(''), starts: starts.subarray(0, j), ends: ends.subarray(0, j) };
}

/** Maps the span [start, end) of folded text back to the original text. */
export function originalSpan(norm: NormalisedText, start: number, end: number): { start: number; end: number } {
  if (end <= start) {
    const at = start < norm.starts.length ? (norm.starts[start] ?? 0) : (norm.ends[norm.ends.length - 1] ?? 0);
    return { start: at, end: at };
  }
  return { start: norm.starts[start] ?? 0, end: norm.ends[end - 1] ?? 0 };
}

/**
 * The canonical form of a listed term: folded, every run of characters that are
 * not letters or digits turned into one space, trimmed. Two terms with the same
 * key match exactly the same text. '' when the term has no letters or digits.
 * A prefix term (one that ends in `*`, see PREFIX_MARK) keeps the `*` at the
 * end of its key: `Nier*` → `nier*`, `Chronische  nier*` → `chronische nier*`,
 * so `nier` and `nier*` are two terms. Whether a `*` stands where it may is
 * prefixTermProblem's business; termKey itself treats any other `*` as a
 * separator, like every other character that is not a letter or digit.
 */
export function termKey(term: string): string {
  let out = '';
  let sep = false;
  for (const ch of term) {
    for (const c of foldCodePoint(ch.codePointAt(0) ?? 0)) {
      if (isWordChar(c)) {
        if (sep && out !== '') out += ' ';
        out += c;
        sep = false;
      } else {
        sep = true;
      }
    }
  }
  return out !== '' && term.trim().endsWith(PREFIX_MARK) ? out + PREFIX_MARK : out;
}

/** The mark that makes a term a prefix term: `nier*`. */
export const PREFIX_MARK = '*';

/** Letters or digits (after folding) a prefix term needs before its `*`, in its last word. */
export const MIN_PREFIX_LETTERS = 4;

/** True for the key of a prefix term (termKey ends in `*`). */
export function isPrefixKey(key: string): boolean {
  return key.endsWith(PREFIX_MARK);
}

/**
 * Why a listed term is not a valid term, or undefined when it is. Only the
 * prefix syntax can be wrong: a `*` may only end a term, directly after a
 * letter or digit, once, and the word it ends needs at least
 * MIN_PREFIX_LETTERS letters or digits after folding (`nier*`, `chronische
 * nier*`; not `ni*er`, `nier**`, `nier *`, `nie*`). A term without a `*` is
 * always valid (one without letters or digits is dropped elsewhere).
 */
export function prefixTermProblem(term: string): string | undefined {
  const t = term.trim();
  const at = t.indexOf(PREFIX_MARK);
  if (at === -1) return undefined;
  const quoted = JSON.stringify(t);
  if (t.endsWith('**')) return `bad prefix term ${quoted}: a prefix term ends in one * (nier*), not **`;
  if (at !== t.length - 1) return `bad prefix term ${quoted}: a * may only end a term (nier*), not stand inside or before it`;
  const body = t.slice(0, -1);
  // the last word of the term: the folded letters or digits right before the *
  let letters = 0;
  const chars = [...body];
  for (let i = chars.length - 1; i >= 0; i--) {
    const f = foldCodePoint(chars[i]?.codePointAt(0) ?? 0);
    if (f === '') continue; // a combining mark or soft hyphen belongs to the word
    let word = true;
    for (const c of f) if (!isWordChar(c)) word = false;
    if (!word) break;
    letters += [...f].length;
  }
  if (letters === 0) return `bad prefix term ${quoted}: the * must follow a letter or digit directly (nier*, not nier * or nier-*)`;
  if (letters < MIN_PREFIX_LETTERS) {
    return `bad prefix term ${quoted}: too short, a prefix needs at least ${MIN_PREFIX_LETTERS} letters or digits before the * (this one has ${letters})`;
  }
  return undefined;
}
