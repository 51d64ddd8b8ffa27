import { registerWorkers, type JobKind } from './queue/registry.js';
import fs from 'node:fs';
import os from 'node:os';
import { systemClock, type Clock } from './clock.js';
import type { Config } from './config/schema.js';
import { defaultOutboxDir } from './config/validate.js';
import { OriginSigner } from './crypto/origin.js';
import { loadRelaySecret } from './crypto/relay-secret.js';
import { Delivery } from './deliver/deliver-job.js';
import { createRouteTransports } from './deliver/routes.js';
import type { Transport } from './deliver/transport.js';
import { createLogger, type Logger } from './log.js';
import type { ClassifierService } from './classify/service.js';
import { ActiveRules } from './classify/active-rules.js';
import { DsnSender } from './deliver/dsn-sender.js';
import { HandOff } from './deliver/hand-off.js';
import { postmasterAddress } from './deliver/postmaster.js';
import type { ClassifyMessage } from './pipeline/decide.js';
import { Processor } from './pipeline/process-job.js';
import { Ingress } from './smtp/ingress.js';
import { RelayPolicy } from './smtp/policy.js';
import type { MessageSpool } from './spool/types.js';
import type { SqliteBackend } from './store/sqlite-backend.js';
import { assertDriversAvailable } from './config/drivers.js';
import type { BlobRepository } from './store/blobs.js';
import { openRelayStorage, type RelayStorage } from './store/relay-storage.js';
import { roleParts, type RelayRole, type RoleParts } from './config/roles.js';
import { loadSharedKeys, type SharedKeys } from './crypto/shared-keys.js';
import { ZegelError } from './errors.js';
import type { Directory } from './store/directory.js';
import type { Public, Store } from './store/store.js';
import type { SecureRepositories } from './store/secure-repositories.js';
import { SecureDelivery } from './pipeline/secure-job.js';
import { PurgeWorker, queuePurgeOnce } from './pipeline/purge-job.js';
import { RecipientResolver } from './pipeline/recipient-settings.js';
import { AuditCheckpointWorker } from './audit/checkpoint-job.js';
import type { Revocations, RevokeActor, RevokeResult } from './secure/revocation.js';
import { revocationsFor } from './store/revocations-for.js';
import { queueRelayMail } from './pipeline/relay-mail.js';
import { Notifier } from './notify/index.js';
import { startReader, type RunningReader } from './reader/server.js';
import { createSmsDriver, type SmsDriver } from './secure/sms.js';
import { readerAssetsDir } from './reader/assets.js';
import { createReplyMailer } from './secure/reply-mail.js';
import { createStatusService } from './secure/status.js';
import { createSecureReader, type SecureContext } from './secure/index.js';
import { Flag, Health } from './ops/health.js';
import { Metrics } from './ops/metrics.js';
import { startOpsServer, type OpsServer } from './ops/server.js';
import { planReload, type ReloadPlan } from './ops/reload.js';

export interface RelayOptions {
  config: Config;
  clock?: Clock;
  log?: Logger;
  /**
   * Replaces the rules-based classifier (tests of the relay spine use
   * `deliverAll`). By default the rules in `rules.dir` (or the shipped ones)
   * decide, and are reloaded when their files change.
   */
  classify?: ClassifyMessage;
  /** How often idle workers look for due jobs (ms). */
  pollMs?: number;
  /** How long a drain lets open SMTP sessions finish (ms); 30 s by default. */
  closeTimeoutMs?: number;
  /** Process jobs at once; by default as many as deliveries, so processing keeps up with intake. */
  processConcurrency?: number;
  /** Replaces the SMS driver from `verification.sms` (tests). */
  sms?: SmsDriver;
  /** Start the recipient reader (`reader.listen`); on by default. */
  reader?: boolean;
  /** How often the purge job runs (ms, clock time); 5 minutes by default. */
  purgeIntervalMs?: number;
  /** What this process runs (`zegel start --role`): `all` by default; the others need the PostgreSQL store. */
  role?: RelayRole;
  /** The cluster's shared keys, when the caller read them already (PostgreSQL); read from their files otherwise. */
  keys?: SharedKeys;
}

