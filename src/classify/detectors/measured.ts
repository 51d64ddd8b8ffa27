/**
 * Measured-values detector: vital signs and lab values written about a
 * person ("RR 178/102", "pols 96", "saturatie 92%", "temp 39,2", "HbA1c 53
 * mmol/mol", "glucose 12,3"). A measurement is a keyword (a whole word, as in
 * a word list) with a plausible value right after it, so "RR" in "RR-nummer",
 * "pols" in "ik heb mijn pols verstuit" and "temperatuur 21 graden in de zaal"
 * are no hits.
 *
 * Speed: the keywords are a word list (WordListDetector), so the engine scans
 * them in the same single pass of the merged automaton as every other
 * word-list rule (MergedWordLists): no regular expression runs over the text.
 * Only where a keyword matched does `refine` read the next characters (at most
 * LOOKAHEAD) for the value; keywords are rare in ordinary text.
 *
 * What counts as the value, after the keyword:
 * - the keyword must end the word: a hyphen, slash or dot directly followed
 *   by a letter means a compound or another abbreviation (`RR-nummer`,
 *   `temp.nl`) and no hit;
 * - then, on the same line and before any `,` `;` `.` `!` `?` that ends a
 *   clause: spaces, `:`, `=`, `(` and at most MAX_GAP_WORDS words of letters
 *   ("RR vanochtend 178/102", "bloeddruk was 150/95", "temperatuur van
 *   39,2");
 * - a number in the measure's format and range: blood pressure as
 *   systolic/diastolic (50-300 over 20-200, systolic above diastolic), the
 *   others one number with a decimal part where the measure needs one
 *   (temperature 34,0-43,9; INR) or none (pulse);
 * - not followed by a digit after `.`, `,`, `:`, `/`, `-` or a dash (a date
 *   12-03, a time 10:30, a version 3.2.1, a range 34–43), nor by a word that makes it a
 *   price, a time, a count or a distance (`euro`, `uur`, `jaar`, `km`, ...);
 * - not a reference value: no `boven`, `onder`, `vanaf`, `maximaal`,
 *   `above`, ... in the gap, no "of hoger" / "or more" after the value
 *   ("BMI boven 30", "bloeddruk van 140/90 of hoger": a campaign's threshold);
 *   a percent sign is required where the measure says so (`sat 92%`).
 *
 * A hit's key is the measure (`bloeddruk` for RR, bloeddruk, tensie, BP), so a
 * rule counts distinct measures: two blood pressures are one measure, a blood
 * pressure and a pulse two. Its excerpt is the keyword as listed, never the
 * value (a measured value is health data; excerpts go to the audit trail).
 */
import type { Hit } from '../types.js';
import { dropContained, WordListDetector } from './wordlist.js';

interface Measure {
  /** The measure a hit counts as (Hit.key). */
  key: string;
  /** Keywords as listed (whole words or phrases; matching as in a word list). */
  keywords: readonly string[];
  /** `pressure`: two numbers systolic/diastolic; `number`: one number. */
  form: 'pressure' | 'number';
  min: number;
  max: number;
  /** A decimal part is required (`39,2`), forbidden (`96`) or either. */
  decimals: 'required' | 'none' | 'either';
  /** A `%` after the number is required. */
  percent?: boolean;
}

/**
 * The measures: vital signs (the nursing observations of the Dutch early
 * warning scores, MEWS) and the lab values GP and hospital letters report
 * most (NHG lab guideline names), Dutch first, the common English names too.
 * Spelled as labs write them: the Dutch words were checked in the OpenTaal
 * word list (Debian package wdutch), where kreatinine, bloedglucose and
 * zuurstofsaturatie are missing but are the labs' own spelling.
 */
