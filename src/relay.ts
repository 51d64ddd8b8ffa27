import { registerWorkers } from './queue/registry.js';
import fs from 'node:fs';
import os from 'node:os';
import { systemClock, type Clock } from './clock.js';
import type { Config } from './config/schema.js';
import { defaultOutboxDir } from './config/validate.js';
import { OriginSigner } from './crypto/origin.js';
import { loadRelaySecret } from './crypto/relay-secret.js';
import { Delivery } from './deliver/deliver-job.js';
import { createRouteTransports, type Transport } from './deliver/transport.js';
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
import { Spool } from './spool/spool.js';
import { SqliteBackend } from './store/sqlite-backend.js';
import { assertDriversAvailable } from './config/drivers.js';
import { BlobStore } from './store/blobs.js';
import type { Directory } from './store/directory.js';
import type { SecureRepositories } from './store/secure-repositories.js';
import { SecureDelivery } from './pipeline/secure-job.js';
import { PurgeWorker, queuePurgeOnce } from './pipeline/purge-job.js';
import { RecipientResolver } from './pipeline/recipient-settings.js';
import { AuditCheckpointWorker } from './audit/checkpoint-job.js';
import { Revocations, type RevokeActor, type RevokeResult } from './store/revocation.js';
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
}

/**
 * One relay process: SMTP ingress, the process and deliver workers, and the
 * embedded SQLite backend, wired together. `start` recovers what a crash left
 * behind; `stop` drains.
 */
export class Relay {
  readonly config: Config;
  readonly clock: Clock;
  readonly log: Logger;
  readonly backend: SqliteBackend;
  readonly spool: Spool;
  readonly signer: OriginSigner;
  readonly blobs: BlobStore;
  readonly secure: SecureRepositories['secure'];
  readonly directory: Directory;
  /** Revoke, expiry and purge (src/store/revocation.ts). */
  readonly revocations: Revocations;
  readonly #purge: PurgeWorker;
  /** Signs the audit chain's head every audit.checkpointInterval (src/audit). */
  readonly audit: AuditCheckpointWorker;
  readonly notifier: Notifier;
  /** The one way relay-made mail goes to delivery (src/deliver/hand-off.ts). */
  readonly handOff: HandOff;
  readonly sms: SmsDriver;
  readonly #secret: Buffer;
  readonly #startReader: boolean;
  /** The directory and the defaults, per recipient (src/pipeline/recipient-settings.ts). */
  readonly #recipients: RecipientResolver;
  #reader: RunningReader | undefined;
  readonly #ingress: Ingress;
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

