import crypto from 'node:crypto';
import { Option, type Command } from 'commander';
import { CSV_BOM, CSV_HEADER, csvLine, csvRecord, jsonLine, type AuditFilter } from '../audit/export.js';
import { loadPublicKey, loadSigningKey, publicKeyPem } from '../audit/checkpoint.js';
import { systemClock } from '../clock.js';
import type { Config } from '../config/schema.js';
import { parseDuration } from '../config/units.js';
import { ZegelError } from '../errors.js';
import { EXIT, loadAdminConfig, withStore, type AdminStore } from './context.js';

const configOption = () => new Option('-c, --config <file>', 'YAML configuration file (default: the embedded defaults, data in ./data)');

const EXPORT_HELP = `
Output:
  json  one JSON object per line: {seq, at (ISO 8601 UTC), messageId, recipient, event,
        actor, clientIp, tls, detail, hash}; tls (delivery attempts over SMTP):
        {version (null: plain text), cipher, verified, verifiedBy, mtaSts, policy}
  csv   for a spreadsheet in Dutch locale: UTF-8 with BOM, ';' between cells, CRLF,
        times as yyyy-mm-dd hh:mm:ss in Europe/Amsterdam; a cell starting with = + - @
        gets a leading ' so it is never run as a formula.
--since / --until: a date (2026-01-05, midnight in Europe/Amsterdam), a date-time with
  offset (2026-01-05T10:00:00+01:00), or a duration back from now (7d, 12h).
  --since is inclusive, --until exclusive.`;

/** A date (Amsterdam midnight), an ISO date-time, or a duration back from now. */
export function parseMoment(value: string, flag: string, now = systemClock.now()): number {
  const text = value.trim();
  if (/^\d+(\.\d+)?\s*[a-z]+$/i.test(text)) {
    const duration = parseDuration(text);
    if (duration !== undefined) return now - duration;
  }
  const date = /^(\d{4})-(\d{2})-(\d{2})$/.exec(text);
  if (date) {
    const guess = Date.UTC(Number(date[1]), Number(date[2]) - 1, Number(date[3]));
    // Amsterdam's offset at that moment (and once more, for the day a DST change falls on)
    let at = guess - amsterdamOffset(guess);
    at = guess - amsterdamOffset(at);
    if (Number.isFinite(at)) return at;
  }
  if (/^\d{4}-\d{2}-\d{2}[T ]/.test(text)) {
    const at = Date.parse(text);
    if (Number.isFinite(at)) return at;
  }
  throw new ZegelError('ZEGEL_CLI_INPUT', `${flag} ${JSON.stringify(value)}: give a date (2026-01-05), a date-time (2026-01-05T10:00:00+01:00) or a duration (7d, 12h)`);
}

function amsterdamOffset(at: number): number {
  const parts = Object.fromEntries(
    new Intl.DateTimeFormat('en-GB', { timeZone: 'Europe/Amsterdam', year: 'numeric', month: 'numeric', day: 'numeric', hour: 'numeric', minute: 'numeric', second: 'numeric', hourCycle: 'h23' })
      .formatToParts(new Date(at))
      .map((p) => [p.type, p.value]),
  );
  const wall = Date.UTC(Number(parts.year), Number(parts.month) - 1, Number(parts.day), Number(parts.hour), Number(parts.minute), Number(parts.second));
  return wall - Math.floor(at / 1000) * 1000;
}

/** The signing key of `checkpoint` and `purge`: made (and said so on stderr) when there is none yet. */
function signingKeyMadeIfMissing(config: Config): ReturnType<typeof loadSigningKey>['key'] {
  const { key, file, created } = loadSigningKey({ signingKeyFile: config.audit.signingKeyFile, dataDir: config.data.dir, create: true });
  if (created) process.stderr.write(`zegel: made the audit signing key ${file}; keep its public key (zegel audit public-key) outside the data directory\n`);
  return key;
}

function write(text: string): void {
  process.stdout.write(text);
}