/**
 * One relay process: SMTP ingress, the job workers and the recipient reader
 * on one storage (src/store/relay-storage.ts: the embedded SQLite default,
 * or PostgreSQL with BullMQ), wired together; a role runs only its part.
 * `start` recovers what a crash left behind; `stop` drains.
 */
export class Relay {
  readonly config: Config;
  readonly clock: Clock;
  readonly log: Logger;
  /** The store the relay's components see (src/store/store.ts), whichever the driver. */
  readonly backend: Store;
  /** Store, spool and blobs of the configured driver. */
  readonly storage: RelayStorage;
  /** What this process runs (`--role`). */
  readonly role: RelayRole;
  readonly #parts: RoleParts;
  readonly spool: MessageSpool;
  readonly signer: OriginSigner;
  readonly blobs: BlobRepository;
  readonly secure: SecureRepositories['secure'];
  readonly directory: Public<Directory>;
  /** Revoke, expiry and purge (src/store/revocation.ts). */
  readonly revocations: Revocations;
  readonly #purge: PurgeWorker;
  /** Signs the audit chain's head every audit.checkpointInterval (src/audit); in the roles that run workers. */
  readonly audit: AuditCheckpointWorker | undefined;
  readonly notifier: Notifier;
  /** The one way relay-made mail goes to delivery (src/deliver/hand-off.ts). */
  readonly handOff: HandOff;
  readonly sms: SmsDriver;
  readonly #secret: Buffer;
  readonly #startReader: boolean;
  /** The directory and the defaults, per recipient (src/pipeline/recipient-settings.ts). */
  readonly #recipients: RecipientResolver;
  #reader: RunningReader | undefined;
  /** SMTP intake; undefined in a role without it. */
  readonly #ingress: Ingress | undefined;
  readonly #transports: Transport[];
  /** The rule set and its reloads (src/classify/active-rules.ts); undefined when `options.classify` replaces it. */
  #rules: ActiveRules | undefined;
  #stopped = false;
  /** Prometheus metrics (src/ops/metrics.ts), served on `metrics.listen`. */
  readonly metrics: Metrics;
  /** Readiness checks: store, queue, rules, started (src/ops/health.ts). */
  readonly health = new Health();
  readonly #started = new Flag();
  #ops: OpsServer | undefined;
  /** The configuration in effect after SIGHUP reloads (live-safe keys only); `config` is the one started with. */
  #live: Config;

