import { compileRuleDir, formatProblem, type RuleProblem } from './load.js';

/**
 * `zegel rules lint`: every problem in a rules directory, as `{file, line,
 * problem}`, in file order. Lint and load share one compiler, so a set that
 * lints clean is exactly a set the relay accepts: schema errors, YAML errors,
 * duplicate ids, unknown word lists, bad thresholds, regular expressions
 * RE2 cannot compile (RE2 runs in linear time, so nothing it accepts can
 * backtrack catastrophically) and bad prefix terms (`ni*er`, `nier**`,
 * `nie*`), at their line in the list file or the rule file.
 */
export function lintRules(dir: string): RuleProblem[] {
  return compileRuleDir(dir).problems;
}

/** A summary of a clean set, for the OK line. */
export function lintSummary(dir: string): { problems: RuleProblem[]; rules: number } {
  const { ruleSet, problems } = compileRuleDir(dir);
  return { problems, rules: ruleSet?.rules.length ?? 0 };
}

export { formatProblem, type RuleProblem };
