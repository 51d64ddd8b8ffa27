import fs from 'node:fs';
import type { Readable } from 'node:stream';
import type { Logger } from '../log.js';
import { classify, type EngineResult } from './engine.js';
import { extractMessage } from './extract/index.js';
import { compileRuleDir, formatProblem, loadRules, type RuleSet } from './rules/load.js';
import type { ExtractLimits } from './types.js';

export interface ClassifierOptions {
  dir: string;
  optInTags: readonly string[];
  limits: ExtractLimits;
  log: Logger;
}

/**
 * The classifier as the relay runs it: the active rule set, loaded at start
 * (a broken set stops start-up) and reloaded when the files change (a broken
 * set is refused with a logged error and the previous set stays active).
 */
export class ClassifierService {
  readonly #options: ClassifierOptions;
  #rules: RuleSet;
  #watchers: fs.FSWatcher[] = [];
  #timer: NodeJS.Timeout | undefined;
  #listeners: Array<(outcome: { ok: boolean; problems: string[] }) => void> = [];

  constructor(options: ClassifierOptions) {
    this.#options = options;
    this.#rules = loadRules(options.dir);
    options.log.info({ rulesDir: options.dir, rules: this.#rules.rules.length }, 'rules loaded');
  }

  get rules(): RuleSet {
    return this.#rules;
  }

  /** Classifies one message read from `source` with the rule set active now. */
  classify(source: Readable): Promise<EngineResult> {
    return classify(extractMessage(source, this.#options.limits), this.#rules, { optInTags: this.#options.optInTags });
  }

  /** Loads the rules directory again; keeps the current set when the new one has problems. */
  reload(): { ok: boolean; problems: string[] } {
    const { ruleSet, problems } = compileRuleDir(this.#options.dir);
    const outcome = { ok: Boolean(ruleSet), problems: problems.map(formatProblem) };
    if (ruleSet) {
      this.#rules = ruleSet;
      this.#options.log.info({ rulesDir: this.#options.dir, rules: ruleSet.rules.length }, 'rules reloaded');
    } else {
      this.#options.log.error({ rulesDir: this.#options.dir, problems: outcome.problems }, 'rule set refused; the previous rules stay active');
    }
    for (const listener of this.#listeners) listener(outcome);
    return outcome;
  }

  /** Called after every reload attempt (tests, metrics). */
  onReload(listener: (outcome: { ok: boolean; problems: string[] }) => void): void {
    this.#listeners.push(listener);
  }

  /** Reloads on changes to the rule files or the word lists (debounced: editors write in steps). */
  watch(debounceMs = 200): void {
    const schedule = () => {
      clearTimeout(this.#timer);
      this.#timer = setTimeout(() => this.reload(), debounceMs);
    };
    for (const dir of [this.#options.dir, `${this.#options.dir}/lists`]) {
      if (!fs.existsSync(dir)) continue;
      const watcher = fs.watch(dir, schedule);
      watcher.on('error', (err) => this.#options.log.warn({ dir, err: { message: err.message } }, 'cannot watch the rules directory'));
      this.#watchers.push(watcher);
    }
  }

  close(): void {
    clearTimeout(this.#timer);
    for (const watcher of this.#watchers) watcher.close();
    this.#watchers = [];
  }
}