  private constructor(options: RelayOptions) {
    const { config } = options;
    this.config = config;
    this.clock = options.clock ?? systemClock;
    this.log = options.log ?? createLogger(config.log.level);
    this.#live = config;
    // the rules first: a broken rule set stops start-up before anything is opened
    if (!options.classify) {
      this.#rules = new ActiveRules(config, this.log, {
        // the metrics exist only after the store opened: the first count is set there
        loaded: (count) => this.metrics?.rulesLoaded(count),
        reloaded: (ok) => this.metrics.rulesReload(ok),
        record: (outcome, rules) =>
          void this.backend
            .transaction((tx) => this.backend.events.append(tx, { messageId: null, type: outcome.ok ? 'rules-reloaded' : 'rules-refused', detail: { rules, problems: outcome.problems.length } }))
            .catch((err: Error) => this.log.error({ err: { message: err.message } }, 'could not record the rules event')),
      });
    }
    // refused before anything is made, also when the relay is built without the CLI
    assertDriversAvailable(config);
    fs.mkdirSync(config.data.dir, { recursive: true, mode: 0o700 });
    this.#secret = loadRelaySecret({ dataDir: config.data.dir, relayKeyFile: config.data.relayKeyFile });
    this.signer = new OriginSigner(this.#secret);
    this.spool = new Spool(config.data.dir);
    this.backend = new SqliteBackend(config.data.dir, this.clock, this.log, { pollMs: options.pollMs });
    const metrics = (this.metrics = new Metrics({ queueCounts: () => this.backend.queue.counts(), now: () => this.clock.now() }));
    if (this.#rules) metrics.rulesLoaded(this.#rules.service.rules.rules.length);
    this.health
      .check('store', () => this.backend.ping())
      .check('queue', () => this.#started.value && !this.#stopped)
      .check('rules', () => options.classify !== undefined || this.#rules?.service.rules !== undefined)
      .check('started', this.#started.get)
      // held relay-made mail waits for an admin: reported (status degraded), but the relay stays ready
      .detail('held', async () => {
        const held = await this.backend.queue.held();
        return held.length ? { messages: held.length, jobs: held.slice(0, 20).map((j) => j.id), action: 'zegel queue retry <id> | zegel queue delete <id> --force' } : undefined;
      });
    this.blobs = new BlobStore(config.data.dir);
    this.secure = this.backend.secure.secure;
    this.directory = this.backend.directory;
    this.revocations = new Revocations({
      db: this.backend.db,
      clock: this.clock,
      blobs: this.blobs,
      log: this.log,
      store: this.backend,
      events: this.backend.events,
      repos: this.backend.secure,
      shredder: this.backend.shredder,
      schedulePurgeRun: (tx, at) => queuePurgeOnce(tx, this.backend.queue, at),
    });
    this.#purge = new PurgeWorker({ revocations: this.revocations, clock: this.clock, log: this.log, intervalMs: options.purgeIntervalMs });
    this.audit = new AuditCheckpointWorker({ db: this.backend.db, committer: this.backend.committer, events: this.backend.events, clock: this.clock, log: this.log, dataDir: config.data.dir, signingKeyFile: config.audit.signingKeyFile, intervalMs: config.audit.checkpointInterval, retentionMs: config.retention.audit });
    const policy = new RelayPolicy(config);
    const hostname = config.smtp.hostname ?? os.hostname();
    this.notifier = new Notifier({ config, signer: this.signer, hostname });
    this.sms = options.sms ?? createSmsDriver(config, this.log);
    this.#startReader = options.reader ?? true;
    const { target, internal, all } = createRouteTransports(config.delivery, { outboxDir: config.delivery.outboxDir ?? defaultOutboxDir(config.data.dir) }, hostname);
    this.#transports = all;
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
    if (!postmasterAddress(config)) this.log.warn('no delivery.postmaster and no organisation.domains: relay-made mail that cannot be delivered is held for an admin at once (zegel queue list)');
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
    const recipients = (this.#recipients = new RecipientResolver(this.directory, config));
    const secureDelivery = new SecureDelivery({
      config,
      clock: this.clock,
      log: this.log,
      spool: this.spool,
      backend: this.backend,
      handOff: this.handOff,
      blobs: this.blobs,
      secure: this.secure,
      resolveRecipient: recipients.settings,
      composeNotification: (request) => this.notifier.notification(request),
      composeReceipt: (request) => this.notifier.receipt(request),
      metrics,
    });
    registerWorkers(this.backend.queue, {
      process: { handle: processor.handle, concurrency: options.processConcurrency ?? config.delivery.concurrency },
      secure: { handle: secureDelivery.handle, concurrency: Math.max(1, Math.min(4, config.delivery.concurrency)) },
      deliver: { handle: delivery.handle, concurrency: config.delivery.concurrency },
      purge: { handle: this.#purge.handle, concurrency: 1 },
    });
    this.#ingress = new Ingress({ config, clock: this.clock, log: this.log, spool: this.spool, backend: this.backend, policy, signer: this.signer, closeTimeout: options.closeTimeoutMs, onAccepted: () => metrics.received(), onAuth: (result) => metrics.smtpAuth(result) });
    if (!policy.senderDomainCheck) {
      this.log.warn(config.organisation.domains.length ? 'smtp.senderDomainCheck is off: any sender address may relay' : 'organisation.domains is empty: the sender-domain check is off');
    }
  }

  static async start(options: RelayOptions): Promise<Relay> {
    const relay = new Relay(options);
    let address: { host: string; port: number };
    try {
      // first: readiness answers (not ready) while the relay recovers and opens its listeners
      const listen = relay.config.metrics.listen;
      if (listen !== 'off') relay.#ops = await startOpsServer({ listen, health: relay.health, metrics: relay.metrics, log: relay.log });
      await relay.#recover();
      await relay.#purge.ensureScheduled(relay.backend.queue);
      relay.audit.start();
      relay.classifier?.watch();
      address = await relay.#ingress.listen();
      if (relay.#startReader) relay.#reader = await relay.#openReader();
      relay.#started.value = true;
    } catch (err) {
      // e.g. the port is taken: close what was opened, so the process can exit with the error
      await relay.stop(0);
      throw err;
    }
    relay.log.info({ smtp: `${address.host}:${address.port}`, reader: relay.#reader?.url, ops: relay.#ops?.url, target: relay.config.delivery.target, dataDir: relay.config.data.dir, outbox: [relay.config.delivery.target, relay.config.delivery.internalTarget].includes('outbox') ? relay.config.delivery.outboxDir ?? defaultOutboxDir(relay.config.data.dir) : undefined }, 'relay started');
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
    return this.#ingress.address!;
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
    const removed = await this.spool.sweep(await this.backend.messages.spooledIds());
    if (removed) this.log.info({ removed }, 'removed spool files of messages that were never accepted');
    const orphans = await this.blobs.sweep(await this.secure.idsWithBlobs());
    if (orphans) this.log.info({ removed: orphans }, 'removed ciphertext of secure messages that were never committed');
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
    await Promise.all([this.#ingress.close(), this.#reader?.close(), this.backend.queue.close(timeoutMs)]);
    this.#rules?.close();
    await this.#ops?.close();
    for (const transport of this.#transports) transport.close();
    // sign the audit chain's head, so the tail written since the last checkpoint is covered too
    this.audit.stop();
    await this.audit.checkpoint().catch((err: Error) => this.log.warn({ err: { message: err.message } }, 'audit checkpoint at stop failed'));
    const { commits, writes } = this.backend.committer.stats;
    await this.backend.close();
    this.log.info({ storeCommits: commits, storeWrites: writes }, 'relay stopped');
  }
}

/** Classification timed into zegel_classify_duration_seconds. */
function timed(metrics: Metrics, classify: ClassifyMessage): ClassifyMessage {
  return (input) => metrics.timeClassify(() => classify(input));
}