export const MEASURES: readonly Measure[] = [
  { key: 'bloeddruk', keywords: ['rr', 'bloeddruk', 'tensie', 'bd', 'bp', 'blood pressure', 'systolische bloeddruk'], form: 'pressure', min: 50, max: 300, decimals: 'none' },
  { key: 'pols', keywords: ['pols', 'polsfrequentie', 'hartslag', 'hartfrequentie', 'pulse', 'heart rate'], form: 'number', min: 20, max: 250, decimals: 'none' },
  { key: 'saturatie', keywords: ['saturatie', 'zuurstofsaturatie', 'spo2', 'o2-saturatie', 'oxygen saturation'], form: 'number', min: 50, max: 100, decimals: 'none' },
  { key: 'saturatie', keywords: ['sat', 'sats'], form: 'number', min: 50, max: 100, decimals: 'none', percent: true },
  { key: 'temperatuur', keywords: ['temperatuur', 'temp', 'lichaamstemperatuur', 'koorts', 'temperature'], form: 'number', min: 34, max: 43.9, decimals: 'required' },
  { key: 'ademfrequentie', keywords: ['ademfrequentie', 'ademhalingsfrequentie', 'respiratory rate'], form: 'number', min: 4, max: 70, decimals: 'none' },
  { key: 'hba1c', keywords: ['hba1c'], form: 'number', min: 3, max: 200, decimals: 'either' },
  { key: 'glucose', keywords: ['glucose', 'bloedglucose', 'bloedsuiker', 'nuchtere glucose', 'blood glucose', 'blood sugar'], form: 'number', min: 1, max: 60, decimals: 'either' },
  { key: 'egfr', keywords: ['egfr', 'gfr', 'kreatinineklaring'], form: 'number', min: 2, max: 200, decimals: 'none' },
  { key: 'kreatinine', keywords: ['kreatinine', 'creatinine'], form: 'number', min: 10, max: 2500, decimals: 'either' },
  { key: 'inr', keywords: ['inr'], form: 'number', min: 0.5, max: 15, decimals: 'required' },
  { key: 'bmi', keywords: ['bmi'], form: 'number', min: 10, max: 80, decimals: 'either' },
  { key: 'hb', keywords: ['hb', 'hemoglobine', 'haemoglobine', 'hemoglobin', 'haemoglobin'], form: 'number', min: 2, max: 25, decimals: 'either' },
  { key: 'crp', keywords: ['crp'], form: 'number', min: 0, max: 700, decimals: 'either' },
  { key: 'cholesterol', keywords: ['cholesterol', 'ldl', 'hdl', 'totaal cholesterol'], form: 'number', min: 0.3, max: 25, decimals: 'required' },
  { key: 'kalium', keywords: ['kalium', 'potassium'], form: 'number', min: 1.5, max: 10, decimals: 'required' },
  { key: 'natrium', keywords: ['natrium', 'sodium'], form: 'number', min: 100, max: 180, decimals: 'none' },
  { key: 'tsh', keywords: ['tsh'], form: 'number', min: 0.01, max: 150, decimals: 'either' },
  { key: 'leukocyten', keywords: ['leukocyten', 'leucocyten', "leuko's", 'leuco', 'wbc'], form: 'number', min: 0.5, max: 150, decimals: 'either' },
];

/** Characters read after a keyword, at most, to find its value. */
export const LOOKAHEAD = 48;
/** Words allowed between a keyword and its value ("RR vanochtend 178/102"). */
export const MAX_GAP_WORDS = 2;
/** Longest word allowed in that gap. */
const MAX_GAP_WORD = 14;

/**
 * Words that make a number a reference value rather than someone's
 * measurement: in the gap before it ("BMI boven 30", "HbA1c onder 53", "a
 * blood pressure above 140/90") or as "of hoger" after it ("140/90 of
 * hoger"). Health campaigns and guidelines write thresholds like that.
 */
const REFERENCE_BEFORE = new Set([
  'boven', 'onder', 'hoger', 'lager', 'dan', 'vanaf', 'maximaal', 'minimaal', 'max', 'min', 'streefwaarde', 'streef', 'norm',
  'grens', 'grenswaarde', 'meer', 'minder', 'tussen', 'above', 'below', 'over', 'under', 'than', 'target', 'between', 'least', 'most',
]);
const REFERENCE_AFTER = new Set(['hoger', 'meer', 'lager', 'minder', 'higher', 'more', 'lower', 'less', 'above', 'below']);

/** Words after a number that make it something other than a measurement. */
const NOT_A_MEASUREMENT = new Set([
  'euro', 'eur', 'uur', 'u', 'jaar', 'jaren', 'maand', 'maanden', 'week', 'weken', 'dag', 'dagen', 'minuten', 'seconden',
  'km', 'm', 'cm', 'mm', 'meter', 'kilometer', 'm2', 'm3', 'stuks', 'stuk', 'x', 'keer', 'personen', 'medewerkers',
  'deelnemers', 'leerlingen', 'kinderen', 'pagina', "pagina's", 'procent', 'kb', 'mb', 'gb', 'usd', 'dollar', 'cent',
  'hours', 'years', 'days', 'weeks', 'people', 'pages', 'miles',
]);

const isDigit = (c: number) => c >= 48 && c <= 57;
const isLetter = (ch: string) => /\p{L}/u.test(ch);

/** A number at `i`: digits, optionally `,` or `.` and digits. */
function readNumber(text: string, i: number): { value: number; end: number; decimals: number } | undefined {
  let j = i;
  while (j < text.length && isDigit(text.charCodeAt(j))) j++;
  if (j === i || j - i > 4) return undefined;
  let decimals = 0;
  let end = j;
  const sep = text[j];
  if ((sep === ',' || sep === '.') && isDigit(text.charCodeAt(j + 1))) {
    let k = j + 1;
    while (k < text.length && isDigit(text.charCodeAt(k))) k++;
    decimals = k - j - 1;
    end = k;
  }
  const value = Number(`${text.slice(i, j)}${decimals ? `.${text.slice(j + 1, end)}` : ''}`);
  return { value, end, decimals };
}

