/**
 * One injectable clock for everything time-based (retries, expiry, lockouts,
 * purge). Production uses the system clock; tests move a manual clock instead
 * of waiting.
 */
export interface Clock {
  /** Milliseconds since the Unix epoch. */
  now(): number;
}

export const systemClock: Clock = { now: () => Date.now() };

export class ManualClock implements Clock {
  #now: number;

  constructor(start: number = Date.UTC(2026, 0, 5, 9, 0, 0)) {
    this.#now = start;
  }

  now(): number {
    return this.#now;
  }

  advance(ms: number): void {
    if (!(ms >= 0)) throw new RangeError('a clock only moves forward');
    this.#now += ms;
  }

  set(ms: number): void {
    this.#now = ms;
  }
}
