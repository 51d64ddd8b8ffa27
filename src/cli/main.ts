import { Command, Option } from 'commander';
import { completeHostname, defaultConfig, loadConfigFile, type LoadedConfig } from '../config/load.js';
import { assertRelayScope, hostnameWarning } from '../config/validate.js';
import { assertDriversAvailable, unavailableDrivers } from '../config/drivers.js';
import { RELAY_ROLES, type RelayRole } from '../config/roles.js';
import { loadSharedKeys } from '../crypto/shared-keys.js';
import { ZegelError } from '../errors.js';
import { createLogger } from '../log.js';
import { hashPassword } from '../smtp/policy.js';
import { registerAuditCommands } from './audit-commands.js';
import { registerClassifyCommands } from './classify-commands.js';
import { report, usageExit, withWork } from './context.js';
import { registerDbCommands } from './db-commands.js';
import { registerKeysCommands } from './keys-commands.js';
import { registerMessagesCommands } from './messages-commands.js';
import { registerQueueCommands } from './queue-commands.js';
import { registerRecipientsCommands } from './recipients-commands.js';

/**
 * The configuration a relay runs with (start, check-config, SIGHUP): valid, relaying only for whom it says
 * (config/validate.ts), and with smtp.hostname filled in (this host's fully qualified name when it has one).
 */
async function load(file: string | undefined): Promise<LoadedConfig> {
  const loaded = file ? loadConfigFile(file) : defaultConfig();
  assertRelayScope(loaded.config, loaded.input, loaded.source ?? 'embedded default');
  return completeHostname(loaded);
}

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

async function start(options: { config?: string; role: RelayRole }): Promise<void> {
  const { config, source } = await load(options.config);
  // a cluster's keys come from files every node shares: read them all (making none) before anything else
  const keys = config.store.driver === 'postgres' ? loadSharedKeys(config) : undefined;
  // a driver the contract names but this build lacks: refused before anything is opened or made
  assertDriversAvailable(config, source ?? 'embedded default');
  const log = createLogger(config.log.level);
  const dotless = hostnameWarning(config);
  if (dotless) log.warn({ setting: 'smtp.hostname', hostname: config.smtp.hostname }, dotless);
  if (!source) log.info({ dataDir: config.data.dir, target: config.delivery.target, outbox: config.delivery.outboxDir }, 'no --config given: running the embedded default (loopback only, SQLite in ./data, delivery to the outbox in ./outbox)');
  else log.info({ config: source }, 'configuration loaded');
  // loaded here, not at the top: admin commands then start without the relay's modules (PDF engine, HTTP server, …)
  const { Relay } = await import('../relay.js');
  const relay = await Relay.start({ config, log, role: options.role, ...(keys ? { keys } : {}) });
  let stopping = false;
  const shutdown = (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, 'draining');
    relay.stop().then(
      () => process.exit(0),
      (err: Error) => {
        log.error({ err: { message: err.message } }, 'drain failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', () => shutdown('SIGTERM'));
  process.on('SIGINT', () => shutdown('SIGINT'));
  // SIGHUP (systemctl reload): read the file again; apply what is safe live, log what needs a restart
  process.on('SIGHUP', () => {
    if (stopping) return;
    if (!options.config) {
      log.info({ signal: 'SIGHUP' }, 'no --config file to reload; rules reloaded only');
      relay.reload(config);
      return;
    }
    load(options.config).then(
      (next) => {
        if (stopping) return;
        log.info({ signal: 'SIGHUP', config: next.source }, 'reloading configuration');
        relay.reload(next.config);
      },
      (err: Error) => {
        relay.metrics.configReload(false);
        log.error({ signal: 'SIGHUP', config: options.config, err: { message: err.message } }, 'configuration reload failed; the running configuration stays');
      },
    );
  });
}

export function buildCli(): Command {
  // every command inherits the override: usage errors exit 2 (the rule in src/cli/context.ts)
  const program = new Command('zegel')
    .description('Zegel secure-mail relay')
    .showHelpAfterError()
    .exitOverride(usageExit);
  program
    .command('start')
    .description('run the relay (with no --config: the embedded default)')
    .option('-c, --config <file>', 'YAML configuration file')
    .addOption(new Option('--role <role>', 'what this node runs (smtp, worker and reader need store.driver postgres)').choices(RELAY_ROLES).default('all'))
    .action(start);
  program
    .command('check-config')
    .description('validate a configuration file and print the effective configuration as JSON')
    .requiredOption('-c, --config <file>', 'YAML configuration file')
    .action(async (options: { config: string }) => {
      const { config } = await load(options.config);
      process.stdout.write(`${JSON.stringify(config, null, 2)}\n`);
      const dotless = hostnameWarning(config);
      if (dotless) process.stderr.write(`warning: ${dotless}\n`);
      for (const problem of unavailableDrivers(config)) process.stderr.write(`warning: zegel start refuses this configuration: ${problem}\n`);
      const { deliveryFileProblems, deliveryWarnings } = await import('../deliver/routes.js');
      for (const problem of deliveryFileProblems(config.delivery)) process.stderr.write(`warning: zegel start refuses this configuration: ${problem}\n`);
      for (const warning of deliveryWarnings(config.delivery)) process.stderr.write(`warning: ${warning}\n`);
      if ([config.delivery.target, config.delivery.internalTarget].includes('outbox')) {
        process.stderr.write(`delivered mail goes to the outbox ${config.delivery.outboxDir} (outside data.dir ${config.data.dir})\n`);
      }
    });
  program
    .command('hash-password')
    .description('read a password on standard input and print its argon2id hash for smtp.auth.users')
    .action(() =>
      withWork(async () => {
        const password = (await readStdin()).replace(/\r?\n$/, '');
        if (password.length < 12) throw new ZegelError('ZEGEL_PASSWORD_INPUT', 'the password must be at least 12 characters');
        process.stdout.write(`${await hashPassword(password)}\n`);
      }),
    );
  registerClassifyCommands(program);
  registerRecipientsCommands(program);
  registerMessagesCommands(program);
  registerAuditCommands(program);
  registerQueueCommands(program);
  registerKeysCommands(program);
  registerDbCommands(program);
  return program;
}

export async function main(argv: string[]): Promise<void> {
  try {
    await buildCli().parseAsync(argv);
  } catch (err) {
    // what reaches here happened before a command's work (usage, configuration, start-up): src/cli/context.ts
    report(err, 'setup');
  }
}
