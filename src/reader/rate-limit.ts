import fastifyRateLimit, { normalizeIP, type FastifyRateLimitStoreCtor } from '@fastify/rate-limit';
import type { FastifyInstance, FastifyRequest, onRequestAsyncHookHandler } from 'fastify';
import type { Config } from '../config/schema.js';
import type { Logger } from '../log.js';
import { ApiFailure } from './routes/errors.js';

/**
 * Rate limits of the reader and the status page (config `reader.rateLimit`),
 * counted by the plugin @fastify/rate-limit. Every route belongs to one
 * group (pages, api, checks); each group counts per client address (IPv6 by
 * /64) and per link or status page, each in its own window. The address is
 * counted first: a request refused for its address does not use up the
 * link's allowance, so one address cannot shut a link for everyone else.
 *
 * The counters live in the plugin's store: by default its in-memory LRU
 * (per process). In a cluster every node passes the PostgreSQL store
 * (src/store/pg/rate-limits.ts) as `ReaderDeps.rateLimitStore`, so the
 * nodes count together; the keys below already name their group and kind,
 * so one shared store serves every limiter.
 *
 * A store that fails (PostgreSQL away or too slow): page loads (the page
 * shell and its assets, served from disk) go on uncounted, so the page can
 * still tell the reader to try again later; API calls and checks answer 503,
 * since they need the database anyway and a check must never run uncounted
 * (a code guess across many links is held back only by the per-address
 * count). Either way the failure is logged, at most once per ten seconds.
 */

export type LimitGroup = 'pages' | 'api' | 'checks';
/** The route parameter that names the link or status page; absent: only the address counts. */
export type LimitTarget = 'linkId' | 'statusId' | undefined;

export type RateLimitStore = FastifyRateLimitStoreCtor;

/** A request over a limit: answered 429 with Retry-After (src/reader/server.ts renders it). */
export class RateLimited extends Error {
  readonly retryAfter: number;

  constructor(retryAfter: number) {
    super('rate-limited');
    this.name = 'RateLimited';
    this.retryAfter = retryAfter;
  }
}

type Limiter = ReturnType<FastifyInstance['createRateLimit']>;

export interface RateLimits {
  /** The onRequest hook that counts a request of this group (per address, and per link/status id when named). */
  hook(group: LimitGroup, target?: LimitTarget): onRequestAsyncHookHandler[];
}

export async function registerRateLimits(app: FastifyInstance, config: Pick<Config, 'reader'>, log: Logger, store?: RateLimitStore): Promise<RateLimits> {
  const settings = config.reader.rateLimit;
  if (!settings.enabled) return { hook: () => [] };
  // global: false: no route is limited unless it asks (every route here asks, through hook())
  await app.register(fastifyRateLimit, { global: false, ...(store ? { store } : {}) });

  const param = (request: FastifyRequest, name: 'linkId' | 'statusId'): string => {
    const value = (request.params as Record<string, unknown>)[name];
    // ids are checked by the routes; a long junk id must not make a long key
    return typeof value === 'string' ? value.slice(0, 64) : '';
  };
  const limiters = new Map<string, Limiter>();
  const limiter = (group: LimitGroup, kind: 'address' | LimitTarget & string): Limiter => {
    const id = `${group}:${kind}`;
    let found = limiters.get(id);
    if (!found) {
      const { window } = settings[group];
      found = app.createRateLimit({
        max: kind === 'address' ? settings[group].perAddress : settings[group].perLink,
        timeWindow: window,
        keyGenerator: kind === 'address' ? (request) => `${id}:${normalizeIP(request.ip, 64)}` : (request) => `${id}:${param(request, kind)}`,
      });
      limiters.set(id, found);
    }
    return found;
  };

  let lastFailureLog = 0;
  const storeFailed = (group: LimitGroup, err: unknown): void => {
    const now = Date.now();
    if (now - lastFailureLog < 10_000) return;
    lastFailureLog = now;
    const e = err as { name?: string; code?: unknown };
    log.warn({ group, failOpen: group === 'pages', err: { name: e?.name, code: e?.code } }, 'reader: rate-limit store failed');
  };

  return {
    hook(group, target) {
      const checks = [limiter(group, 'address'), ...(target ? [limiter(group, target)] : [])];
      const hook: onRequestAsyncHookHandler = async (request, reply) => {
        for (const [i, check] of checks.entries()) {
          let result: Awaited<ReturnType<Limiter>>;
          try {
            result = await check(request);
          } catch (err) {
            storeFailed(group, err);
            if (group === 'pages') continue;
            throw new ApiFailure(503, { error: 'bad-request' });
          }
          if (result.isAllowed || !result.isExceeded) continue;
          const retryAfter = Math.max(1, result.ttlInSeconds);
          reply.header('retry-after', String(retryAfter));
          log.warn({ group, kind: i === 0 ? 'address' : target, route: request.routeOptions.url, retryAfter }, 'reader: rate limit reached');
          throw new RateLimited(retryAfter);
        }
      };
      return [hook];
    },
  };
}
