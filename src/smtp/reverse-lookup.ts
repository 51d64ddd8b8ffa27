import dns from 'node:dns';

type Callback = (err: Error | null, hostnames?: string[]) => void;
type Reverse = (ip: string, callback: Callback) => void;

/**
 * smtp-server looks up the client's reverse name (PTR) for every connection,
 * for the relay's Received field. The relay's clients are the organisation's
 * own few mail servers, each opening connection after connection: one DNS
 * query and its timers per connection (issue 15: about 0.09 ms of the main
 * thread per one-message connection, a UDP round trip each) for an answer
 * that does not change from one second to the next. This resolver answers
 * from the last lookup of the same address for `ttlMs` (a minute: a changed
 * PTR record shows in Received fields within that time), shares one query
 * among connections that arrive while it runs, and keeps a failure for
 * `errorTtlMs` only. Bounded: the oldest entries go first past `maxEntries`.
 * Passed to smtp-server as its `resolver` option; the lookup itself, the
 * hostname checks and the timeout stay smtp-server's.
 */
export class ReverseLookupCache {
  readonly #entries = new Map<string, { until: number; err: Error | null; hostnames: string[] }>();
  readonly #pending = new Map<string, Callback[]>();
  readonly #ttlMs: number;
  readonly #errorTtlMs: number;
  readonly #maxEntries: number;
  readonly #lookup: Reverse;
  readonly #now: () => number;

  constructor(options: { ttlMs?: number; errorTtlMs?: number; maxEntries?: number; lookup?: Reverse; now?: () => number } = {}) {
    this.#ttlMs = options.ttlMs ?? 60_000;
    this.#errorTtlMs = options.errorTtlMs ?? 5_000;
    this.#maxEntries = options.maxEntries ?? 1024;
    this.#lookup = options.lookup ?? ((ip, callback) => dns.reverse(ip, callback));
    this.#now = options.now ?? Date.now;
  }

  /** The `resolver.reverse` smtp-server calls: (ip, callback(err, hostnames)), always asynchronously. */
  readonly reverse = (ip: string, callback: Callback): void => {
    const entry = this.#entries.get(ip);
    if (entry && entry.until > this.#now()) {
      // smtp-server takes the first name off the array: each caller gets its own copy
      const hostnames = [...entry.hostnames];
      process.nextTick(() => callback(entry.err, hostnames));
      return;
    }
    const waiting = this.#pending.get(ip);
    if (waiting) {
      waiting.push(callback);
      return;
    }
    this.#pending.set(ip, [callback]);
    const done: Callback = (err, hostnames = []) => {
      const callbacks = this.#pending.get(ip) ?? [];
      this.#pending.delete(ip);
      this.#entries.delete(ip);
      this.#entries.set(ip, { until: this.#now() + (err ? this.#errorTtlMs : this.#ttlMs), err, hostnames: [...hostnames] });
      for (const old of this.#entries.keys()) {
        if (this.#entries.size <= this.#maxEntries) break;
        this.#entries.delete(old);
      }
      for (const cb of callbacks) cb(err, [...hostnames]);
    };
    try {
      this.#lookup(ip, done);
    } catch (err) {
      // dns.reverse throws on input that is not an IP address; not kept
      this.#pending.delete(ip);
      process.nextTick(() => callback(err as Error));
    }
  };
}