/** True when the text after a value makes it a date, time, version, range, price or count rather than a measurement. */
function continuesAsOther(text: string, end: number): boolean {
  const c = text[end];
  if (c !== undefined && '.,:/-\u2010\u2011\u2012\u2013\u2014'.includes(c) && isDigit(text.charCodeAt(end + 1))) return true;
  if (c !== undefined && isDigit(c.charCodeAt(0))) return true;
  // the next word, after spaces
  let i = end;
  while (text[i] === ' ' || text[i] === '\u00A0') i++;
  if (text[i] === '€' || text[i] === '$') return true;
  const word = (from: number) => {
    let j = from;
    while (j < text.length && (isLetter(text[j] as string) || text[j] === "'" || isDigit(text.charCodeAt(j)))) j++;
    return { word: text.slice(from, j).toLowerCase(), end: j };
  };
  const next = word(i);
  if (!next.word) return false;
  if (NOT_A_MEASUREMENT.has(next.word)) return true;
  // "140/90 of hoger", "30 or more": a threshold
  if (next.word === 'of' || next.word === 'or') {
    let k = next.end;
    while (text[k] === ' ' || text[k] === '\u00A0') k++;
    return REFERENCE_AFTER.has(word(k).word);
  }
  return false;
}

/** The end of a plausible value for `m` at `i` (the number's first digit), or -1. */
function valueEnd(text: string, i: number, m: Measure): number {
  const first = readNumber(text, i);
  if (!first) return -1;
  if (m.form === 'pressure') {
    if (first.decimals || text[first.end] !== '/') return -1;
    const second = readNumber(text, first.end + 1);
    if (!second || second.decimals) return -1;
    if (first.value < m.min || first.value > m.max || second.value < 20 || second.value > 200 || second.value >= first.value) return -1;
    if (continuesAsOther(text, second.end)) return -1;
    return second.end;
  }
  if (m.decimals === 'required' && !first.decimals) return -1;
  if (m.decimals === 'none' && first.decimals) return -1;
  if (first.decimals > 2) return -1;
  if (first.value < m.min || first.value > m.max) return -1;
  let end = first.end;
  let k = end;
  while (text[k] === ' ' || text[k] === '\u00A0') k++;
  if (text[k] === '%') end = k + 1;
  else if (m.percent) return -1;
  else if (continuesAsOther(text, end)) return -1;
  return end;
}

/**
 * Where the value of a keyword that ends at `from` starts, or -1: past spaces,
 * `:`, `=`, `(` and at most MAX_GAP_WORDS short words, on the same line and
 * within one clause.
 */
function valueStart(text: string, from: number): number {
  const next = text[from];
  if ((next === '-' || next === '/' || next === '.' || next === '_') && isLetter(text[from + 1] ?? '')) return -1;
  const limit = Math.min(text.length, from + LOOKAHEAD);
  let words = 0;
  let i = from;
  if (text[i] === '.') i++; // an abbreviation's dot: "temp. 38,5"
  while (i < limit) {
    const c = text[i] as string;
    if (isDigit(c.charCodeAt(0))) return i;
    if (c === ' ' || c === '\t' || c === '\u00A0' || c === ':' || c === '=' || c === '(') {
      i++;
      continue;
    }
    if (isLetter(c)) {
      let j = i;
      while (j < limit && isLetter(text[j] as string)) j++;
      if (++words > MAX_GAP_WORDS || j - i > MAX_GAP_WORD) return -1;
      if (REFERENCE_BEFORE.has(text.slice(i, j).toLowerCase())) return -1;
      // a word glued to a digit ("x2") is not a gap word
      if (j < text.length && isDigit(text.charCodeAt(j))) return -1;
      i = j;
      continue;
    }
    return -1; // a line break, the end of a clause, a currency sign, …
  }
  return -1;
}

/** Keyword (folded as a word list folds it) → measure, for `refine`. */
function measureIndex(): Map<string, Measure> {
  const byKeyword = new Map<string, Measure>();
  for (const m of MEASURES) for (const k of m.keywords) byKeyword.set(k, m);
  return byKeyword;
}

/**
 * The detector: a word list of the keywords whose hits are kept only with a
 * plausible value after them (`refine`). The engine merges it with the other
 * word-list rules of the same scopes (one automaton pass); MergedWordLists
 * calls `refine` on this list's hits.
 */
export class MeasuredValuesDetector extends WordListDetector {
  readonly #measureOf: Map<string, Measure>;

  constructor() {
    // A hit runs from the keyword over the gap to the end of its value.
    super(
      MEASURES.flatMap((m) => m.keywords),
      LOOKAHEAD + 16,
    );
    this.#measureOf = measureIndex();
  }

  /** Keeps the keyword hits that have a plausible value after them, as measures (Hit.key) ending after the value. */
  override refine(text: string, hits: Hit[]): Hit[] {
    const out: Hit[] = [];
    for (const hit of hits) {
      const m = this.#measureOf.get(hit.key);
      if (!m) continue;
      const start = valueStart(text, hit.end);
      if (start < 0) continue;
      const end = valueEnd(text, start, m);
      if (end < 0) continue;
      out.push({ start: hit.start, end, excerpt: hit.excerpt, key: m.key });
    }
    return dropContained(out);
  }
}
