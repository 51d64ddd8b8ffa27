import type { Logger } from '../log.js';
import { RouteError, type MxHost, type MxResolver } from './mx/dns.js';
import type { MtaSts, StsPolicy } from './mx/mta-sts.js';
import { refusedFacts, SmtpPool, SmtpPoolError, type StsMode } from './smtp-pool.js';
import { atLeast, type MailKind, type TlsLevel, type TlsPolicy } from './tls-policy.js';
import { TransportError, type Envelope, type SendResult, type SpoolSource, type Transport } from './transport.js';

export interface MxTransportOptions {
  /** The name sent with EHLO. */
  hostname: string;
  timeout: number;
  /** The SMTP port of every MX (`delivery.mx.port`, 25). */
  port: number;
  /** Sessions at most to one recipient domain at a time. */
  maxConnectionsPerDomain: number;
  policy: TlsPolicy;
  /** Extra trusted CAs (PEM), `delivery.tls.ca`. */
  ca?: string[] | undefined;
  resolver: MxResolver;
  /** Absent: MTA-STS switched off (`delivery.mx.mtaSts.enabled: false`). */
  mtaSts?: MtaSts | undefined;
  log?: Logger | undefined;
  /** A pool with no session left is dropped after this many ms unused (default 5 minutes). */
  poolIdleMs?: number | undefined;
}

/** A counting gate per recipient domain. */
class DomainGate {
  active = 0;
  readonly waiting: Array<() => void> = [];
}

/**
 * `delivery.target: mx`, direct delivery: the recipient domain's MX hosts
 * (A/AAAA fallback, RFC 5321 §5.1) in preference order, each address of a
 * host in turn, over pooled sessions that are reused per host. Every
 * transaction carries one domain's recipients (`group`).
 *
 * TLS: the level from `delivery.tls` for the recipient domain (mail with
 * link keys or codes at least `verify`), raised to `verify` when the domain
 * publishes an MTA-STS policy in `enforce` mode; then only MX hosts that the
 * policy lists are used (RFC 8461 §4). In `testing` mode a mismatch is
 * logged and recorded, and the mail goes as it would without MTA-STS.
 *
 * A host that cannot be reached, greets with 4xx or cannot meet the TLS
 * policy is passed over for the next; the reply of the transaction itself
 * (MAIL, RCPT, DATA) is final for this attempt. When no host took the
 * message, the failure that says most is returned: a TLS policy failure
 * (4.7.x) before a connection failure, so a DSN names it.
 */
export class MxTransport implements Transport {
  readonly name = 'mx';
  readonly #options: MxTransportOptions;
  readonly #pools = new Map<string, { pool: SmtpPool; lastUsed: number }>();
  readonly #gates = new Map<string, DomainGate>();
  readonly #sweeper: NodeJS.Timeout;
  #closed = false;

  constructor(options: MxTransportOptions) {
    this.#options = options;
    const idleMs = options.poolIdleMs ?? 5 * 60_000;
    this.#sweeper = setInterval(() => this.#sweep(idleMs), Math.min(idleMs, 60_000));
    this.#sweeper.unref();
  }

  group(address: string): string {
    return domainOf(address);
  }