export function registerAuditCommands(program: Command): void {
  const audit = program
    .command('audit')
    .description('export the audit trail (JSON lines or CSV); verify it; sign its head; print the public key')
    .option('--since <when>', 'records at or after this moment')
    .option('--until <when>', 'records before this moment')
    .option('--message <id>', 'one message: queue id or secure message id')
    .option('--recipient <address>', 'one recipient (case-insensitive)')
    .option('--event <type>', 'one event type (received, decided, opened, admin-action, …)')
    .addOption(new Option('--format <format>', 'output format').choices(['json', 'csv']).default('json'))
    .addOption(configOption())
    .addHelpText('after', EXPORT_HELP)
    .action((options: { since?: string; until?: string; message?: string; recipient?: string; event?: string; format: 'json' | 'csv'; config?: string }) =>
      withStore(
        options.config,
        async (store, filter) => {
          // an async iterable on PostgreSQL (rows come page by page), a plain one on SQLite
          if (options.format === 'csv') {
            const out: string[] = [CSV_BOM + csvLine(CSV_HEADER)];
            for await (const r of store.audit.records(filter)) out.push(csvRecord(r));
            write(out.join(''));
          } else {
            const out: string[] = [];
            for await (const r of store.audit.records(filter)) out.push(jsonLine(r));
            write(out.join(''));
          }
        },
        {
          // checked before anything is read: a bad --since/--until cannot run (exit 2)
          setup: (): AuditFilter => ({
            since: options.since === undefined ? undefined : parseMoment(options.since, '--since'),
            until: options.until === undefined ? undefined : parseMoment(options.until, '--until'),
            message: options.message?.trim(),
            recipient: options.recipient,
            event: options.event?.trim(),
          }),
        },
      ),
    );

  audit
    .command('verify')
    .description('walk the hash chain and check every signed checkpoint; exit 0 when intact, 1 naming the first bad record')
    .option('--public-key <file>', 'the checkpoint public key (PEM), a copy kept outside the data directory')
    .addOption(configOption())
    .action((options: { publicKey?: string; config?: string }, command: Command) => {
      const all = command.optsWithGlobals<{ publicKey?: string; config?: string }>();
      return withStore(
        options.config ?? all.config,
        async (store, key) => {
          const result = await store.audit.verify(key);
          if (!result.ok) {
            write(`audit chain broken: ${result.problem}\n`);
            process.exitCode = EXIT.problem;
            return;
          }
          const last = result.lastCheckpoint;
          write(
            `audit chain intact: ${result.records} records, ${result.checkpoints} checkpoints, ` +
              (last ? `last checkpoint at ${new Date(last.at).toISOString()} (record ${last.seq})` : 'no checkpoint yet') +
              (result.unsigned ? `; ${result.unsigned} records after it are not signed yet` : '') +
              '\n',
          );
        },
        {
          // the key: without it the command cannot run (exit 2), unless nothing was ever signed
          setup: async (store: AdminStore): Promise<crypto.KeyObject> => {
            if (options.publicKey) return loadPublicKey(options.publicKey);
            try {
              const key = crypto.createPublicKey(loadSigningKey({ signingKeyFile: store.config.audit.signingKeyFile, dataDir: store.dataDir, create: false }).key);
              process.stderr.write('zegel: checking checkpoints with the signing key next to the data; --public-key FILE checks against a copy kept elsewhere\n');
              return key;
            } catch (err) {
              if (await store.audit.hasCheckpoints()) throw err;
              return crypto.generateKeyPairSync('ed25519').publicKey; // nothing signed to check
            }
          },
        },
      );
    });

  audit
    .command('checkpoint')
    .description('sign the chain head now (the relay also does this every audit.checkpointInterval)')
    .addOption(configOption())
    .action((options: { config?: string }, command: Command) => {
      return withStore(
        options.config ?? command.optsWithGlobals<{ config?: string }>().config,
        async (store, key) => {
          const cp = await store.audit.checkpoint(key, systemClock.now(), { force: true });
          write(cp ? `checkpoint ${cp.id}: record ${cp.seq}, ${cp.hash}, at ${new Date(cp.at).toISOString()}\n` : 'nothing to sign: the audit trail is empty\n');
        },
        { setup: (store: AdminStore) => signingKeyMadeIfMissing(store.config) },
      );
    });

  audit
    .command('purge')
    .description('remove records older than retention.audit from the start of the chain (the relay does this with each checkpoint); signs first')
    .addOption(configOption())
    .action((options: { config?: string }, command: Command) => {
      return withStore(
        options.config ?? command.optsWithGlobals<{ config?: string }>().config,
        async (store, key) => {
          const result = await store.audit.purge(key, systemClock.now(), store.config.retention.audit);
          write(result.anchor ? `removed ${result.removed} records, through record ${result.anchor.seq}; the chain now starts after it\n` : 'nothing past retention.audit\n');
        },
        { setup: (store: AdminStore) => signingKeyMadeIfMissing(store.config) },
      );
    });

  audit
    .command('public-key')
    .description('print the checkpoint public key (PEM); keep a copy outside the data directory')
    .addOption(configOption())
    .action((options: { config?: string }, command: Command) => {
      // reads no database; a missing key cannot run (exit 2)
      const { config } = loadAdminConfig(options.config ?? command.optsWithGlobals<{ config?: string }>().config);
      const { key } = loadSigningKey({ signingKeyFile: config.audit.signingKeyFile, dataDir: config.data.dir, create: false });
      write(publicKeyPem(key));
    });
}
