/**
 * Liveness and readiness. Live: the process answers. Ready: every named check
 * passes — the relay registers store (the database answers), queue (workers
 * take jobs, not draining), rules (a rule set is loaded) and started (the
 * listeners are open). A refused rule reload keeps the previous set active,
 * so it stays ready; a relay whose rules never loaded is not ready.
 */
export type Check = () => boolean;

export interface Readiness {
  ready: boolean;
  checks: Record<string, boolean>;
}

export class Health {
  readonly #checks = new Map<string, Check>();

  /** Adds (or replaces) a named check. */
  check(name: string, fn: Check): this {
    this.#checks.set(name, fn);
    return this;
  }

  readiness(): Readiness {
    const checks: Record<string, boolean> = {};
    for (const [name, fn] of this.#checks) {
      try {
        checks[name] = fn() === true;
      } catch {
        checks[name] = false;
      }
    }
    return { ready: this.#checks.size > 0 && Object.values(checks).every(Boolean), checks };
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
