import { JOB_KINDS } from '../queue/registry.js';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { QueueCounts } from '../queue/types.js';

/**
 * What the relay's components report; a small interface so the jobs take it
 * as an optional dependency without importing prom-client.
 *
 * Labels are bounded and never personal: actions, reasons, rule ids (from the
 * operator's rule files), routes, results, job kinds. Never addresses,
 * message ids, link ids or client IPs (cardinality and privacy).
 */
export interface RelayMetrics {
  /** One message accepted over SMTP. */
  received(): void;
  /** The per-recipient decisions of one processed message, and the rules that fired. */
  decided(decisions: ReadonlyArray<{ decision: string; reason: string }>, matches: ReadonlyArray<{ rule: string; action: string }>): void;
  /** One delivery attempt's per-recipient results on a route (target | internal). */
  deliveryAttempt(route: string, results: ReadonlyArray<{ outcome: string }>): void;
  /** Time spent encrypting one message (ms). */
  encrypted(ms: number): void;
  /** One recipient of relay-made mail held for an admin (src/deliver/deliver-job.ts). */
  held?(): void;
  /** One notice queued for delivery.postmaster about undeliverable relay-made mail. */
  postmasterNotice?(): void;
}

/** The reader events that are counted (event table types). */
const READER_EVENTS = {
  opened: 'opens',
  downloaded: 'downloads',
  'check-passed': 'checks_passed',
  'check-failed': 'check_failures',
  locked: 'lockouts',
  'code-sent': 'codes_sent',
} as const;

/** Job kinds always reported (0 when empty), so dashboards see a series before the first job. */
const KNOWN_KINDS: readonly string[] = JOB_KINDS;

/** `rules:a,b` → `rules`: the reason without the rule list (rules have their own counter). */
const reasonLabel = (reason: string): string => reason.split(':', 1)[0] ?? reason;

export interface MetricsOptions {
  /** Queue counts read on every scrape. */
  queueCounts?: () => Promise<QueueCounts[]>;
  /** The clock the queue uses (ages are computed against it). */
  now?: () => number;
  /** Include prom-client's default process and Node metrics (on by default). */
  defaultMetrics?: boolean;
}

/**
 * The relay's Prometheus metrics, in their own Registry (never prom-client's
 * global one: two relays in one process, as in tests, do not collide).
 */
export class Metrics implements RelayMetrics {
  readonly registry = new Registry();
  readonly #received: Counter;
  readonly #smtpAuth: Counter<'result'>;
  readonly #decisions: Counter<'action' | 'reason'>;
  readonly #ruleMatches: Counter<'rule' | 'action'>;
  readonly #deliveries: Counter<'route' | 'result'>;
  readonly #bounces: Counter<'route'>;
  readonly #reader: Counter<'event'>;
  readonly #classify: Histogram<'result'>;
  readonly #encrypt: Histogram;
  readonly #rulesLoaded: Gauge;
  readonly #rulesReloads: Counter<'result'>;
  readonly #configReloads: Counter<'result'>;
  readonly #ready: Gauge;
  readonly #heldTotal: Counter;
  readonly #postmasterNotices: Counter;