  private constructor(options: RelayOptions, prepared: Prepared) {
    const { config } = options;
    this.config = config;
    this.clock = prepared.clock;
    this.log = prepared.log;
    this.#live = config;
    this.role = prepared.role;
    this.#parts = roleParts(prepared.role);
    this.#rules = prepared.rules;
    this.#secret = prepared.secret;
    this.signer = new OriginSigner(this.#secret);
    this.storage = prepared.storage;
    this.spool = prepared.storage.spool;
    this.backend = prepared.storage.store;
    prepared.hooks.relay = this;
    const metrics = (this.metrics = new Metrics({ queueCounts: () => this.backend.queue.counts(), now: () => this.clock.now() }));
    if (this.#rules) metrics.rulesLoaded(this.#rules.service.rules.rules.length);
    this.health
      .check('store', () => this.backend.ping())
      .check('queue', () => this.#started.value && !this.#stopped)
      .check('rules', () => options.classify !== undefined || this.#rules?.service.rules !== undefined)
      .check('started', this.#started.get)
      // Redis gone: mail is still taken in (jobs wait in PostgreSQL), so reported, not unready
      .detail('redis', async () => {
        const reachable = await this.backend.queue.carrierReachable?.();
        return reachable === false ? { reachable: false, effect: 'jobs wait in PostgreSQL until Redis answers again; the reconciler hands them over' } : undefined;
      })
      // held relay-made mail waits for an admin: reported (status degraded), but the relay stays ready
      .detail('held', async () => {
        const held = await this.backend.queue.held();
        return held.length ? { messages: held.length, jobs: held.slice(0, 20).map((j) => j.id), action: 'zegel queue retry <id> | zegel queue delete <id> --force' } : undefined;
      });
    this.blobs = prepared.storage.blobs;
    this.secure = this.backend.secure.secure;
    this.directory = this.backend.directory;
    this.revocations = revocationsFor(this.backend, this.blobs, this.backend.shredder, this.clock, this.log, (tx, at) => queuePurgeOnce(tx, this.backend.queue, at));
    this.#purge = new PurgeWorker({ revocations: this.revocations, clock: this.clock, log: this.log, intervalMs: options.purgeIntervalMs });
    // every worker node runs the timer; the store's leader lets one of them sign and purge per interval
    this.audit = this.#parts.workers
      ? new AuditCheckpointWorker({
          trail: this.backend.audit,
          leader: this.backend.periodicLeader(),
          clock: this.clock,
          log: this.log,
          dataDir: config.data.dir,
          signingKeyFile: config.audit.signingKeyFile,
          intervalMs: config.audit.checkpointInterval,
          retentionMs: config.retention.audit,
        })
      : undefined;
    const policy = new RelayPolicy(config);
    const hostname = config.smtp.hostname ?? os.hostname();
    this.notifier = new Notifier({ config, signer: this.signer, hostname });
    this.sms = options.sms ?? createSmsDriver(config, this.log);
    this.#startReader = options.reader ?? true;
    this.handOff = new HandOff({ backend: this.backend, spool: this.spool, clock: this.clock });
    const dsn = new DsnSender({
      clock: this.clock,
      log: this.log,
      spool: this.spool,
      backend: this.backend,
      signer: this.signer,
      hostname,
      handOff: this.handOff,
      postmaster: postmasterAddress(config),
    });
    this.#recipients = new RecipientResolver(this.directory, config);
    this.#transports = this.#parts.workers ? this.#registerWorkers(options, policy, dsn, hostname) : [];
    this.#ingress = this.#parts.smtp
      ? new Ingress({
          config,
          clock: this.clock,
          log: this.log,
          spool: this.spool,
          backend: this.backend,
          policy,
          signer: this.signer,
          closeTimeout: options.closeTimeoutMs,
          onAccepted: () => metrics.received(),
          onAuth: (result) => metrics.smtpAuth(result),
          authLimiterFactory: this.storage.sharedLimits?.authLimiterFactory,
        })
      : undefined;
    if (this.#parts.smtp && !policy.senderDomainCheck) {
      this.log.warn(config.organisation.domains.length ? 'smtp.senderDomainCheck is off: any sender address may relay' : 'organisation.domains is empty: the sender-domain check is off');
    }
  }

  /** The process, secure, deliver and purge workers (the roles `all` and `worker`); returns the transports they deliver through. */
  #registerWorkers(options: RelayOptions, policy: RelayPolicy, dsn: DsnSender, hostname: string): Transport[] {
    const { config, metrics } = this;
    if (!postmasterAddress(config)) this.log.warn('no delivery.postmaster and no organisation.domains: relay-made mail that cannot be delivered is held for an admin at once (zegel queue list)');
    const { target, internal, all, warnings } = createRouteTransports(config.delivery, { outboxDir: config.delivery.outboxDir ?? defaultOutboxDir(config.data.dir) }, hostname, this.log);
    for (const warning of warnings) this.log.warn(warning);
    const processor = new Processor({
      log: this.log,
      spool: this.spool,
      backend: this.backend,
      policy,
      dsn,
      classify: timed(metrics, options.classify ?? this.#rules!.classify),
      metrics,
    });
    const delivery = new Delivery({
      clock: this.clock,
      log: this.log,
      spool: this.spool,
      backend: this.backend,
      dsn,
      transports: { target, internal },
      retry: config.delivery.retry,
      metrics,
    });
    const secureDelivery = new SecureDelivery({
      config,
      clock: this.clock,
      log: this.log,
      spool: this.spool,
      backend: this.backend,
      handOff: this.handOff,
      blobs: this.blobs,
      secure: this.secure,
      resolveRecipient: this.#recipients.settings,
      composeNotification: (request) => this.notifier.notification(request),
      composeReceipt: (request) => this.notifier.receipt(request),
      metrics,
    });
    const concurrency = workerConcurrency(options);
    registerWorkers(this.backend.queue, {
      process: { handle: processor.handle, concurrency: concurrency.process },
      secure: { handle: secureDelivery.handle, concurrency: concurrency.secure },
      deliver: { handle: delivery.handle, concurrency: concurrency.deliver },
      purge: { handle: this.#purge.handle, concurrency: concurrency.purge },
    });
    return all;
  }

  static async start(options: RelayOptions): Promise<Relay> {
    const prepared = await prepare(options);
    let relay: Relay;
    try {
      relay = new Relay(options, prepared);
    } catch (err) {
      await prepared.storage.close().catch(() => undefined);
      prepared.rules?.close();
      throw err;
    }
    let address: { host: string; port: number } | undefined;
    try {
      // first: readiness answers (not ready) while the relay recovers and opens its listeners
      const listen = relay.config.metrics.listen;
      if (listen !== 'off') relay.#ops = await startOpsServer({ listen, health: relay.health, metrics: relay.metrics, log: relay.log });
      await relay.#recover();
      if (relay.#parts.workers) await relay.#purge.ensureScheduled(relay.backend.queue);
      relay.audit?.start();
      relay.classifier?.watch();
      address = await relay.#ingress?.listen();
      if (relay.#parts.reader && relay.#startReader) relay.#reader = await relay.#openReader();
      relay.#started.value = true;
    } catch (err) {
      // e.g. the port is taken: close what was opened, so the process can exit with the error
      await relay.stop(0);
      throw err;
    }
    relay.log.info({ role: relay.role, store: relay.storage.driver, smtp: address && `${address.host}:${address.port}`, reader: relay.#reader?.url, ops: relay.#ops?.url, target: relay.config.delivery.target, dataDir: relay.config.data.dir, outbox: [relay.config.delivery.target, relay.config.delivery.internalTarget].includes('outbox') ? relay.config.delivery.outboxDir ?? defaultOutboxDir(relay.config.data.dir) : undefined }, 'relay started');
    return relay;
  }

  /** The active rules service (replaced when a reload changes rules.dir or classify settings). */
  get classifier(): ClassifierService | undefined {
    return this.#rules?.service;
  }

  /** The operations listener's base URL (/healthz, /readyz, /metrics), when `metrics.listen` is not off. */
  get opsUrl(): string | undefined {
    return this.#ops?.url;
  }

  /**
   * SIGHUP: applies what is safe to change while running — log.level, and the
   * rules (reloaded from disk; a new rules.dir or classify settings build a new
   * rule service, kept only if its set loads) — and logs every other changed
   * key as needing a restart. A refused rule set keeps the previous one.
   */
  reload(next: Config): ReloadPlan & { rules: { ok: boolean; problems: string[] } | undefined } {
    const plan = planReload(this.#live, next);
    if (plan.applied.includes('log.level')) this.log.level = next.log.level;
    let rules: { ok: boolean; problems: string[] } | undefined;
    if (this.#rules) {
      const changed = plan.applied.some((key) => key.startsWith('rules.') || key.startsWith('classify.'));
      rules = changed ? this.#rules.replace(next) : this.#rules.reload();
      // refused: the previous settings stay in effect, so a later SIGHUP tries again
      if (changed && !rules.ok) plan.applied = plan.applied.filter((key) => !key.startsWith('rules.') && !key.startsWith('classify.'));
    }
    const settings = this.#rules?.settings ?? next;
    this.#live = { ...this.#live, log: next.log, rules: settings.rules, classify: settings.classify };
    this.log.info({ applied: plan.applied, needsRestart: plan.needsRestart, rules: rules && { ok: rules.ok, count: this.#rules?.service.rules.rules.length } }, 'configuration reloaded');
    if (plan.needsRestart.length) this.log.warn({ keys: plan.needsRestart }, 'these changed settings take effect only after a restart');
    this.metrics.configReload(true);
    return { ...plan, rules };
  }

  get smtpAddress(): { host: string; port: number } {
    const address = this.#ingress?.address;
    if (!address) throw new ZegelError('ZEGEL_ROLE', `this relay runs the ${this.role} role: no SMTP listener`);
    return address;
  }

  /** The embedded SQLite backend; throws on another driver (tests and SQLite-only tools reach its members). */
  get sqlite(): SqliteBackend {
    const backend = this.storage.sqlite;
    if (!backend) throw new ZegelError('ZEGEL_DRIVER_UNAVAILABLE', `the store is ${this.storage.driver}, not sqlite`);
    return backend;
  }

  /** The reader's base URL as it listens (not reader.publicUrl), when it runs. */
  get readerUrl(): string | undefined {
    return this.#reader?.url;
  }

  /**
   * Schedules (or with `at = null` clears) the revocation of one link or of a
   * whole message; a one-off purge run is queued for that exact moment, so it
   * does not wait for the next periodic run. A moment not after now revokes at once.
   */
  async scheduleRevoke(target: { linkId: string } | { secureId: string }, at: number | null, actor: RevokeActor): Promise<RevokeResult | undefined> {
    return 'linkId' in target ? this.revocations.scheduleLinkRevoke(target.linkId, at, actor) : this.revocations.scheduleMessageRevoke(target.secureId, at, actor);
  }

  /** The recipient reader, with the mails it asks for queued like any relay-made message. */
  #openReader(): Promise<RunningReader> {
    const { config, clock, backend, spool, notifier } = this;
    const repos = backend.secure;
    const secure: SecureContext = { store: backend, events: backend.events, repos, clock, onEvent: (event) => this.metrics.readerEvent(event.type) };
    const status = createStatusService({
      ...secure,
      config,
      log: this.log,
      messages: backend.messages,
      shredder: backend.shredder,
      handOff: this.handOff,
      notifier,
      revocations: {
        revokeLink: (linkId, actor) => this.revocations.revokeLink(linkId, actor),
        revokeMessage: (secureId, actor) => this.revocations.revokeMessage(secureId, actor),
        scheduleLinkRevoke: (linkId, at, actor) => this.revocations.scheduleLinkRevoke(linkId, at, actor),
        scheduleMessageRevoke: (secureId, at, actor) => this.revocations.scheduleMessageRevoke(secureId, at, actor),
      },
    });
    return startReader({
      status,
      onVerified: (link) => status.verified(link),
      config,
      secure: createSecureReader(secure),
      clock,
      log: this.log,
      secret: this.#secret,
      blobs: this.blobs,
      sms: this.sms,
      ...(this.storage.sharedLimits ? { rateLimitStore: this.storage.sharedLimits.readerStore } : {}),
      accessCodes: this.#recipients.accessCodeHashes,
      assetsDir: readerAssetsDir(),
      replyMailer: createReplyMailer({ replies: repos.replies, handOff: this.handOff, spool, clock, signer: this.signer, hostname: config.smtp.hostname ?? os.hostname(), route: 'internal' }),
      mailer: {
        sendCode: async (link, code, expiresAt) => {
          const mail = await notifier.codeMail({ language: link.language, to: link.address, code, expiresAt, now: clock.now() });
          await queueRelayMail(this.handOff, mail, { about: link.queueId, route: 'target', kind: 'code', event: 'mail-queued', detail: { kind: 'code', link: link.id } });
        },
        notifyForgot: async (link, sender) => {
          const mail = await notifier.forgotNotice({ language: config.notification.language.default, to: sender, recipient: link.address, now: clock.now() });
          await queueRelayMail(this.handOff, mail, { about: link.queueId, route: 'internal', kind: 'forgot', event: 'mail-queued', detail: { kind: 'forgot-code', link: link.id } });
        },
      },
    });
  }

  /** Removes spool files that no committed message owns (a crash between fsync and commit). */
  async #recover(): Promise<void> {
    // the reader may only add to the spool (its grants): the SMTP and worker roles clean it
    if (this.#parts.smtp || this.#parts.workers) {
      const removed = await this.spool.sweep(await this.backend.messages.spooledIds());
      if (removed) this.log.info({ removed }, 'removed spool files of messages that were never accepted');
    }
    if (this.#parts.workers) {
      const orphans = await this.blobs.sweep(await this.secure.idsWithBlobs());
      if (orphans) this.log.info({ removed: orphans }, 'removed ciphertext of secure messages that were never committed');
    }
  }

  /**
   * Drains: stops accepting connections, lets running jobs finish for up to
   * `timeoutMs`, and closes the store. Jobs still running then run again at
   * the next start.
   */
  async stop(timeoutMs = 30_000): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    this.log.info('relay stopping');
    await Promise.all([this.#ingress?.close(), this.#reader?.close(), this.backend.queue.close(timeoutMs)]);
    this.#rules?.close();
    await this.#ops?.close();
    for (const transport of this.#transports) transport.close();
    // sign the audit chain's head, so the tail written since the last checkpoint is covered too
    this.audit?.stop();
    await this.audit?.checkpoint().catch((err: Error) => this.log.warn({ err: { message: err.message } }, 'audit checkpoint at stop failed'));
    const stats = this.storage.stats();
    await this.storage.close();
    this.log.info(stats, 'relay stopped');
  }
}

/** Jobs of each kind one process runs at once (the PostgreSQL pool is sized above their sum). */
function workerConcurrency(options: RelayOptions): Record<JobKind, number> {
  const { concurrency } = options.config.delivery;
  return { process: options.processConcurrency ?? concurrency, secure: Math.max(1, Math.min(4, concurrency)), deliver: concurrency, purge: 1 };
}

/** What start makes before the relay is composed: the rules first, then the relay key and the storage. */
interface Prepared {
  clock: Clock;
  log: Logger;
  role: RelayRole;
  rules: ActiveRules | undefined;
  secret: Buffer;
  storage: RelayStorage;
  /** The relay, for the rules' hooks, once it is composed. */
  hooks: { relay?: Relay };
}

/**
 * Loads and opens, in the order that keeps a refusal cheap: a broken rule
 * set, a driver this build lacks, a role the store cannot serve or a key
 * file that does not load stop start-up before any store is opened or any
 * file made. The rules' hooks reach the relay once it exists.
 */
async function prepare(options: RelayOptions): Promise<Prepared> {
  const { config } = options;
  const clock = options.clock ?? systemClock;
  const log = options.log ?? createLogger(config.log.level);
  const role = options.role ?? 'all';
  const hooks: { relay?: Relay } = {};
  const rules = options.classify
    ? undefined
    : new ActiveRules(config, log, {
        // the metrics exist only after the store opened: the first count is set there
        loaded: (count) => hooks.relay?.metrics.rulesLoaded(count),
        reloaded: (ok) => hooks.relay?.metrics.rulesReload(ok),
        record: (outcome, ruleCount) => {
          const backend = hooks.relay?.backend;
          void backend
            ?.transaction((tx) => backend.events.append(tx, { messageId: null, type: outcome.ok ? 'rules-reloaded' : 'rules-refused', detail: { rules: ruleCount, problems: outcome.problems.length } }))
            .catch((err: Error) => log.error({ err: { message: err.message } }, 'could not record the rules event'));
        },
      });
  try {
    // refused before anything is made, also when the relay is built without the CLI
    assertDriversAvailable(config);
    if (role !== 'all' && config.store.driver !== 'postgres') {
      throw new ZegelError('ZEGEL_ROLE', `--role ${role} needs store.driver postgres: on SQLite one process runs every part (--role all)`);
    }
    const keys = config.store.driver === 'postgres' ? (options.keys ?? loadSharedKeys(config)) : undefined;
    // SQLite keeps everything in data.dir; a cluster node only its scratch (uploads, drafts), made once the store opened
    if (!keys) fs.mkdirSync(config.data.dir, { recursive: true, mode: 0o700 });
    const secret = keys?.relaySecret ?? loadRelaySecret({ dataDir: config.data.dir, relayKeyFile: config.data.relayKeyFile });
    const jobs = Object.values(workerConcurrency(options));
    const storage = await openRelayStorage({ config, clock, log, role, pollMs: options.pollMs, keys, concurrency: jobs.reduce((sum, n) => sum + n, 0) });
    return { clock, log, role, rules, secret, storage, hooks };
  } catch (err) {
    rules?.close();
    throw err;
  }
}

/** Classification timed into zegel_classify_duration_seconds. */
function timed(metrics: Metrics, classify: ClassifyMessage): ClassifyMessage {
  return (input) => metrics.timeClassify(() => classify(input));
}
