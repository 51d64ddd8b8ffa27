/**
 * Liveness and readiness. Live: the process answers. Ready: every named check
 * passes — the relay registers store (the database answers), queue (workers
 * take jobs, not draining), rules (a rule set is loaded) and started (the
 * listeners are open). A refused rule reload keeps the previous set active,
 * so it stays ready; a relay whose rules never loaded is not ready.
 */
/** A check may ask the store (async on every driver); a throw or a rejection counts as failed. */
export type Check = () => boolean | Promise<boolean>;
/** Something an operator must see that does not make the relay unready; undefined: nothing to report. */
export type Detail = () => Record<string, unknown> | undefined | Promise<Record<string, unknown> | undefined>;

export interface Readiness {
  ready: boolean;
  checks: Record<string, boolean>;
  /**
   * Ready, but something waits for an operator (e.g. held mail): /readyz
   * still answers 200 (taking the relay out of service would stop all other
   * mail), with status `degraded` and the details.
   */
  degraded?: true;
  details?: Record<string, Record<string, unknown>>;
}

export class Health {
  readonly #checks = new Map<string, Check>();
  readonly #details = new Map<string, Detail>();

  /** Adds (or replaces) a named check. */
  check(name: string, fn: Check): this {
    this.#checks.set(name, fn);
    return this;
  }

  /** Adds (or replaces) a named detail: reported on /readyz, makes the status `degraded` while it returns something. */
  detail(name: string, fn: Detail): this {
    this.#details.set(name, fn);
    return this;
  }

  async readiness(): Promise<Readiness> {
    const checks: Record<string, boolean> = {};
    for (const [name, fn] of this.#checks) {
      try {
        checks[name] = (await fn()) === true;
      } catch {
        checks[name] = false;
      }
    }
    const details: Record<string, Record<string, unknown>> = {};
    for (const [name, fn] of this.#details) {
      try {
        const value = await fn();
        if (value) details[name] = value;
      } catch (err) {
        details[name] = { error: (err as Error).message };
      }
    }
    const ready = this.#checks.size > 0 && Object.values(checks).every(Boolean);
    // only present when there is something to report: the plain answer keeps its shape
    return Object.keys(details).length ? { ready, checks, degraded: true, details } : { ready, checks };
  }
}

/** A flag for checks that are set by events (started, rules loaded, draining). */
export class Flag {
  value: boolean;
  constructor(value = false) {
    this.value = value;
  }
  readonly get = (): boolean => this.value;
}