  constructor(options: MetricsOptions = {}) {
    const registers = [this.registry];
    if (options.defaultMetrics !== false) collectDefaultMetrics({ register: this.registry });
    this.#received = new Counter({ name: 'zegel_messages_received_total', help: 'Messages accepted over SMTP', registers });
    this.#smtpAuth = new Counter({
      name: 'zegel_smtp_auth_total',
      help: 'SMTP AUTH attempts by result: accepted and rejected had their password verified (argon2), throttled were refused before verification',
      labelNames: ['result'],
      registers,
    });
    for (const result of ['accepted', 'rejected', 'throttled']) this.#smtpAuth.inc({ result }, 0);
    this.#decisions = new Counter({
      name: 'zegel_decisions_total',
      help: 'Per-recipient decisions by action (deliver, encrypt, block) and reason (rules, no-findings, internal-recipient, relay-origin)',
      labelNames: ['action', 'reason'],
      registers,
    });
    this.#ruleMatches = new Counter({ name: 'zegel_rule_matches_total', help: 'Messages on which a rule fired, by rule id and its action', labelNames: ['rule', 'action'], registers });
    this.#deliveries = new Counter({
      name: 'zegel_delivery_attempts_total',
      help: 'Per-recipient delivery attempt results (delivered, deferred, bounced) by route (target, internal)',
      labelNames: ['route', 'result'],
      registers,
    });
    this.#bounces = new Counter({ name: 'zegel_bounces_total', help: 'Recipients bounced by delivery (permanent failure or retries given up), by route', labelNames: ['route'], registers });
    this.#reader = new Counter({
      name: 'zegel_reader_events_total',
      help: 'Reader events: opens, downloads, checks_passed, check_failures, lockouts, codes_sent',
      labelNames: ['event'],
      registers,
    });
    this.#classify = new Histogram({
      name: 'zegel_classify_duration_seconds',
      help: 'Time to classify one message (extraction and rules)',
      labelNames: ['result'],
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers,
    });
    this.#encrypt = new Histogram({
      name: 'zegel_encrypt_duration_seconds',
      help: 'Time to encrypt and store one secure message',
      buckets: [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
      registers,
    });
    this.#rulesLoaded = new Gauge({ name: 'zegel_rules_loaded', help: 'Rules in the active rule set', registers });
    this.#rulesReloads = new Counter({ name: 'zegel_rules_reloads_total', help: 'Rule reloads by result (ok, refused: the previous set stays active)', labelNames: ['result'], registers });
    this.#configReloads = new Counter({ name: 'zegel_config_reloads_total', help: 'SIGHUP configuration reloads by result (ok, failed)', labelNames: ['result'], registers });
    this.#ready = new Gauge({ name: 'zegel_ready', help: '1 when store, queue and rules are loaded (as /readyz)', registers });
    for (const event of Object.values(READER_EVENTS)) this.#reader.inc({ event }, 0);
    for (const result of ['ok', 'refused']) this.#rulesReloads.inc({ result }, 0);
    this.#received.inc(0);
    this.#heldTotal = new Counter({ name: 'zegel_held_total', help: 'Recipients of relay-made mail held for an admin (postmaster notice undeliverable, or no postmaster address)', registers });
    this.#postmasterNotices = new Counter({ name: 'zegel_postmaster_notices_total', help: 'Notices queued for delivery.postmaster about undeliverable relay-made mail (double bounces)', registers });
    this.#heldTotal.inc(0);
    this.#postmasterNotices.inc(0);

    const queueCounts = options.queueCounts;
    const now = options.now ?? Date.now;
    // read from the queue on every scrape: never stale, no timer; one query serves both gauges
    let pending: Promise<void> | undefined;
    const collect = async (): Promise<void> => {
      if (!queueCounts) return;
      pending ??= (async () => {
        try {
          const counts = await queueCounts();
          jobs.reset();
          age.reset();
          held.set(counts.reduce((n, c) => n + (c.held ?? 0), 0));
          const at = now();
          const byKind = new Map(counts.map((c) => [c.kind, c]));
          for (const kind of new Set([...KNOWN_KINDS, ...byKind.keys()])) {
            const c = byKind.get(kind);
            jobs.set({ kind, state: 'ready' }, c?.ready ?? 0);
            jobs.set({ kind, state: 'delayed' }, c?.delayed ?? 0);
            jobs.set({ kind, state: 'running' }, c?.running ?? 0);
            age.set({ kind }, c?.oldestCreatedAt === undefined ? 0 : Math.max(0, (at - c.oldestCreatedAt) / 1000));
          }
        } finally {
          pending = undefined;
        }
      })();
      await pending;
    };
    const jobs: Gauge<'kind' | 'state'> = new Gauge({ name: 'zegel_queue_jobs', help: 'Jobs in the queue by kind and state (ready, delayed, running)', labelNames: ['kind', 'state'], registers, collect });
    const held: Gauge = new Gauge({
      name: 'zegel_held_messages',
      help: 'Jobs of undeliverable relay-made mail held until an admin acts (zegel queue retry | delete --force); alert when above 0',
      registers,
      collect,
    });
    const age: Gauge<'kind'> = new Gauge({ name: 'zegel_queue_oldest_job_age_seconds', help: 'Age of the oldest job of each kind in seconds (0 when none)', labelNames: ['kind'], registers, collect });
  }

  received(): void {
    this.#received.inc();
  }

  /** One SMTP AUTH attempt's result. */
  smtpAuth(result: 'accepted' | 'rejected' | 'throttled'): void {
    this.#smtpAuth.inc({ result });
  }

  decided(decisions: ReadonlyArray<{ decision: string; reason: string }>, matches: ReadonlyArray<{ rule: string; action: string }>): void {
    for (const d of decisions) this.#decisions.inc({ action: d.decision, reason: reasonLabel(d.reason) });
    const seen = new Set<string>();
    for (const m of matches) {
      const key = `${m.rule}\0${m.action}`;
      if (seen.has(key)) continue;
      seen.add(key);
      this.#ruleMatches.inc({ rule: m.rule, action: m.action });
    }
  }

  deliveryAttempt(route: string, results: ReadonlyArray<{ outcome: string }>): void {
    for (const r of results) {
      this.#deliveries.inc({ route, result: r.outcome });
      if (r.outcome === 'bounced') this.#bounces.inc({ route });
    }
  }

  held(): void {
    this.#heldTotal.inc();
  }

  postmasterNotice(): void {
    this.#postmasterNotices.inc();
  }

  encrypted(ms: number): void {
    this.#encrypt.observe(ms / 1000);
  }

  /** Times one classification (the relay wraps its classifier with this). */
  async timeClassify<T>(run: () => Promise<T>): Promise<T> {
    const end = this.#classify.startTimer();
    try {
      const result = await run();
      end({ result: 'ok' });
      return result;
    } catch (err) {
      end({ result: 'error' });
      throw err;
    }
  }

  /** A reader event from the event stream; types that are not counted are ignored. */
  readerEvent(type: string): void {
    const event = (READER_EVENTS as Record<string, string>)[type];
    if (event) this.#reader.inc({ event });
  }

  rulesLoaded(count: number): void {
    this.#rulesLoaded.set(count);
  }

  rulesReload(ok: boolean): void {
    this.#rulesReloads.inc({ result: ok ? 'ok' : 'refused' });
  }

  configReload(ok: boolean): void {
    this.#configReloads.inc({ result: ok ? 'ok' : 'failed' });
  }

  ready(ok: boolean): void {
    this.#ready.set(ok ? 1 : 0);
  }

  /** The exposition text and its content type. */
  async scrape(): Promise<{ contentType: string; body: string }> {
    return { contentType: this.registry.contentType, body: await this.registry.metrics() };
  }
}
