import fs from 'node:fs';
import { packageDir } from '../../package-dir.js';
import path from 'node:path';
import { isMap, isScalar, isSeq, LineCounter, parseDocument, type Document } from 'yaml';
import type { z } from 'zod';
import { ZegelError } from '../../errors.js';
import { createDetector, parseWordList, type DetectorSpec } from '../detectors/index.js';
import { prefixTermProblem } from '../normalise.js';
import { prepareRules } from '../engine.js';
import type { Action, Detector, Scope } from '../types.js';
import { ruleFileSchema, type RuleSource } from './schema.js';

/**
 * Loads a rules directory: every `*.yaml` / `*.yml` file in it (in name
 * order) plus the word lists the rules name, read from `lists/<name>.txt`.
 * Every problem is reported as `file:line: problem`; a set with any problem is
 * refused as a whole (the relay then keeps its previous set). A term that
 * misuses the prefix syntax (`ni*er`, `nier**`, `nie*`: normalise.ts
 * prefixTermProblem) is reported at its own line: in `lists/<name>.txt` for a
 * list (once, however many rules use the list), in the rule file for `terms:`
 * and a regex rule's `keywords:`.
 */

export interface RuleProblem {
  file: string;
  /** 1-based; 0 when the problem concerns a whole file or directory. */
  line: number;
  problem: string;
}

export interface Threshold {
  min: number;
  action: Action;
}

interface RuleBase {
  id: string;
  description: { nl: string; en: string };
  scopes: ReadonlySet<Scope>;
  /** Highest `min` first; a rule with a plain `action` has `[{ min: 1, action }]`. */
  thresholds: readonly Threshold[];
  /** Where the rule is written, for messages. */
  source: { file: string; line: number };
}

export type CompiledRule =
  | (RuleBase & { kind: 'text'; detector: Detector })
  | (RuleBase & { kind: 'unscannable' })
  | (RuleBase & { kind: 'opt-in-tag' });

export interface RuleSet {
  /** The directory it was loaded from ('' for sets built in code). */
  dir: string;
  /** In file order, then in the order within each file. */
  rules: readonly CompiledRule[];
}

const ACTION_RANK: Record<Action, number> = { advise: 1, encrypt: 2, block: 3 };

/** The `rules/` shipped with the package, found from this module's own place (src/ or dist/src/). */
export function shippedRulesDir(): string {
  const dir = packageDir('rules');
  if (!dir) throw new ZegelError('ZEGEL_RULES_INVALID', 'cannot find the shipped rules/ directory next to package.json');
  return dir;
}

/** `file:line: problem` (`file: problem` for a whole file). */
export function formatProblem(p: RuleProblem): string {
  return p.line > 0 ? `${p.file}:${p.line}: ${p.problem}` : `${p.file}: ${p.problem}`;
}

/** Loads and compiles a rules directory; throws ZEGEL_RULES_INVALID listing every problem. */
export function loadRules(dir: string): RuleSet {
  const { ruleSet, problems } = compileRuleDir(dir);
  if (!ruleSet) {
    throw new ZegelError('ZEGEL_RULES_INVALID', `rule set ${dir} is refused:\n  ${problems.map(formatProblem).join('\n  ')}`);
  }
  return ruleSet;
}

