import fs from 'node:fs';
import { Command, Option } from 'commander';
import { ZegelError } from '../errors.js';
import { withStore } from './context.js';
import { normaliseTarget, type Directory, type DirectoryEntry, type DirectoryPatch } from '../store/directory.js';
import type { Public } from '../store/store.js';
import { LANGUAGES, VERIFICATION_METHODS } from '../vocabulary.js';

/**
 * `zegel recipients set|import|list|remove` (DESIGN.md, "Contracts → Recipient
 * directory"). Access codes come only from standard input, never argv, and are
 * never printed. A problem with the input is one line on stderr and exit code 1;
 * a usage error is commander's message and exit code 2 (src/cli/context.ts).
 */
export function registerRecipientsCommands(program: Command): void {
  const recipients = program.command('recipients').description('the recipient directory: how recipients verify, per address or @domain');
  const configOption = () => new Option('-c, --config <file>', 'YAML configuration file (default: the embedded defaults, data in ./data)');

  recipients
    .command('set')
    .description('create or change the entry for an address or @domain (only the options given change)')
    .argument('<target>', 'an address (case-insensitive) or @domain (that domain exactly, not its subdomains)')
    .addOption(new Option('--method <method>', 'how the recipient verifies').choices(VERIFICATION_METHODS))
    .option('--phone <phone>', 'mobile number in E.164 for sms-code, such as +31612345678')
    .option('--access-code-stdin', 'read the access code (at least 8 characters) from standard input')
    .addOption(new Option('--language <language>', 'language of notifications and the reader').choices(LANGUAGES))
    .addOption(configOption())
    .action((target: string, options: { method?: string; phone?: string; accessCodeStdin?: boolean; language?: string; config?: string }, command: Command) => {
      const patch: DirectoryPatch = {};
      if (options.method !== undefined) patch.method = options.method;
      if (options.phone !== undefined) patch.phone = options.phone;
      if (options.language !== undefined) patch.language = options.language;
      if (!Object.keys(patch).length && !options.accessCodeStdin) {
        command.error('error: nothing to set: give --method, --phone, --access-code-stdin or --language', { exitCode: 2, code: 'zegel.nothingToSet' });
      }
      return run(options.config, async (directory) => {
        if (options.accessCodeStdin) patch.accessCode = await readAccessCode();
        const entry = await directory.set(target, patch);
        process.stdout.write(`set ${entry.target}: ${describe(entry)}\n`);
        const listed = (await directory.list()).find((e) => e.target === entry.target);
        for (const warning of listed?.warnings ?? []) process.stderr.write(`warning: ${entry.target}: ${warning}\n`);
      }, { create: true });
    });

  recipients
    .command('import')
    .description('apply a CSV file with the header target,method,phone,access_code,language (empty cell: unchanged); all rows or none')
    .argument('<file>', 'CSV file (UTF-8)')
    .addOption(configOption())
    .action((file: string, options: { config?: string }) =>
      run(options.config, async (directory) => {
        let text: string;
        try {
          text = fs.readFileSync(file, 'utf8');
        } catch (err) {
          throw new ZegelError('ZEGEL_DIRECTORY_IMPORT', `cannot read ${file}: ${(err as Error).message}`);
        }
        const result = await directory.importCsv(text, file);
        process.stdout.write(`imported ${file}: ${result.rows} row${result.rows === 1 ? '' : 's'} (${result.created} new, ${result.updated} updated)\n`);
        for (const entry of await directory.list()) {
          for (const warning of entry.warnings) process.stderr.write(`warning: ${entry.target}: ${warning}\n`);
        }
      }, { create: true }),
    );

  recipients
    .command('list')
    .description('show every entry (never access codes: only whether one is set)')
    .option('--json', 'one JSON array on stdout')
    .addOption(configOption())
    .action((options: { json?: boolean; config?: string }) =>
      run(options.config, async (directory) => {
        const entries = await directory.list();
        if (options.json) {
          const out = entries.map((e) => ({
            target: e.target,
            method: e.method ?? null,
            phone: e.phone ?? null,
            language: e.language ?? null,
            hasAccessCode: e.hasAccessCode,
            updatedAt: new Date(e.updatedAt).toISOString(),
            warnings: e.warnings,
          }));
          process.stdout.write(`${JSON.stringify(out, null, 2)}\n`);
          return;
        }
        if (!entries.length) {
          process.stdout.write('no entries: every recipient gets verification.default\n');
          return;
        }
        const width = Math.max(...entries.map((e) => e.target.length));
        for (const e of entries) {
          process.stdout.write(`${e.target.padEnd(width)}  ${describe(e) || '(nothing set)'}\n`);
          for (const warning of e.warnings) process.stdout.write(`${''.padEnd(width)}  warning: ${warning}\n`);
        }
      }),
    );

  recipients
    .command('remove')
    .description('delete the entry for an address or @domain')
    .argument('<target>', 'an address or @domain')
    .addOption(configOption())
    .action((target: string, options: { config?: string }) =>
      run(options.config, async (directory) => {
        const key = normaliseTarget(target);
        if (!(await directory.remove(key))) throw new ZegelError('ZEGEL_DIRECTORY_NOT_FOUND', `no entry for ${key}`);
        process.stdout.write(`removed ${key}\n`);
      }),
    );
}

/** `method=… phone=… language=… access-code=set`, only the fields set at this level. */
function describe(entry: DirectoryEntry): string {
  const parts: string[] = [];
  if (entry.method) parts.push(`method=${entry.method}`);
  if (entry.phone) parts.push(`phone=${entry.phone}`);
  if (entry.language) parts.push(`language=${entry.language}`);
  if (entry.hasAccessCode) parts.push('access-code=set');
  return parts.join(' ');
}

/**
 * Runs `fn` on the directory of the admin store (src/cli/context.ts: says the
 * data directory, refuses to invent a database, one exit-code rule): a
 * ZegelError from `fn` (an import's problems too) is reported on stderr with
 * exit code 1. Only `set` and `import` with --config make the database when
 * there is none yet (filling the directory before the relay's first start).
 */
function run(configFile: string | undefined, fn: (directory: Public<Directory>) => Promise<void>, options: { create?: boolean } = {}): Promise<void> {
  return withStore(configFile, (store) => fn(store.directory), options);
}

/** The access code from standard input: one line, its line ending removed. */
async function readAccessCode(): Promise<string> {
  if (process.stdin.isTTY) process.stderr.write('access code (then Enter and Ctrl-D): ');
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  const code = Buffer.concat(chunks).toString('utf8').replace(/\r?\n$/, '');
  if (!code) throw new ZegelError('ZEGEL_DIRECTORY_ACCESS_CODE', '--access-code-stdin: standard input is empty (pipe the code in, e.g. from a password manager)');
  return code;
}
