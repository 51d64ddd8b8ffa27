import { MergedWordLists, WordListDetector } from './detectors/wordlist.js';
import type { CompiledRule, RuleSet, Threshold } from './rules/load.js';
import type { Action, ClassifyResult, Decision, ExtractEvent, Finding, Hit, Location, Scope } from './types.js';

/**
 * The rules engine: runs each rule's detector over the text of the scopes it
 * looks at, counts distinct hits per rule over the whole message, applies the
 * thresholds and returns the findings and the one decision. The relay,
 * `zegel scan` and the audit trail all call this.
 *
 * Chunk borders: a long text arrives as several chunks. For each rule the
 * engine keeps a tail of the text seen so far and scans tail + chunk, so a hit
 * that straddles a border is found whole. Each hit is accepted in exactly one
 * window: the one where it starts inside that window's own stretch
 * `[previous end − R, end − R)` (the last window takes everything from its
 * stretch on), with R = maxMatchLength + context. A hit accepted there lies
 * wholly inside the window with at least `context` characters on either side,
 * so digit-boundary and keyword checks see the same neighbours as in one long
 * text, and nothing is counted twice.
 *
 * Speed: per chunk the engine joins tail + chunk once and every rule reads
 * that one string (rules that carry less get a slice of it, which V8 does not
 * copy). Word-list rules with the same scopes are scanned in one pass of one
 * automaton over all their terms (MergedWordLists), each with the widest
 * carry of the group; each rule still gets exactly its own hits.
 */

export interface ClassifyOptions {
  /** `classify.optInTags` without brackets: `veilig`, `secure`, `vertrouwelijk`. */
  optInTags: readonly string[];
}

export type EngineResult = ClassifyResult & {
  /** The subject as extracted (all subject chunks), or undefined without one. */
  subject: string | undefined;
  /** The subject recipients see: every opt-in tag removed, spaces collapsed. */
  strippedSubject: string | undefined;
};

const ACTION_RANK: Record<Action, number> = { advise: 1, encrypt: 2, block: 3 };

/** Characters of context kept on each side of a hit near a chunk border. */
const MIN_CONTEXT = 64;
/** Longest span the engine carries between chunks (a detector may claim more). */
const MAX_CARRY = 64 * 1024;

/** Zegel's own subject tags that always mean "send securely": `[sms:+316…]`, `[verloopt:7d]`. */
const PARAMETER_TAGS = ['sms', 'verloopt'];

interface Candidate {
  location: Location;
  excerpt: string;
  /** Index of the location in message order. */
  locationIndex: number;
  /** UTF-16 offset within the location's whole text. */
  offset: number;
}

/** Hits of one rule over the whole message. */
class RuleHits {
  readonly keys = new Set<string>();
  /** One candidate per (location, excerpt), the first in message order. */
  readonly candidates = new Map<string, Candidate>();

  add(key: string, candidate: Candidate): void {
    this.keys.add(key);
    const id = `${candidate.location}\u0000${candidate.excerpt}`;
    const known = this.candidates.get(id);
    if (!known || order(candidate, known) < 0) this.candidates.set(id, candidate);
  }
}

function order(a: Candidate, b: Candidate): number {
  return a.locationIndex - b.locationIndex || a.offset - b.offset;
}

/** The text scan of one rule over one location. */
interface Scan {
  /** Where this rule's next window starts accepting hits (absolute offset). */
  from: number;
  right: number;
  carry: number;
}

/** One location's text stream. */
class LocationText {
  /** Absolute offset of the end of the text seen so far. */
  end = 0;
  /** The last characters seen (as many as the widest carry needs). */
  tail = '';
  readonly scans = new Map<number, Scan>();

  constructor(
    readonly location: Location,
    readonly scope: Scope,
    readonly index: number,
  ) {}
}

function carryFor(maxMatchLength: number): { right: number; carry: number } {
  const m = Number.isFinite(maxMatchLength) && maxMatchLength > 0 ? Math.min(Math.ceil(maxMatchLength), MAX_CARRY) : MAX_CARRY;
  const context = Math.max(m, MIN_CONTEXT);
  return { right: m + context, carry: m + 2 * context };
}

/** The scope of a location string, for unscannable parts. */
function scopeOf(location: Location): Scope {
  if (location === 'subject') return 'subject';
  if (location === 'body' || location.startsWith('body')) return 'body';
  if (location.startsWith('filename:')) return 'filename';
  return 'attachment';
}

/** One text rule: its index in the rule set and the spans it needs around a chunk border. */
interface TextRule {
  rule: CompiledRule & { kind: 'text' };
  i: number;
  right: number;
  carry: number;
}