/** Every problem in a rules directory, and the compiled set when there are none. */
export function compileRuleDir(dir: string): { ruleSet: RuleSet | undefined; problems: RuleProblem[] } {
  const problems: RuleProblem[] = [];
  let names: string[];
  try {
    names = fs
      .readdirSync(dir, { withFileTypes: true })
      .filter((e) => (e.isFile() || e.isSymbolicLink()) && /\.ya?ml$/.test(e.name))
      .map((e) => e.name)
      .sort();
  } catch (err) {
    return { ruleSet: undefined, problems: [{ file: dir, line: 0, problem: `cannot read the rules directory: ${(err as Error).message}` }] };
  }
  if (!names.length) return { ruleSet: undefined, problems: [{ file: dir, line: 0, problem: 'no rule files (*.yaml) in this directory' }] };

  const lists = new WordLists(path.join(dir, 'lists'));
  const seen = new Map<string, { file: string; line: number }>();
  const rules: CompiledRule[] = [];
  for (const name of names) {
    const file = path.join(dir, name);
    const parsed = parseRuleFile(file);
    problems.push(...parsed.problems);
    if (!parsed.rules) continue;
    parsed.rules.forEach((source, index) => {
      const at = (...p: Array<string | number>) => parsed.lineOf(['rules', index, ...p]);
      const report = (line: number, problem: string) => problems.push({ file, line, problem: `rule ${source.id}: ${problem}` });
      const first = seen.get(source.id);
      if (first) report(at('id'), `duplicate rule id (first defined at ${first.file}:${first.line})`);
      else seen.set(source.id, { file, line: at('id') });
      const compiled = compileRule(source, at, report, (p) => problems.push(p), lists, { file, line: at() });
      if (compiled) rules.push(compiled);
    });
  }
  if (problems.length) return { ruleSet: undefined, problems };
  const ruleSet: RuleSet = { dir, rules };
  prepareRules(ruleSet);
  return { ruleSet, problems };
}

type LineOf = (...p: Array<string | number>) => number;