  async send(envelope: Envelope, source: SpoolSource, _tag: string, kind: MailKind = { secrets: false }): Promise<SendResult> {
    const domain = domainOf(envelope.to[0] ?? '');
    let hosts: MxHost[];
    try {
      hosts = await this.#options.resolver.route(domain);
    } catch (err) {
      if (err instanceof RouteError) throw new TransportError(err.code, err.reply, domain);
      throw new TransportError(451, `451 4.4.3 ${domain}: DNS lookup failed (${(err as Error).message})`, domain);
    }
    const sts = await this.#stsPolicy(domain);
    const mode: StsMode = sts?.mode ?? 'none';
    const resolved = this.#options.policy.resolve(domain, kind);
    // RFC 8461 §4.2: under enforce the certificate must be valid for the MX name, whatever the local default
    const level: TlsLevel = mode === 'enforce' ? atLeast(resolved.level, 'verify') : resolved.level;
    let candidates = hosts;
    if (sts && mode !== 'none') {
      const listed = hosts.filter((h) => this.#options.mtaSts!.matches(h.name, sts));
      const unlisted = hosts.filter((h) => !listed.includes(h));
      if (unlisted.length) {
        this.#options.log?.warn({ domain, mtaSts: mode, policyId: sts.id, unlisted: unlisted.map((h) => h.name), allowed: sts.mx }, mode === 'enforce' ? 'MTA-STS enforce: MX hosts not in the policy are not used' : 'MTA-STS testing: MX hosts not in the policy (delivered anyway)');
      }
      if (mode === 'enforce') {
        if (!listed.length) {
          throw new TransportError(454, `454 4.7.5 MTA-STS enforce: no MX of ${domain} is listed in its policy (MX ${hosts.map((h) => h.name).join(', ')}; policy allows ${sts.mx.join(', ')})`, domain, refusedFacts(level, mode, 'MTA-STS-MX-MISMATCH'));
        }
        candidates = listed;
      }
    }
    return this.#withGate(domain, () => this.#deliver(domain, candidates, level, mode, envelope, source));
  }

  async #deliver(domain: string, hosts: MxHost[], level: TlsLevel, mode: StsMode, envelope: Envelope, source: SpoolSource): Promise<SendResult> {
    const failures: Array<{ host: MxHost; address: string; error: SmtpPoolError }> = [];
    for (const host of hosts) {
      for (const address of host.addresses) {
        const pool = this.#pool(host, address, level, mode);
        try {
          const sent = await pool.send(envelope, source);
          return { accepted: sent.accepted, rejected: sent.rejected, reply: sent.reply, remoteMta: host.name, ...(sent.tls ? { tls: sent.tls } : {}) };
        } catch (err) {
          const error = err instanceof SmtpPoolError ? err : new SmtpPoolError(0, (err as Error).message, 'connection');
          // the host answered the transaction itself: its word is final for this attempt
          if (error.kind === 'transaction' && error.code !== 0) throw new TransportError(error.code, error.reply, host.name, error.tls);
          failures.push({ host, address, error });
          this.#options.log?.info({ domain, mx: host.name, address, reply: error.reply, kind: error.kind }, 'MX host passed over');
        }
      }
    }
    const tls = failures.find((f) => f.error.kind === 'tls');
    if (tls) throw new TransportError(tls.error.code, tls.error.reply, tls.host.name, tls.error.tls);
    const greeted = failures.find((f) => f.error.code >= 400);
    if (greeted) throw new TransportError(greeted.error.code, greeted.error.reply, greeted.host.name);
    const tried = failures.map((f) => `${f.host.name} [${f.address}]: ${f.error.reply}`).join('; ');
    throw new TransportError(451, `451 4.4.1 no MX host of ${domain} answered (${tried})`, failures[0]?.host.name ?? domain);
  }

  /** The domain's MTA-STS policy, or undefined (none published, switched off, or none usable: RFC 8461 §5 delivers as without). */
  async #stsPolicy(domain: string): Promise<StsPolicy | undefined> {
    const sts = this.#options.mtaSts;
    if (!sts) return undefined;
    const found = await sts.lookup(domain);
    // a policy that could not be fetched (and none cached) is worth a line: it may be an attack on the fetch, or the domain's mistake
    if (found.reason && found.error) this.#options.log?.warn({ domain, mtaSts: found.source, reason: found.reason, kind: found.error.kind }, 'MTA-STS policy not fetched');
    return found.policy;
  }

  #pool(host: MxHost, address: string, level: TlsLevel, mode: StsMode): SmtpPool {
    const key = `${address}|${host.name}|${level}|${mode}`;
    let entry = this.#pools.get(key);
    if (!entry) {
      const { hostname, timeout, port, maxConnectionsPerDomain, ca } = this.#options;
      // the address to connect to, the MX name to verify (and send as SNI)
      const pool = new SmtpPool({ host: address, port, servername: host.name, level, ca, mtaSts: mode }, { hostname, maxConnections: maxConnectionsPerDomain, timeout, maxMessages: 100 });
      entry = { pool, lastUsed: Date.now() };
      this.#pools.set(key, entry);
    }
    entry.lastUsed = Date.now();
    return entry.pool;
  }

  async #withGate<T>(domain: string, fn: () => Promise<T>): Promise<T> {
    let gate = this.#gates.get(domain);
    if (!gate) this.#gates.set(domain, (gate = new DomainGate()));
    // a freed slot passes straight to the first waiter (`active` unchanged), so no newcomer slips in between
    if (gate.active >= this.#options.maxConnectionsPerDomain) await new Promise<void>((resolve) => gate.waiting.push(resolve));
    else gate.active++;
    try {
      return await fn();
    } finally {
      const next = gate.waiting.shift();
      if (next) next();
      else if (--gate.active === 0) this.#gates.delete(domain);
    }
  }

  /** Drops pools whose sessions are all gone and that were not used for `idleMs`. */
  #sweep(idleMs: number): void {
    const now = Date.now();
    for (const [key, entry] of this.#pools) {
      if (entry.pool.size === 0 && now - entry.lastUsed > idleMs) {
        entry.pool.close();
        this.#pools.delete(key);
      }
    }
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    clearInterval(this.#sweeper);
    for (const { pool } of this.#pools.values()) pool.close();
    this.#pools.clear();
  }
}

/** The domain of an address, lower case, without a trailing dot (`Jan@Example.NL.` → `example.nl`). */
export function domainOf(address: string): string {
  const at = address.lastIndexOf('@');
  return (at === -1 ? address : address.slice(at + 1)).toLowerCase().replace(/\.$/, '');
}
