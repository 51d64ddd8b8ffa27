import { CommanderError } from 'commander';
import type { AuditTrailStore } from '../audit/trail.js';
import { systemClock, type Clock } from '../clock.js';
import { defaultConfig, loadConfigFile } from '../config/load.js';
import type { Config } from '../config/schema.js';
import { ZegelError } from '../errors.js';
import { createLogger, type Logger } from '../log.js';
import type { StoredJob } from '../queue/rows.js';
import type { HeldJob, NewJob } from '../queue/types.js';
import type { Revocations } from '../secure/revocation.js';
import { Spool } from '../spool/spool.js';
import { BlobStore, type BlobRepository } from '../store/blobs.js';
import { DirectoryImportError, type Directory } from '../store/directory.js';
import { databaseFile, hasDatabase } from '../store/locate.js';
import type { MessageRepository } from '../store/messages.js';
import { revocationsFor } from '../store/revocations-for.js';
import type { SecureRepositories } from '../store/secure-repositories.js';
import { SqliteBackend } from '../store/sqlite-backend.js';
import type { EventRepository, Public, Store } from '../store/store.js';
import { assertDriversAvailable } from '../config/drivers.js';
import type { Transactor, Tx } from '../store/tx.js';

/**
 * The admin commands' one path to the relay's data (`zegel recipients |
 * messages | queue | audit`), and the one exit-code rule of every command.
 *
 * Data: `loadAdminConfig` reads the configuration and says on stderr which
 * data directory (or PostgreSQL database) it names; `openAdminStore` opens
 * that store (never inventing a database: see below) as the same repositories
 * the relay uses, on SQLite on one connection with one group committer, on
 * PostgreSQL as a PgBackend with a small pool, so every write of a command is
 * a transaction of the store and every event it records goes through the
 * event log in the transaction of the change it records.
 * `withStore` does both, runs the command and closes the store (its
 * committer first, so nothing queued is lost).
 *
 * No database is made by accident: without --config and with no
 * ./data/zegel.db a command stops with ZEGEL_NO_DATABASE (it most likely
 * runs in the wrong folder); with --config only a command that opens with
 * `create` (recipients set|import: filling the directory before the relay's
 * first start) makes one.
 *
 * Exit codes, the same for every command:
 *
 *   0  done (also --help).
 *   1  the command ran and found a problem: a ZegelError raised by its work
 *      (no such message, recipient, job or entry; a refused delete; input it
 *      rejects, such as a bad phone, access code, import row or --since of
 *      `messages list`; a password too short), a broken audit chain, a file
 *      `scan` could not read, problems `rules lint` found; and any unexpected
 *      error (no ZEGEL_ code: printed with its errno code or ERROR).
 *   2  the command could not run as asked: a usage error (commander: unknown
 *      command or option, missing argument, value outside the choices,
 *      `recipients set` with nothing to set), or a ZegelError raised before
 *      its work starts: the configuration (also ZEGEL_CONFIG_OPEN_RELAY for
 *      start and check-config), no database (ZEGEL_NO_DATABASE), a key that
 *      is missing or unreadable (ZEGEL_AUDIT_KEY), rules that do not load,
 *      anything `start` fails with before the relay runs, and the options a
 *      command checks before it reads anything (`audit`'s --since/--until).
 *
 * A ZegelError is one line on stderr, `zegel: CODE: message` (an import's
 * problems one `FILE:LINE: problem` line each, then a summary); a usage error
 * is commander's message with the command's help.
 */

export const EXIT = { ok: 0, problem: 1, cannotRun: 2 } as const;

export interface AdminData {
  config: Config;
  /** The configuration file (absolute), or undefined for the embedded default. */
  source: string | undefined;
  dataDir: string;
}

/**
 * Loads the configuration and says on stderr where the data is:
 * `zegel: data directory DIR (…)` on SQLite, `zegel: PostgreSQL store URL (…)`
 * with store.driver postgres (the URL holds no password: store.passwordFile does).
 */
