import https from 'node:https';
import { createRequire } from 'node:module';
import type tls from 'node:tls';
import { contextWith } from '../tls-context.js';
import type { MxResolver } from './dns.js';

/** The part of mailauth's `lib/mta-sts.js` (CommonJS, no types) used here. */
interface MailauthMtaSts {
  resolvePolicy(domain: string, opts: { resolver: (name: string, type: string) => Promise<string[][]> }): Promise<string | false>;
  parsePolicy(text: string | Buffer): { version: string; mode: string; mx?: string[]; maxAge: number };
  validateMx(mx: string, policy: { mode: string; mx: string[] }): { valid: boolean; mode: string; match?: string; testing: boolean };
}

const require = createRequire(import.meta.url);
const mailauth = require('mailauth/lib/mta-sts.js') as MailauthMtaSts;

export type StsMode = 'enforce' | 'testing' | 'none';

/** A domain's MTA-STS policy (RFC 8461 §3.2) as fetched; times in ms since the epoch. */
export interface StsPolicy {
  /** The id of the `_mta-sts` TXT record it was fetched for. */
  id: string;
  mode: StsMode;
  /** Allowed MX patterns, lower case (`*.example.nl` allows one label). */
  mx: string[];
  /** Seconds. */
  maxAge: number;
  fetchedAt: number;
  expires: number;
}

export type StsFailureKind =
  /** `_mta-sts.<domain>` could not be looked up (SERVFAIL, timeout, ...). */
  | 'dns'
  /** `mta-sts.<domain>` has no A/AAAA. */
  | 'no-address'
  /** TLS handshake or certificate check failed (code in `detail`, e.g. UNABLE_TO_VERIFY_LEAF_SIGNATURE). */
  | 'tls'
  /** Connection refused, reset, ... */
  | 'network'
  | 'timeout'
  /** Not 200 (redirects are not followed, RFC 8461 §3.3). */
  | 'http-status'
  /** Not text/plain. */
  | 'content-type'
  /** Body over 64 KiB. */
  | 'too-large'
  /** The policy text does not parse (mailauth's code in `detail`). */
  | 'invalid-policy';

/** Why no fresh policy could be had for a domain. `message` names the domain and the reason, for the log. */
export class MtaStsError extends Error {
  readonly kind: StsFailureKind;
  readonly domain: string;
  readonly detail: string | undefined;

  constructor(kind: StsFailureKind, domain: string, message: string, options?: { detail?: string | undefined; cause?: unknown }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'MtaStsError';
    this.kind = kind;
    this.domain = domain;
    this.detail = options?.detail;
  }
}

/** What `lookup` found, with how (for the log and the delivery's TLS facts). */
export interface StsLookup {
  /** The policy to apply; undefined: deliver as without MTA-STS (RFC 8461 §5). */
  policy: StsPolicy | undefined;
  /**
   * `fetched`: fetched now; `cache`: the cached policy (same id, or TXT record
   * gone but max_age not passed); `cache-after-failure`: a new id or a failed
   * TXT lookup, fetch impossible, cached policy used (§5.1); `none`: no policy.
   */
  source: 'fetched' | 'cache' | 'cache-after-failure' | 'none';
  /** Why there is no policy, or why the cache was used; absent after a plain fetch or cache hit. */
  reason?: string;
  /** The failure behind `reason`, when there was one. */
  error?: MtaStsError;
}

export interface MtaStsOptions {
  resolver: MxResolver;
  /** Extra PEM trusted for the policy fetch, beside (never instead of) the system CAs. */
  ca?: Buffer | string;
  /** Whole-fetch deadline in ms (default 10000). */
  timeout?: number;
  /** Current time in ms (default Date.now). */
  clock?: () => number;
  /** Domains kept in the cache (default 10,000; the oldest fetched goes first). */
  cacheSize?: number;
}

const POLICY_PATH = '/.well-known/mta-sts.txt';
const MAX_BODY = 64 * 1024;
/** RFC 8461 §3.1: id is 1*32(ALPHA / DIGIT). */
const ID = /^[A-Za-z0-9]{1,32}$/;

function codeOf(err: unknown): string {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : 'EUNKNOWN';
}

function normalise(name: string): string {
  return name.trim().toLowerCase().replace(/\.$/, '');
}

/**
 * MTA-STS for outbound delivery (RFC 8461) on mailauth's TXT lookup, policy
 * parser and MX check; the HTTPS fetch is done here: to the first address of
 * `mta-sts.<domain>` on port 443, certificate verified against the system CAs
 * (plus `ca`), 200 and text/plain only, at most 64 KiB, no redirects.
 *
 * Policies are cached in memory per domain until `max_age`: the same TXT id
 * is served from the cache without a fetch; a cached policy outlives its TXT
 * record and a failed refetch (§5.1). Without a usable policy the lookup says
 * why, and the domain is delivered to as without MTA-STS (§5). Concurrent
 * lookups of one domain share one fetch.
 */
