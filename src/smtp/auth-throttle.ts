import net from 'node:net';
import { RateLimiterMemory, RateLimiterRes, type RateLimiterAbstract } from 'rate-limiter-flexible';

export interface AuthThrottleOptions {
  /** Attempts that may fail per client address within the window; the next one is refused. */
  maxFailures: number;
  /** The same, per username across all addresses (0: not counted). */
  maxFailuresPerUser: number;
  /** The window failures are counted in, from the first failure (ms). */
  failureWindowMs: number;
  /** How long an address or username over its limit is refused (ms). */
  lockForMs: number;
}

export type Admission =
  | { admitted: true }
  /** Refused without verifying the password: the address or the username is over its limit, or the limiter failed. */
  | { admitted: false; scope: 'client' | 'user' | 'error'; retryAfterMs: number };

/** Makes one limiter: rate-limiter-flexible's options as AuthThrottle sets them. */
export type AuthLimiterFactory = (opts: { keyPrefix: string; points: number; duration: number; blockDuration: number }) => RateLimiterAbstract;

/** One process's counters (the embedded default, one node). */
export const memoryAuthLimiter: AuthLimiterFactory = (opts) => new RateLimiterMemory(opts);

/** Whole seconds, at least one: the stores after the memory one (Redis, PostgreSQL) count in seconds. */
const seconds = (ms: number) => Math.max(1, Math.ceil(ms / 1000));

/**
 * The counting key of a client address: IPv4 (also when IPv4-mapped) as it is,
 * IPv6 by its /64, the smallest block one site is normally given, so walking
 * through the addresses of one network does not reset the count.
 */
export function clientKey(ip: string): string {
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(ip);
  if (mapped) return mapped[1]!;
  if (net.isIPv4(ip)) return ip;
  if (!net.isIPv6(ip)) return ip;
  let text = ip.toLowerCase().split('%')[0]!;
  const v4 = /(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(text);
  if (v4) {
    const [a, b, c, d] = v4.slice(1).map(Number) as [number, number, number, number];
    text = `${text.slice(0, v4.index)}${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
  }
  const [left, right] = text.split('::') as [string, string | undefined];
  const head = left ? left.split(':') : [];
  const tail = right ? right.split(':') : [];
  const groups = right === undefined ? head : [...head, ...Array<string>(8 - head.length - tail.length).fill('0'), ...tail];
  return `${groups
    .slice(0, 4)
    .map((g) => parseInt(g, 16).toString(16))
    .join(':')}::/64`;
}

/**
 * Throttles SMTP AUTH before the password is verified (an argon2 run each).
 * Every attempt takes a point from its client address and from its username
 * up front, so parallel attempts cannot all slip past the limit while their
 * verifications run; a success gives its points back (the address starts
 * over; the username only gets back the one point, so a client that knows
 * the password does not wipe the count of someone guessing it elsewhere).
 * Past the limit the attempt is refused without verifying anything, for
 * `lockFor`, even with the right password.
 *
 * The counters are rate-limiter-flexible limiters made by `make`: in memory
 * by default (one node), on PostgreSQL for a cluster (src/store/pg/rate-limits.ts,
 * `PgRateLimiter`), where every node counts the same failures. A store that
 * fails refuses the attempt (scope `error`): AUTH is never verified unthrottled.
 */
export class AuthThrottle {
  readonly #byClient: RateLimiterAbstract;
  readonly #byUser: RateLimiterAbstract | undefined;

  constructor(options: AuthThrottleOptions, make: AuthLimiterFactory = memoryAuthLimiter) {
    const duration = seconds(options.failureWindowMs);
    const blockDuration = seconds(options.lockForMs);
    this.#byClient = make({ keyPrefix: 'zegel_smtp_auth_client', points: options.maxFailures, duration, blockDuration });
    this.#byUser = options.maxFailuresPerUser > 0 ? make({ keyPrefix: 'zegel_smtp_auth_user', points: options.maxFailuresPerUser, duration, blockDuration }) : undefined;
  }

  /** Called before verifying: takes the attempt's points, or says why it is refused. */
  async admit(ip: string, username: string): Promise<Admission> {
    const client = clientKey(ip);
    try {
      await this.#byClient.consume(client);
    } catch (err) {
      return refused('client', err);
    }
    if (!this.#byUser) return { admitted: true };
    try {
      await this.#byUser.consume(username);
    } catch (err) {
      // refused for the username's sake: not held against the address
      await this.#byClient.reward(client).catch(() => undefined);
      return refused('user', err);
    }
    return { admitted: true };
  }

  /** Called after a successful verification. */
  async succeeded(ip: string, username: string): Promise<void> {
    await Promise.all([this.#byClient.delete(clientKey(ip)), this.#byUser?.reward(username)]).catch(() => undefined);
  }
}

function refused(scope: 'client' | 'user', err: unknown): Admission {
  if (err instanceof RateLimiterRes) return { admitted: false, scope, retryAfterMs: Math.max(0, err.msBeforeNext) };
  // the store failed (a later Redis or PostgreSQL store): refuse rather than verify unthrottled
  return { admitted: false, scope: 'error', retryAfterMs: 0 };
}