/** One pass over a window: a rule's own detector, or merged word lists giving hits for several rules. */
interface ScanUnit {
  scopes: ReadonlySet<Scope>;
  rules: TextRule[];
  /** The widest carry of its rules: how much of the tail its window holds. */
  carry: number;
  /** Hits per rule of `rules`, in that order. */
  find(window: string): Hit[][];
}

interface Plan {
  textRules: TextRule[];
  units: ScanUnit[];
  widestCarry: number;
}

const plans = new WeakMap<RuleSet, Plan>();

function sameScopes(a: ReadonlySet<Scope>, b: ReadonlySet<Scope>): boolean {
  return a.size === b.size && [...a].every((s) => b.has(s));
}

/**
 * Builds what classify needs to scan text with `rules` (the merged word-list
 * automata) now, so that the first message does not wait for it. Called when
 * a rule set is loaded; classify builds it itself for sets made otherwise.
 */
export function prepareRules(rules: RuleSet): void {
  planFor(rules);
}

/** How a rule set scans text, built once per rule set. */
function planFor(rules: RuleSet): Plan {
  let plan = plans.get(rules);
  if (plan) return plan;
  const textRules: TextRule[] = rules.rules.flatMap((rule, i) => (rule.kind === 'text' ? [{ rule, i, ...carryFor(rule.detector.maxMatchLength) }] : []));
  const units: ScanUnit[] = [];
  const groups: TextRule[][] = [];
  for (const r of textRules) {
    if (r.rule.detector instanceof WordListDetector) {
      const group = groups.find((g) => sameScopes((g[0] as TextRule).rule.scopes, r.rule.scopes));
      if (group) group.push(r);
      else groups.push([r]);
      continue;
    }
    const detector = r.rule.detector;
    units.push({ scopes: r.rule.scopes, rules: [r], carry: r.carry, find: (window) => [detector.find(window)] });
  }
  for (const group of groups) {
    const carry = Math.max(...group.map((r) => r.carry));
    if (group.length === 1) {
      const detector = (group[0] as TextRule).rule.detector;
      units.push({ scopes: (group[0] as TextRule).rule.scopes, rules: group, carry, find: (window) => [detector.find(window)] });
      continue;
    }
    const merged = new MergedWordLists(group.map((r) => r.rule.detector as WordListDetector));
    units.push({ scopes: (group[0] as TextRule).rule.scopes, rules: group, carry, find: (window) => merged.find(window) });
  }
  plan = { textRules, units, widestCarry: Math.max(0, ...textRules.map((r) => r.carry)) };
  plans.set(rules, plan);
  return plan;
}

export async function classify(events: AsyncIterable<ExtractEvent>, rules: RuleSet, options: ClassifyOptions): Promise<EngineResult> {
  const ruleList = rules.rules;
  const hits = ruleList.map(() => new RuleHits());
  const locations = new Map<Location, LocationText>();
  const { units, widestCarry } = planFor(rules);
  let subject: string | undefined;

  const locationFor = (location: Location, scope: Scope): LocationText => {
    let state = locations.get(location);
    if (!state) {
      state = new LocationText(location, scope, locations.size);
      locations.set(location, state);
    }
    return state;
  };

  /** Scans `text` (new text of `state`, or '' to flush) with every text rule for the scope. */
  const scanText = (state: LocationText, text: string, final: boolean) => {
    const end = state.end + text.length;
    const tail = state.tail;
    // One string for every rule: the tail (as much as the widest carry) and the chunk.
    const joined = final && !text ? tail : tail + text;
    for (const unit of units) {
      if (!unit.scopes.has(state.scope)) continue;
      let due = final;
      for (const { i, right, carry } of unit.rules) {
        let scan = state.scans.get(i);
        if (!scan) {
          scan = { from: 0, right, carry };
          state.scans.set(i, scan);
        }
        if (!final && end - scan.right > scan.from) due = true;
      }
      if (!due) continue;
      const carried = Math.min(tail.length, unit.carry);
      const window = carried === tail.length ? joined : joined.slice(tail.length - carried);
      if (!window) continue;
      const windowStart = state.end - carried;
      const found = unit.find(window);
      unit.rules.forEach(({ i }, k) => {
        const scan = state.scans.get(i) as Scan;
        const until = final ? Infinity : end - scan.right;
        if (!final && until <= scan.from) return;
        for (const hit of found[k] ?? []) {
          const start = windowStart + hit.start;
          if (start < scan.from || start >= until) continue;
          hits[i]!.add(hit.key, { location: state.location, excerpt: hit.excerpt, locationIndex: state.index, offset: start });
        }
        scan.from = final ? end : until;
      });
    }
    state.end = end;
    if (!widestCarry || !text) return;
    state.tail = text.length >= widestCarry ? text.slice(-widestCarry) : (state.tail + text).slice(-widestCarry);
  };

  for await (const event of events) {
    if (event.type === 'text') {
      const { chunk } = event;
      const state = locationFor(chunk.location, chunk.scope);
      if (chunk.scope === 'subject') subject = (subject ?? '') + chunk.text;
      scanText(state, chunk.text, false);
    } else {
      const { part } = event;
      const state = locationFor(part.location, scopeOf(part.location));
      ruleList.forEach((rule, i) => {
        if (rule.kind !== 'unscannable' || !rule.scopes.has(state.scope)) return;
        hits[i]!.add(`${part.location}\u0000${part.reason}`, { location: part.location, excerpt: part.reason, locationIndex: state.index, offset: state.end });
      });
    }
  }
  for (const state of locations.values()) scanText(state, '', true);

  // opt-in tags
  const tags = subject === undefined ? [] : findTags(subject, options.optInTags);
  if (tags.length) {
    const state = locationFor('subject', 'subject');
    ruleList.forEach((rule, i) => {
      if (rule.kind !== 'opt-in-tag') return;
      for (const tag of tags) hits[i]!.add(tag.key, { location: 'subject', excerpt: tag.excerpt, locationIndex: state.index, offset: tag.start });
    });
  }

  // thresholds → findings
  const findings: Array<Finding & { sort: Candidate; ruleIndex: number }> = [];
  ruleList.forEach((rule, i) => {
    const ruleHits = hits[i]!;
    const action = actionFor(rule.thresholds, ruleHits.keys.size);
    if (!action) return;
    for (const c of ruleHits.candidates.values()) {
      findings.push({ rule: rule.id, action, location: c.location, excerpt: c.excerpt, sort: c, ruleIndex: i });
    }
  });
  findings.sort((a, b) => order(a.sort, b.sort) || a.ruleIndex - b.ruleIndex);
  const matches: Finding[] = findings.map(({ rule, action, location, excerpt }) => ({ rule, action, location, excerpt }));

  const optInRules = new Set(ruleList.filter((r) => r.kind === 'opt-in-tag').map((r) => r.id));
  const subjectSensitive = matches.some((f) => f.action === 'encrypt' && f.location === 'subject' && !optInRules.has(f.rule));
  return {
    decision: decide(matches),
    subjectSensitive,
    matches,
    subject,
    strippedSubject: subject === undefined ? undefined : stripTags(subject, tags),
  };
}