export class MtaSts {
  readonly #resolver: MxResolver;
  /** Built once (src/deliver/tls-context.ts): parsing the ~150 system CAs plus the extra one per fetch costs more than the fetch. */
  readonly #secureContext: tls.SecureContext | undefined;
  readonly #timeout: number;
  readonly #clock: () => number;
  readonly #cacheSize: number;
  readonly #cache = new Map<string, StsPolicy>();
  readonly #inflight = new Map<string, Promise<StsLookup>>();
  #cacheHits = 0;
  #fetches = 0;
  #fetchFailures = 0;

  constructor(options: MtaStsOptions) {
    this.#resolver = options.resolver;
    this.#secureContext = options.ca === undefined ? undefined : contextWith([options.ca.toString()]);
    this.#timeout = options.timeout ?? 10_000;
    this.#clock = options.clock ?? Date.now;
    this.#cacheSize = options.cacheSize ?? 10_000;
  }

  /** For benchmarks: policies answered from the cache, fetches started, fetches failed. */
  get counters(): { cacheHits: number; fetches: number; fetchFailures: number; cached: number } {
    return { cacheHits: this.#cacheHits, fetches: this.#fetches, fetchFailures: this.#fetchFailures, cached: this.#cache.size };
  }

  /** The policy to apply to `domain`, or undefined (no usable policy; `lookup` says why). */
  async policy(domain: string): Promise<StsPolicy | undefined> {
    return (await this.lookup(domain)).policy;
  }

  /** The policy to apply to `domain` with where it came from and, without one, why. Never rejects. */
  lookup(domain: string): Promise<StsLookup> {
    const name = normalise(domain);
    const running = this.#inflight.get(name);
    if (running) return running;
    const promise = this.#lookup(name).finally(() => this.#inflight.delete(name));
    this.#inflight.set(name, promise);
    return promise;
  }

  /**
   * Whether `host` (an MX name) is allowed by `policy` (mode `none`: always).
   * mailauth's `validateMx`, plus RFC 8461 §4.1: a `*.` wildcard stands for
   * exactly one label (`*.example.nl` allows `mx1.example.nl`, not
   * `a.b.example.nl` nor `example.nl`).
   */
  matches(host: string, policy: Pick<StsPolicy, 'mode' | 'mx'>): boolean {
    if (policy.mode === 'none') return true;
    const name = normalise(host);
    if (!mailauth.validateMx(name, { mode: policy.mode, mx: policy.mx }).valid) return false;
    return policy.mx.some((pattern) => {
      const allowed = normalise(pattern);
      if (!allowed.startsWith('*.')) return allowed === name;
      const suffix = allowed.slice(1); // '.example.nl'
      if (!name.endsWith(suffix)) return false;
      const label = name.slice(0, -suffix.length);
      return label.length > 0 && !label.includes('.');
    });
  }

  async #lookup(domain: string): Promise<StsLookup> {
    const now = this.#clock();
    let cached = this.#cache.get(domain);
    if (cached && cached.expires <= now) {
      this.#cache.delete(domain);
      cached = undefined;
    }

    let id: string | false;
    try {
      id = await mailauth.resolvePolicy(domain, { resolver: (name, type) => this.#txt(name, type) });
    } catch (err) {
      const code = codeOf(err);
      if (code === 'multi_sts_records') id = false;
      else {
        const error = new MtaStsError('dns', domain, `MTA-STS: TXT lookup of _mta-sts.${domain} failed (${code})`, { detail: code, cause: err });
        return this.#fallback(domain, cached, error);
      }
    }
    if (id === false || !ID.test(id)) {
      if (cached) {
        this.#cacheHits++;
        return { policy: cached, source: 'cache', reason: `no valid _mta-sts.${domain} TXT record; cached policy ${cached.id} valid until max_age` };
      }
      return { policy: undefined, source: 'none', reason: `no valid _mta-sts.${domain} TXT record` };
    }
    if (cached && cached.id === id) {
      this.#cacheHits++;
      return { policy: cached, source: 'cache' };
    }

    this.#fetches++;
    let parsed: ReturnType<MailauthMtaSts['parsePolicy']>;
    try {
      const text = await this.#fetch(domain);
      try {
        parsed = mailauth.parsePolicy(text);
        // mailauth reads max_age with Number(): '' is 0 and '1e3' 1000; RFC 8461 §3.2 has 1*10DIGIT
        const maxAge = /^max_age[ \t]*:[ \t]*([^\r\n]*?)[ \t\r]*$/im.exec(text)?.[1];
        if (!maxAge || !/^\d{1,10}$/.test(maxAge)) throw Object.assign(new Error('Invalid max_age field'), { code: 'invalid_sts_max_age' });
      } catch (err) {
        const code = codeOf(err);
        throw new MtaStsError('invalid-policy', domain, `MTA-STS: policy of ${domain} is invalid (${code})`, { detail: code, cause: err });
      }
    } catch (err) {
      this.#fetchFailures++;
      const error = err instanceof MtaStsError ? err : new MtaStsError('network', domain, `MTA-STS: policy fetch for ${domain} failed (${codeOf(err)})`, { cause: err });
      return this.#fallback(domain, cached, error);
    }
    const fetchedAt = this.#clock();
    const policy: StsPolicy = {
      id,
      mode: parsed.mode as StsMode,
      mx: (parsed.mx ?? []).map(normalise),
      maxAge: parsed.maxAge,
      fetchedAt,
      expires: fetchedAt + parsed.maxAge * 1000,
    };
    this.#store(domain, policy);
    return { policy, source: 'fetched' };
  }

  #fallback(domain: string, cached: StsPolicy | undefined, error: MtaStsError): StsLookup {
    if (cached) {
      this.#cacheHits++;
      return { policy: cached, source: 'cache-after-failure', reason: `${error.message}; cached policy ${cached.id} used`, error };
    }
    return { policy: undefined, source: 'none', reason: error.message, error };
  }

  #store(domain: string, policy: StsPolicy): void {
    this.#cache.delete(domain);
    this.#cache.set(domain, policy);
    while (this.#cache.size > this.#cacheSize) {
      const oldest = this.#cache.keys().next().value;
      if (oldest === undefined) break;
      this.#cache.delete(oldest);
    }
  }

