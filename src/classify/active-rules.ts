import type { Config } from '../config/schema.js';
import type { Logger } from '../log.js';
import type { ClassifyMessage } from '../pipeline/decide.js';
import { shippedRulesDir } from './rules/load.js';
import { ClassifierService } from './service.js';

export type RulesSettings = Pick<Config, 'rules' | 'classify'>;

export interface RulesOutcome {
  ok: boolean;
  problems: string[];
}

export interface ActiveRulesHooks {
  /** A rule set became active (at start, after a file change, after a replacement): its size. */
  loaded(count: number): void;
  /** A reload was tried (files changed, SIGHUP): kept or refused. */
  reloaded(ok: boolean): void;
  /** The audit trail's record of a reload (rules-reloaded / rules-refused), with the active rule ids. */
  record(outcome: RulesOutcome, ruleIds: string[]): void;
}

/**
 * The rule set the relay classifies with, and its changes while running: a
 * file change reloads it, a SIGHUP with new `rules.*` or `classify.*`
 * settings builds a replacement service that is kept only if its set loads
 * (the previous one stays active otherwise: rollback). A broken set at start
 * stops start-up (the constructor throws).
 */
export class ActiveRules {
  readonly #log: Logger;
  readonly #hooks: ActiveRulesHooks;
  #service: ClassifierService;
  #settings: RulesSettings;

  constructor(settings: RulesSettings, log: Logger, hooks: ActiveRulesHooks) {
    this.#log = log;
    this.#hooks = hooks;
    this.#settings = settings;
    this.#service = this.#build(settings);
    this.#attach(this.#service);
  }

  /** The service in effect now (replaced when a reload changes rules.dir or classify settings). */
  get service(): ClassifierService {
    return this.#service;
  }

  /** The settings in effect now (the previous ones after a refused replacement). */
  get settings(): RulesSettings {
    return this.#settings;
  }

  watch(): void {
    this.#service.watch();
  }

  /** Reloads the files of the current set (SIGHUP without new settings). */
  reload(): RulesOutcome {
    return this.#service.reload();
  }

  /**
   * Builds a service for new settings and swaps it in if its rule set loads;
   * on failure the current one stays, with its settings.
   */
  replace(next: RulesSettings): RulesOutcome {
    try {
      const replacement = this.#build(next);
      this.#service.close();
      this.#service = replacement;
      this.#settings = next;
      this.#attach(replacement);
      replacement.watch();
      this.#hooks.reloaded(true);
      return { ok: true, problems: [] };
    } catch (err) {
      this.#hooks.reloaded(false);
      this.#log.error({ rulesDir: next.rules.dir ?? shippedRulesDir(), err: { message: (err as Error).message } }, 'rule set refused; the previous rules stay active');
      return { ok: false, problems: [(err as Error).message] };
    }
  }

  /** The relay's classification: the active rules' result, with the blocking rule's description for the DSN. */
  readonly classify: ClassifyMessage = async ({ open }) => {
    const service = this.#service;
    const result = await service.classify(open());
    const blocking = result.decision === 'block' ? result.matches.find((m) => m.action === 'block') : undefined;
    const rule = blocking ? service.rules.rules.find((r) => r.id === blocking.rule) : undefined;
    return {
      decision: result.decision,
      subjectSensitive: result.subjectSensitive,
      matches: result.matches,
      blockedBy: blocking && rule ? { rule: rule.id, description: rule.description } : undefined,
    };
  };

  close(): void {
    this.#service.close();
  }

  #build(settings: RulesSettings): ClassifierService {
    return new ClassifierService({
      dir: settings.rules.dir ?? shippedRulesDir(),
      optInTags: settings.classify.optInTags,
      limits: settings.classify.limits,
      log: this.#log,
    });
  }

  #attach(service: ClassifierService): void {
    this.#hooks.loaded(service.rules.rules.length);
    service.onReload((outcome) => {
      this.#hooks.reloaded(outcome.ok);
      // on the audit trail too: which rule set decided is part of every decision's record
      this.#hooks.record(outcome, service.rules.rules.map((r) => r.id));
      if (service === this.#service) this.#hooks.loaded(service.rules.rules.length);
    });
  }
}
