import { randomInt } from 'node:crypto';
import { Resolver } from 'node:dns/promises';

/** One mail host of a domain, with the addresses to try in order (A first, then AAAA). */
export interface MxHost {
  /** The exchange name as published (lower case, no trailing dot), or the domain itself when `implicit`. */
  name: string;
  /** MX preference; 0 for the implicit MX. */
  preference: number;
  addresses: string[];
  /** True when the domain has no MX records and its own A/AAAA stand in (RFC 5321 §5.1). */
  implicit: boolean;
}

export type RouteErrorKind = 'null-mx' | 'nxdomain' | 'no-address' | 'dns-failure';

/**
 * Why a domain has no route. `reply` is a full SMTP-style reply line naming the
 * domain (`556 5.1.10 example.nl accepts no mail (null MX, RFC 7505)`), ready for
 * a DSN; `permanent` follows the basic code (5xx), `kind` is stable for callers.
 */
export class RouteError extends Error {
  readonly kind: RouteErrorKind;
  readonly domain: string;
  /** Basic SMTP reply code: 556, 550 or 451. */
  readonly code: number;
  /** Enhanced status code (RFC 3463), e.g. `5.1.10`. */
  readonly status: string;
  readonly reply: string;
  /** The resolver's error code when DNS failed (ESERVFAIL, ETIMEOUT, ECONNREFUSED, ...). */
  readonly dnsCode: string | undefined;

  constructor(kind: RouteErrorKind, domain: string, code: number, status: string, text: string, options?: { cause?: unknown; dnsCode?: string }) {
    const reply = `${code} ${status} ${text}`;
    super(reply, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'RouteError';
    this.kind = kind;
    this.domain = domain;
    this.code = code;
    this.status = status;
    this.reply = reply;
    this.dnsCode = options?.dnsCode;
  }

  get permanent(): boolean {
    return this.code >= 500;
  }
}

export interface MxResolverOptions {
  /** DNS servers to ask (tests, unusual networks); without them the system's. */
  servers?: Array<{ host: string; port: number }>;
  /** Per-try timeout in milliseconds (default 5000). */
  timeout?: number;
  /** Tries per server before giving up (c-ares default when absent). */
  tries?: number;
}

/** The c-ares codes for "the name or the type is not there", as opposed to "could not ask". */
const ABSENT = new Set(['ENODATA', 'ENOTFOUND']);

function codeOf(err: unknown): string {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : 'EUNKNOWN';
}

function normalise(name: string): string {
  return name.trim().toLowerCase().replace(/\.$/, '');
}

/** Fisher-Yates with crypto randomness (RFC 5321 §5.1: equal preferences in random order). */
function shuffle<T>(items: T[]): T[] {
  for (let i = items.length - 1; i > 0; i--) {
    const j = randomInt(i + 1);
    [items[i], items[j]] = [items[j]!, items[i]!];
  }
  return items;
}

function serverString({ host, port }: { host: string; port: number }): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}

/**
 * Finds where mail for a domain goes (RFC 5321 §5.1, RFC 7505): MX hosts in
 * preference order (equal preferences shuffled), each with its A then AAAA
 * addresses; a host without addresses, or whose address lookup fails, is left
 * out (when that leaves none, a failed lookup makes the error temporary). A
 * domain without MX records is its own implicit MX; a single null MX means no
 * mail (a null MX beside real ones is ignored). Every failure is a RouteError: a null MX, an unknown
 * domain or no host with an address is permanent, a resolver failure (SERVFAIL,
 * timeout, refused, ...) temporary. One resolver is built per instance, pointed
 * at `servers` when given.
 */
export class MxResolver {
  readonly #resolver: Resolver;

  constructor(options: MxResolverOptions = {}) {
    const resolverOptions: { timeout: number; tries?: number } = { timeout: options.timeout ?? 5_000 };
    if (options.tries !== undefined) resolverOptions.tries = options.tries;
    this.#resolver = new Resolver(resolverOptions);
    if (options.servers?.length) this.#resolver.setServers(options.servers.map(serverString));
  }