function compileRule(
  source: RuleSource,
  at: LineOf,
  report: (line: number, problem: string) => void,
  reportElsewhere: (problem: RuleProblem) => void,
  lists: WordLists,
  where: { file: string; line: number },
): CompiledRule | undefined {
  let ok = true;
  const fail = (line: number, problem: string) => {
    ok = false;
    report(line, problem);
  };
  /** Word-list terms written in the rule (`terms:`, `keywords:`): each a valid term. */
  const checkTerms = (key: 'terms' | 'keywords' | 'near', terms: readonly string[] | undefined) =>
    terms?.forEach((term, i) => {
      const problem = prefixTermProblem(term);
      const path = key === 'near' ? ['near', 'terms', i] : [key, i];
      if (problem !== undefined) fail(at('detector', ...path), `detector.${path.slice(0, -1).join('.')}[${i}]: ${problem}`);
    });

  // action or thresholds
  let thresholds: Threshold[] = [];
  if (source.action && source.thresholds) fail(at('thresholds'), 'give either action or thresholds, not both');
  else if (!source.action && !source.thresholds) fail(at(), 'needs an action (encrypt, advise, block) or thresholds');
  else if (source.action) thresholds = [{ min: 1, action: source.action }];
  else if (source.thresholds) {
    const mins = new Map<number, number>();
    source.thresholds.forEach((t, i) => {
      if (mins.has(t.min)) fail(at('thresholds', i, 'min'), `two thresholds with min ${t.min}`);
      mins.set(t.min, i);
    });
    thresholds = [...source.thresholds].sort((a, b) => b.min - a.min);
    for (let i = 0; i + 1 < thresholds.length; i++) {
      const higher = thresholds[i]!;
      const lower = thresholds[i + 1]!;
      if (higher.min !== lower.min && ACTION_RANK[higher.action] <= ACTION_RANK[lower.action]) {
        fail(at('thresholds', mins.get(higher.min) ?? 0), `threshold min ${higher.min} (${higher.action}) must be stricter than min ${lower.min} (${lower.action}); more hits cannot mean a milder action`);
      }
    }
  }

  // scopes
  const scopes = new Set<Scope>();
  source.scopes.forEach((scope, i) => {
    if (scopes.has(scope)) fail(at('scopes', i), `scope ${scope} is listed twice`);
    scopes.add(scope);
  });

  const base = { id: source.id, description: source.description, scopes, thresholds, source: where };
  const d = source.detector;
  switch (d.kind) {
    case 'opt-in-tag':
      if (scopes.size !== 1 || !scopes.has('subject')) fail(at('scopes'), 'opt-in tags are read from the subject only: scopes must be [subject]');
      return ok ? { ...base, kind: 'opt-in-tag' } : undefined;
    case 'unscannable':
      return ok ? { ...base, kind: 'unscannable' } : undefined;
    case 'bsn':
    case 'iban':
    case 'measured-values':
      return withDetector({ kind: d.kind }, at('detector'));
    case 'wordlist': {
      if (!d.list && !d.lists && !d.terms) {
        fail(at('detector'), 'a wordlist detector needs list (a name from lists/), lists (several names) or terms');
        return undefined;
      }
      if (d.list && d.lists) fail(at('detector', 'lists'), 'give either list or lists, not both');
      checkTerms('terms', d.terms);
      const terms = [...(d.terms ?? [])];
      const readList = (name: string, line: number, into: string[]) => {
        const listed = lists.get(name);
        if ('missing' in listed) fail(line, `unknown word list "${name}" (no lists/${name}.txt)`);
        else if ('error' in listed) fail(line, `cannot read word list "${name}": ${listed.error}`);
        else if (listed.problems.length) {
          // reported at the list's own lines, by the first rule that names it
          ok = false;
          if (!listed.reported) listed.problems.forEach(reportElsewhere);
          listed.reported = true;
        } else if (!listed.terms.length) fail(line, `word list "${name}" has no terms`);
        else into.push(...listed.terms);
      };
      if (d.list) readList(d.list, at('detector', 'list'), terms);
      d.lists?.forEach((name, i) => {
        if (d.lists!.indexOf(name) !== i) fail(at('detector', 'lists', i), `detector.lists[${i}]: "${name}" is named twice`);
        else readList(name, at('detector', 'lists', i), terms);
      });
      const spec: DetectorSpec = { kind: 'wordlist', terms };
      if (d.near) {
        if (!d.near.list && !d.near.terms) fail(at('detector', 'near'), 'near needs list (a name from lists/) or terms: the cues a hit needs close by');
        checkTerms('near', d.near.terms);
        const cues = [...(d.near.terms ?? [])];
        if (d.near.list) readList(d.near.list, at('detector', 'near', 'list'), cues);
        spec.near = { terms: cues, within: d.near.within };
      }
      return ok ? withDetector(spec, at('detector')) : undefined;
    }
    case 'regex': {
      if (d.proximity !== undefined && !d.keywords) fail(at('detector', 'proximity'), 'proximity needs keywords');
      checkTerms('keywords', d.keywords);
      const spec: DetectorSpec = { kind: 'regex', pattern: d.pattern };
      if (d.flags !== undefined) spec.flags = d.flags;
      if (d.checksum !== undefined) spec.checksum = d.checksum;
      if (d.keywords !== undefined) spec.keywords = d.keywords;
      if (d.proximity !== undefined) spec.proximity = d.proximity;
      return ok ? withDetector(spec, at('detector', 'pattern')) : undefined;
    }
  }

  function withDetector(spec: DetectorSpec, line: number): CompiledRule | undefined {
    if (!ok) return undefined;
    try {
      return { ...base, kind: 'text', detector: createDetector(spec) };
    } catch (err) {
      const code = (err as { code?: unknown }).code;
      const message = (err as Error).message;
      report(line, code === 'ZEGEL_RULE_PATTERN' ? `pattern refused: ${message}` : `detector cannot be built: ${message}`);
      return undefined;
    }
  }
}

type ListResult = { terms: string[]; problems: RuleProblem[]; reported: boolean } | { missing: true } | { error: string };

/**
 * The terms that misuse the prefix syntax in a word list's text, at their
 * lines. Lines, comments and trimming as parseWordList reads them.
 */
function listTermProblems(file: string, text: string): RuleProblem[] {
  const problems: RuleProblem[] = [];
  text.split(/\r\n|\r|\n/).forEach((raw, i) => {
    const hash = raw.indexOf('#');
    const term = (hash === -1 ? raw : raw.slice(0, hash)).trim();
    const problem = term === '' ? undefined : prefixTermProblem(term);
    if (problem !== undefined) problems.push({ file, line: i + 1, problem });
  });
  return problems;
}

/** Word lists by name, each read once; problems are reported by the rules that name them. */
class WordLists {
  readonly #dir: string;
  readonly #cache = new Map<string, ListResult>();

  constructor(dir: string) {
    this.#dir = dir;
  }