/** The action of the highest threshold reached, or undefined below the lowest. */
function actionFor(thresholds: readonly Threshold[], distinct: number): Action | undefined {
  if (!distinct) return undefined;
  return thresholds.find((t) => distinct >= t.min)?.action;
}

/** The strictest action wins; advise alone delivers. */
export function decide(findings: readonly Finding[]): Decision {
  let strictest: Action | undefined;
  for (const f of findings) if (!strictest || ACTION_RANK[f.action] > ACTION_RANK[strictest]) strictest = f.action;
  return strictest === 'block' ? 'block' : strictest === 'encrypt' ? 'encrypt' : 'deliver';
}

export interface Tag {
  start: number;
  end: number;
  excerpt: string;
  key: string;
}

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/** Opt-in tags in a subject: `[veilig]` in any case, and `[sms:…]` / `[verloopt:…]`. */
export function findTags(subject: string, optInTags: readonly string[]): Tag[] {
  const plain = optInTags.map((t) => t.trim().replace(/^\[|\]$/g, '').trim()).filter(Boolean).map(escapeRegExp);
  const alternatives = [...(plain.length ? [`(${plain.join('|')})`] : []), `(${PARAMETER_TAGS.join('|')})\\s*:([^\\[\\]]*)`];
  const pattern = new RegExp(`\\[\\s*(?:${alternatives.join('|')})\\s*\\]`, 'giu');
  const tags: Tag[] = [];
  for (const m of subject.matchAll(pattern)) {
    const start = m.index;
    const end = start + m[0].length;
    const [, word, name, value] = plain.length ? m : [m[0], undefined, m[1], m[2]];
    let excerpt: string;
    if (word !== undefined) excerpt = `[${word.toLowerCase()}]`;
    else {
      const tagName = (name ?? '').toLowerCase();
      const tagValue = (value ?? '').trim();
      // a phone number is personal data: show it like a BSN, last three digits only
      excerpt = tagName === 'sms' ? `[sms:…${tagValue.replace(/\D/g, '').slice(-3)}]` : `[${tagName}:${tagValue}]`;
    }
    tags.push({ start, end, excerpt, key: excerpt });
  }
  return tags;
}

/** The subject without its tags, double spaces collapsed and trimmed. */
export function stripTags(subject: string, tags: readonly Tag[]): string {
  if (!tags.length) return subject;
  let out = '';
  let at = 0;
  for (const tag of tags) {
    out += `${subject.slice(at, tag.start)} `;
    at = tag.end;
  }
  out += subject.slice(at);
  return out.replace(/[ \t]{2,}/g, ' ').trim();
}