  /** The mail hosts of `domain`, best first; rejects with a RouteError. */
  async route(domain: string): Promise<MxHost[]> {
    const name = normalise(domain);
    let records: Array<{ exchange: string; priority: number }>;
    try {
      records = await this.#resolver.resolveMx(name);
    } catch (err) {
      const code = codeOf(err);
      if (code === 'ENODATA') {
        // no MX: the domain is its own mail host (RFC 5321 §5.1)
        const addresses = await this.#addressesOrFail(name, name);
        if (!addresses.length) throw noAddress(name);
        return [{ name, preference: 0, addresses, implicit: true }];
      }
      throw this.#failure(name, err);
    }
    if (!records.length) {
      const addresses = await this.#addressesOrFail(name, name);
      if (!addresses.length) throw noAddress(name);
      return [{ name, preference: 0, addresses, implicit: true }];
    }
    if (records.length === 1 && normalise(records[0]!.exchange) === '') {
      throw new RouteError('null-mx', name, 556, '5.1.10', `${name} accepts no mail (null MX, RFC 7505)`);
    }
    const byPreference = new Map<number, string[]>();
    // RFC 7505 §3: a null MX must be the only MX; beside real ones it names no host, so it is dropped
    for (const record of records.filter((r) => normalise(r.exchange) !== '')) {
      const exchange = normalise(record.exchange);
      const list = byPreference.get(record.priority) ?? [];
      if (!list.includes(exchange)) list.push(exchange);
      byPreference.set(record.priority, list);
    }
    const ordered: Array<{ name: string; preference: number }> = [];
    for (const preference of [...byPreference.keys()].sort((a, b) => a - b)) {
      for (const exchange of shuffle(byPreference.get(preference)!)) ordered.push({ name: exchange, preference });
    }
    // a host whose lookup fails is skipped like one without addresses, but if no host is left the
    // failure is temporary (451), not "no mail host" (550): the next try may find its addresses
    const looked = await Promise.all(
      ordered.map(async (host) => {
        try {
          return { ...host, addresses: await this.#addressesOrFail(name, host.name), implicit: false };
        } catch (err) {
          return err as RouteError;
        }
      }),
    );
    const usable = looked.filter((host): host is MxHost => !(host instanceof RouteError) && host.addresses.length > 0);
    if (usable.length) return usable;
    const failed = looked.find((host): host is RouteError => host instanceof RouteError);
    throw failed ?? noAddress(name);
  }

  /**
   * A then AAAA addresses of `name`; [] when the name or both types are absent. A family whose
   * lookup fails while the other answers is left out (broken AAAA answers are common); only when
   * both fail does it reject, with the first failure.
   */
  async addresses(name: string): Promise<string[]> {
    const host = normalise(name);
    const [v4, v6] = await Promise.allSettled([this.#lookup(() => this.#resolver.resolve4(host)), this.#lookup(() => this.#resolver.resolve6(host))]);
    if (v4.status === 'rejected' && v6.status === 'rejected') throw v4.reason;
    return [...(v4.status === 'fulfilled' ? v4.value : []), ...(v6.status === 'fulfilled' ? v6.value : [])];
  }

  /** TXT records of `name` as c-ares gives them (each record a list of strings); rejects like `dns.promises.resolveTxt`. */
  txt(name: string): Promise<string[][]> {
    return this.#resolver.resolveTxt(normalise(name));
  }

  async #lookup(query: () => Promise<string[]>): Promise<string[]> {
    try {
      return await query();
    } catch (err) {
      if (ABSENT.has(codeOf(err))) return [];
      throw err;
    }
  }

  async #addressesOrFail(domain: string, host: string): Promise<string[]> {
    try {
      return await this.addresses(host);
    } catch (err) {
      throw this.#failure(domain, err, host);
    }
  }

  #failure(domain: string, err: unknown, host?: string): RouteError {
    const code = codeOf(err);
    if (code === 'ENOTFOUND' && host === undefined) {
      return new RouteError('nxdomain', domain, 550, '5.1.2', `${domain}: domain does not exist (NXDOMAIN)`, { cause: err, dnsCode: code });
    }
    const about = host && host !== domain ? ` for ${host}` : '';
    return new RouteError('dns-failure', domain, 451, '4.4.3', `${domain}: DNS lookup failed${about} (${code})`, { cause: err, dnsCode: code });
  }
}

function noAddress(domain: string): RouteError {
  return new RouteError('no-address', domain, 550, '5.4.4', `${domain}: no mail host with an address`);
}