  get(name: string): ListResult {
    let result = this.#cache.get(name);
    if (!result) {
      try {
        const file = path.join(this.#dir, `${name}.txt`);
        const text = fs.readFileSync(file, 'utf8');
        result = { terms: parseWordList(text), problems: listTermProblems(file, text), reported: false };
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        result = code === 'ENOENT' || code === 'ENOTDIR' ? { missing: true } : { error: (err as Error).message };
      }
      this.#cache.set(name, result);
    }
    return result;
  }
}

interface ParsedFile {
  rules: RuleSource[] | undefined;
  problems: RuleProblem[];
  /** The line of the node at a path in the file (the deepest part of the path that exists). */
  lineOf(p: ReadonlyArray<PropertyKey>): number;
}

function parseRuleFile(file: string): ParsedFile {
  const problems: RuleProblem[] = [];
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    return { rules: undefined, problems: [{ file, line: 0, problem: `cannot read: ${(err as Error).message}` }], lineOf: () => 0 };
  }
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, uniqueKeys: true, prettyErrors: false });
  const lineOf = (p: ReadonlyArray<PropertyKey>, key?: string) => nodeLine(doc, lineCounter, p, key);
  if (doc.errors.length) {
    // an error at the very end (an unclosed bracket) points at the last line, not past it
    const lastLine = Math.max(1, text.replace(/\n$/, '').split('\n').length);
    for (const e of doc.errors) {
      const line = Math.min(lastLine, e.linePos?.[0].line ?? lineCounter.linePos(e.pos[0]).line);
      problems.push({ file, line, problem: `YAML: ${e.message.split('\n')[0]!.replace(/ at line \d+, column \d+:?$/, '')}` });
    }
    return { rules: undefined, problems, lineOf };
  }
  const input: unknown = doc.toJS();
  if (input === null || input === undefined) {
    return { rules: undefined, problems: [{ file, line: 0, problem: 'empty file: expected rules: followed by a list of rules' }], lineOf };
  }
  const result = ruleFileSchema.safeParse(input);
  if (!result.success) {
    for (const issue of result.error.issues) problems.push(...issueProblems(file, issue, lineOf));
    return { rules: undefined, problems, lineOf };
  }
  return { rules: result.data.rules, problems, lineOf };
}

function issueProblems(file: string, issue: z.core.$ZodIssue, lineOf: (p: ReadonlyArray<PropertyKey>, key?: string) => number): RuleProblem[] {
  if (issue.code === 'unrecognized_keys') {
    return issue.keys.map((key) => ({ file, line: lineOf(issue.path, key), problem: `${formatPath([...issue.path, key])}: unknown key` }));
  }
  return [{ file, line: lineOf(issue.path), problem: `${formatPath(issue.path)}: ${issue.message}` }];
}

/** `rules[0].detector.kind` */
function formatPath(p: ReadonlyArray<PropertyKey>): string {
  if (!p.length) return '(top level)';
  return p.map((seg, i) => (typeof seg === 'number' ? `[${seg}]` : `${i ? '.' : ''}${String(seg)}`)).join('');
}

/**
 * Walks a YAML document along a (zod) path and returns the 1-based line of the
 * deepest node found: the key of a mapping entry, or a sequence item. With
 * `key`, the line of that key in the mapping at the path (unknown keys).
 */
function nodeLine(doc: Document, lineCounter: LineCounter, p: ReadonlyArray<PropertyKey>, key?: string): number {
  let node: unknown = doc.contents;
  let offset = (node as { range?: [number, number, number] } | null)?.range?.[0] ?? 0;
  const segments: PropertyKey[] = key === undefined ? [...p] : [...p, key];
  for (const seg of segments) {
    if (isMap(node)) {
      const pair = node.items.find((item) => isScalar(item.key) && String(item.key.value) === String(seg));
      if (!pair) break;
      offset = (pair.key as { range?: [number, number, number] }).range?.[0] ?? offset;
      node = pair.value;
    } else if (isSeq(node) && typeof seg === 'number') {
      const item = node.items[seg] as { range?: [number, number, number] } | undefined;
      if (!item) break;
      offset = item.range?.[0] ?? offset;
      node = item;
    } else break;
  }
  return lineCounter.linePos(offset).line;
}