  async #txt(name: string, type: string): Promise<string[][]> {
    if (type !== 'TXT') throw Object.assign(new Error(`unexpected ${type} query`), { code: 'EBADQUERY' });
    return this.#resolver.txt(name);
  }

  async #fetch(domain: string): Promise<string> {
    const servername = `mta-sts.${domain}`;
    let addresses: string[];
    try {
      addresses = await this.#resolver.addresses(servername);
    } catch (err) {
      const code = codeOf(err);
      throw new MtaStsError('dns', domain, `MTA-STS: address lookup of ${servername} failed (${code})`, { detail: code, cause: err });
    }
    if (!addresses.length) throw new MtaStsError('no-address', domain, `MTA-STS: ${servername} has no address`);
    // the next address only after one that could not be reached: an answer (any status, a certificate) is the policy host's word
    let failure: MtaStsError | undefined;
    for (const address of addresses) {
      try {
        return await this.#fetchFrom(domain, servername, address);
      } catch (err) {
        failure = err as MtaStsError;
        if (failure.kind !== 'network' && failure.kind !== 'timeout') throw failure;
      }
    }
    throw failure!;
  }

  #fetchFrom(domain: string, servername: string, address: string): Promise<string> {
    const url = `https://${servername}${POLICY_PATH}`;
    return new Promise<string>((resolve, reject) => {
      let settled = false;
      const fail = (error: MtaStsError): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        req.destroy();
        reject(error);
      };
      // `secureContext` goes through to tls.connect (typed there, not in https.RequestOptions)
      const options: https.RequestOptions & { secureContext?: tls.SecureContext } = {
        host: address,
        port: 443,
        path: POLICY_PATH,
        method: 'GET',
        servername,
        headers: { host: servername, accept: 'text/plain' },
        agent: false,
        rejectUnauthorized: true,
      };
      if (this.#secureContext) options.secureContext = this.#secureContext;
      const req = https.request(options, (res) => {
        const status = res.statusCode ?? 0;
        if (status !== 200) {
          res.resume();
          return fail(new MtaStsError('http-status', domain, `MTA-STS: ${url} answered HTTP ${status}`, { detail: String(status) }));
        }
        const type = (res.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
        if (type !== 'text/plain') {
          res.resume();
          return fail(new MtaStsError('content-type', domain, `MTA-STS: ${url} is ${type || 'without a content-type'}, not text/plain`, { detail: type }));
        }
        const declared = Number(res.headers['content-length']);
        if (declared > MAX_BODY) return fail(new MtaStsError('too-large', domain, `MTA-STS: ${url} is larger than 64 KiB`));
        const chunks: Buffer[] = [];
        let size = 0;
        res.on('data', (chunk: Buffer) => {
          size += chunk.length;
          if (size > MAX_BODY) return fail(new MtaStsError('too-large', domain, `MTA-STS: ${url} is larger than 64 KiB`));
          chunks.push(chunk);
        });
        res.on('end', () => {
          if (settled) return;
          settled = true;
          clearTimeout(timer);
          resolve(Buffer.concat(chunks).toString('utf8'));
        });
        res.on('error', (err) => fail(classify(domain, url, err)));
      });
      req.on('error', (err) => fail(classify(domain, url, err)));
      const timer = setTimeout(() => fail(new MtaStsError('timeout', domain, `MTA-STS: ${url} did not answer within ${this.#timeout} ms`)), this.#timeout);
      req.end();
    });
  }
}

/** TLS errors carry OpenSSL/Node codes (CERT_*, UNABLE_TO_*, DEPTH_ZERO_*, ERR_TLS_*, ERR_SSL_*). */
function classify(domain: string, url: string, err: unknown): MtaStsError {
  const code = codeOf(err);
  const isTls = /^(CERT_|UNABLE_TO_|DEPTH_ZERO_|SELF_SIGNED_|ERR_TLS_|ERR_SSL_|HOSTNAME_MISMATCH)/.test(code);
  if (isTls) return new MtaStsError('tls', domain, `MTA-STS: certificate of ${url} refused (${code})`, { detail: code, cause: err });
  return new MtaStsError('network', domain, `MTA-STS: ${url} failed (${code})`, { detail: code, cause: err });
}