export function loadAdminConfig(configFile: string | undefined): AdminData {
  const { config, source } = configFile ? loadConfigFile(configFile) : defaultConfig();
  // a command must not quietly open a SQLite file in data.dir when the relay runs on another store;
  // PostgreSQL it opens itself (openAdminStore), before `zegel start` runs on it
  if (config.store.driver !== 'postgres') assertDriversAvailable(config, source ?? 'embedded default');
  const dataDir = config.data.dir;
  if (config.store.driver === 'postgres') process.stderr.write(`zegel: PostgreSQL store ${config.store.url ?? '?'} (store.url of ${source ?? 'embedded default'})\n`);
  else process.stderr.write(`zegel: data directory ${dataDir} (${source ? `data.dir of ${source}` : 'no --config: the embedded default ./data'})\n`);
  return { config, source, dataDir };
}

/**
 * The job queue as a command reaches it: the jobs table, no workers (a
 * running relay takes what a command queues: on SQLite at its next poll, on
 * PostgreSQL at the next pass of its job reconciler, docs/cluster.md).
 */
export interface AdminJobs {
  insert(tx: Tx, jobs: NewJob[]): Promise<void>;
  list(tx?: Tx): Promise<StoredJob[]>;
  get(id: string, tx?: Tx): Promise<StoredJob | undefined>;
  /** Makes a job due at `at` (a held one too); false when there is none. */
  retryAt(tx: Tx, id: string, at: number): Promise<boolean>;
  remove(tx: Tx, id: string): Promise<boolean>;
  held(): Promise<HeldJob[]>;
}

/** The relay's data as an admin command reaches it: the repositories of its store, and its transactions. */
export interface AdminStore extends Transactor {
  readonly config: Config;
  readonly dataDir: string;
  readonly clock: Clock;
  /** The one writer of the audit trail. */
  readonly events: EventRepository;
  /** messages, recipients, relay_mail. */
  readonly messages: Public<MessageRepository>;
  /** The jobs table (no workers run in a command). */
  readonly jobs: AdminJobs;
  /** secure_messages, secure_links, reader_sessions, one_time_codes, secure_replies. */
  readonly secure: SecureRepositories;
  readonly directory: Public<Directory>;
  readonly audit: AuditTrailStore;
  readonly revocations: Revocations;
  /** Where a message's bytes are spooled: removed when an admin gives held mail up. */
  readonly spool: { remove(id: string): Promise<void> };
  /** Whether a shred could not truncate the WAL yet (SQLite: another connection holds a read open; never on PostgreSQL). */
  readonly shredPending: boolean;
  close(): Promise<void>;
}

/**
 * Opens the store of `data`: SQLite in data.dir, or with store.driver
 * postgres the cluster's PostgreSQL database (src/cli/pg-admin.ts). When
 * there is no database yet: without --config it is refused
 * (ZEGEL_NO_DATABASE); with --config only when `create` is set.
 */
export async function openAdminStore(data: AdminData, options: { create?: boolean | undefined } = {}): Promise<AdminStore> {
  const clock = systemClock;
  const log = createLogger('silent');
  if (data.config.store.driver === 'postgres') {
    // loaded here, not at start-up: node-postgres and BullMQ cost every other command time
    const { openPgAdminStore } = await import('./pg-admin.js');
    return openPgAdminStore(data, { create: options.create, clock, log });
  }
  return openSqliteAdminStore(data, options, clock, log);
}

function openSqliteAdminStore(data: AdminData, options: { create?: boolean | undefined }, clock: Clock, log: Logger): AdminStore {
  if (!hasDatabase(data.dataDir)) {
    const file = databaseFile(data.dataDir);
    if (!data.source) {
      throw new ZegelError(
        'ZEGEL_NO_DATABASE',
        `no database at ${file}; pass --config FILE (the relay's configuration, whose data.dir holds it) or run the command in the folder the relay runs in`,
      );
    }
    if (!options.create) {
      throw new ZegelError('ZEGEL_NO_DATABASE', `no database at ${file} (data.dir of ${data.source}): the relay has not run with this configuration yet, so there is nothing to read or change`);
    }
  }
  const backend = new SqliteBackend(data.dataDir, clock, log);
  // a command runs no workers: the queue's poll timer is not needed (close(0) stops it; inserts still work)
  void backend.queue.close(0);
  return adminStoreOver(data, backend, { clock, log, blobs: new BlobStore(data.dataDir), spool: new Spool(data.dataDir), shredPending: () => backend.shredder.pending });
}

