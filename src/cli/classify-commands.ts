import path from 'node:path';
import { format } from 'node:util';
import type { Command } from 'commander';
import { defaultConfig, loadConfigFile } from '../config/load.js';
import { formatProblem, lintSummary } from '../classify/rules/lint.js';
import { loadRules, shippedRulesDir, type RuleSet } from '../classify/rules/load.js';
import type { ScanLine } from '../classify/scan.js';

/**
 * `zegel rules lint [DIR]` and `zegel scan [--config FILE] [--rules DIR]
 * [--json] FILE…` (DESIGN.md, "Contracts → zegel scan").
 */
export function registerClassifyCommands(program: Command): void {
  const rules = program.command('rules').description('rule files of the content classifier');
  rules
    .command('lint')
    .description('validate a rules directory and print every problem as file:line: problem')
    .argument('[dir]', 'rules directory (default: the rules shipped with Zegel)')
    .action((dir: string | undefined) => {
      const target = dir ?? shippedRulesDir();
      const { problems, rules: count } = lintSummary(target);
      if (problems.length) {
        for (const p of problems) process.stdout.write(`${formatProblem(p)}\n`);
        process.stderr.write(`${problems.length} problem${problems.length === 1 ? '' : 's'} in ${target}\n`);
        process.exitCode = 1;
        return;
      }
      process.stdout.write(`OK: ${count} rule${count === 1 ? '' : 's'} in ${target}\n`);
    });

  program
    .command('scan')
    .description('classify .eml files as the relay would (dry run) and explain each decision')
    .option('-c, --config <file>', 'YAML configuration file (default: the embedded defaults)')
    .option('--rules <dir>', 'rules directory (default: rules.dir of the configuration, else the shipped rules)')
    .option('--json', 'one JSON object per file on stdout, nothing else')
    .argument('<files...>', 'message files (.eml)')
    .action(async (files: string[], options: { config?: string; rules?: string; json?: boolean }) => {
      const { config } = options.config ? loadConfigFile(options.config) : defaultConfig();
      const dir = options.rules ? path.resolve(options.rules) : (config.rules.dir ?? shippedRulesDir());
      const ruleSet = loadRules(dir);
      const scanOptions = { rules: ruleSet, optInTags: config.classify.optInTags, limits: config.classify.limits };
      // stdout carries results only: whatever a parsing library prints goes to stderr
      const toStderr = (...args: unknown[]) => void process.stderr.write(`${format(...args)}\n`);
      console.log = console.info = console.debug = toStderr;
      // the extractors (PDF engine included) load only for scan
      const { scanFile } = await import('../classify/scan.js');
      let failed = false;
      for (const file of files) {
        const line = await scanFile(file, scanOptions);
        if ('error' in line) failed = true;
        process.stdout.write(options.json ? `${JSON.stringify(line)}\n` : human(line, ruleSet));
      }
      if (failed) process.exitCode = 1;
    });
}

/** The human-readable form: the decision, then one line per finding with the rule's description. */
function human(line: ScanLine, ruleSet: RuleSet): string {
  if ('error' in line) return `${line.file}: cannot scan: ${line.error}\n`;
  const out = [`${line.file}: ${line.decision}${line.subjectSensitive ? ' (sensitive subject: notification uses a neutral subject)' : ''}`];
  if (!line.matches.length) out.push('  no findings');
  const descriptions = new Map(ruleSet.rules.map((r) => [r.id, r.description.en]));
  for (const m of line.matches) {
    const description = descriptions.get(m.rule);
    out.push(`  ${m.action.padEnd(7)} ${m.rule}  ${m.location}  ${m.excerpt}${description ? `  (${description})` : ''}`);
  }
  return `${out.join('\n')}\n`;
}