/** An admin store over an open store of either driver: its repositories, its transactions, revocation on its blobs. */
export function adminStoreOver(
  data: AdminData,
  backend: Store & { readonly queue: AdminJobs },
  parts: { clock: Clock; log: Logger; blobs: BlobRepository; spool: AdminStore['spool']; shredPending: () => boolean },
): AdminStore {
  return {
    config: data.config,
    dataDir: data.dataDir,
    clock: parts.clock,
    events: backend.events,
    messages: backend.messages,
    jobs: backend.queue,
    secure: backend.secure,
    directory: backend.directory,
    audit: backend.audit,
    revocations: revocationsFor(backend, parts.blobs, backend.shredder, parts.clock, parts.log),
    spool: parts.spool,
    get shredPending() {
      return parts.shredPending();
    },
    transaction<T>(work: (tx: Tx) => Promise<T> | T): Promise<T> {
      return backend.transaction(work);
    },
    close: () => backend.close(),
  };
}

/**
 * Runs an admin command: loads the configuration (saying the data
 * directory), opens the store, runs `setup` then `work`, and closes the
 * store. Errors of loading, opening and `setup` exit 2, errors of `work`
 * exit 1 (the rule above); either way one line on stderr.
 */
export async function withStore<P = undefined>(
  configFile: string | undefined,
  work: (store: AdminStore, ready: P) => Promise<void> | void,
  options: { create?: boolean; setup?: (store: AdminStore) => Promise<P> | P } = {},
): Promise<void> {
  let store: AdminStore | undefined;
  let phase: Phase = 'setup';
  try {
    store = await openAdminStore(loadAdminConfig(configFile), options);
    const ready = options.setup ? await options.setup(store) : (undefined as P);
    phase = 'work';
    await work(store, ready);
  } catch (err) {
    report(err, phase);
  } finally {
    await store?.close();
  }
}

/** Runs the work of a command that opens no store: its ZegelErrors exit 1, as for every command. */
export async function withWork(work: () => Promise<void> | void): Promise<void> {
  try {
    await work();
  } catch (err) {
    report(err, 'work');
  }
}

type Phase = 'setup' | 'work';

/**
 * Says what went wrong and sets the exit code (the rule above). `setup`:
 * before the command's work started (also every error that reaches main()).
 */
export function report(err: unknown, phase: Phase): void {
  if (err instanceof CommanderError) {
    // commander printed its message; usageExit numbered it
    process.exitCode = err.exitCode;
    return;
  }
  if (err instanceof DirectoryImportError) {
    // FILE:LINE: problem, as editors and grep read them
    process.stderr.write(`${err.message}\n`);
    process.stderr.write(`zegel: nothing imported (${err.problems.length} problem${err.problems.length === 1 ? '' : 's'})\n`);
    process.exitCode = phase === 'setup' ? EXIT.cannotRun : EXIT.problem;
    return;
  }
  if (err instanceof ZegelError) {
    process.stderr.write(`zegel: ${err.code}: ${err.message}\n`);
    process.exitCode = phase === 'setup' ? EXIT.cannotRun : EXIT.problem;
    return;
  }
  const e = err as NodeJS.ErrnoException;
  process.stderr.write(`zegel: ${e.code ?? 'ERROR'}: ${e.message}\n`);
  process.exitCode = EXIT.problem;
}

/**
 * commander's exit override for the whole program (subcommands inherit it):
 * commander numbers every usage error 1; here they are 2 like every error of
 * a command that could not run as asked. Help (0) stays 0.
 */
export function usageExit(err: CommanderError): never {
  throw err.exitCode === EXIT.ok ? err : new CommanderError(EXIT.cannotRun, err.code, err.message);
}
