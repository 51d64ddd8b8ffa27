import fs from 'node:fs';
import { X509Certificate } from 'node:crypto';
import type { Config } from '../config/schema.js';
import { isLoopbackHost } from '../config/validate.js';
import { ZegelError } from '../errors.js';
import type { Logger } from '../log.js';
import { MxTransport } from './mx-transport.js';
import { MxResolver } from './mx/dns.js';
import { MtaSts } from './mx/mta-sts.js';
import { TlsPolicy, targetHost, type TlsLevel } from './tls-policy.js';
import { OutboxTransport, SmtpTransport, type Transport } from './transport.js';

/** Where the outbox goes (`delivery.outboxDir`, already checked to lie outside data.dir). */
export interface TransportPaths {
  outboxDir: string;
}

/** The two routes' transports; one when `delivery.internalTarget` is unset or the same as `delivery.target`. */
export interface RouteTransports {
  target: Transport;
  internal: Transport;
  /** Each transport once (for closing). */
  all: Transport[];
  /** What the relay warns about at start-up (a policy that lowers mail with secrets below `verify`). */
  warnings: string[];
}

type DeliveryConfig = Config['delivery'];

/**
 * The TLS defaults of a target (issue 18, docs/delivery.md): `verify` where
 * mail leaves the organisation's own machines (mx, smtps://, a login, any
 * smtp:// host that is not this machine), `may` for a loopback target (the
 * Postfix re-injection). Mail with link keys or codes is raised to `verify`
 * over mx, smtps:// and login targets (`secretsFloor`).
 */
export function targetTlsDefaults(target: string, withAuth: boolean): { level: TlsLevel; secretsFloor: TlsLevel | undefined } {
  if (target === 'mx' || target.startsWith('smtps:') || withAuth) return { level: 'verify', secretsFloor: 'verify' };
  return { level: isLoopbackHost(targetHost(target)) ? 'may' : 'verify', secretsFloor: undefined };
}

/** A file delivery needs (`key` names its setting), or ZEGEL_DELIVERY_FILE. */
function readDeliveryFile(key: string, file: string): string {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch (err) {
    throw new ZegelError('ZEGEL_DELIVERY_FILE', `${key}: cannot read ${file} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
  }
}

/** The first line of a secret file, or a named error. */
function readPassword(file: string): string {
  const text = readDeliveryFile('delivery.auth.passwordFile', file);
  const password = text.split(/\r?\n/)[0] ?? '';
  if (!password) throw new ZegelError('ZEGEL_DELIVERY_FILE', `delivery.auth.passwordFile: ${file} is empty; the password goes on its first line`);
  return password;
}

/** The certificates of a PEM file, each checked to parse as X.509. */
export function readCaFile(key: string, file: string): string[] {
  const text = readDeliveryFile(key, file);
  const pems = text.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
  if (!pems.length) throw new ZegelError('ZEGEL_DELIVERY_FILE', `${key}: ${file} holds no PEM certificate (-----BEGIN CERTIFICATE-----)`);
  for (const pem of pems) {
    try {
      new X509Certificate(pem);
    } catch (err) {
      throw new ZegelError('ZEGEL_DELIVERY_FILE', `${key}: ${file} holds a certificate that does not parse (${(err as Error).message})`);
    }
  }
  return pems;
}

/**
 * Builds the transports of both routes from `delivery` (reading the login's
 * password file and the CA files once, at start), and the start-up warnings.
 */
export function createRouteTransports(delivery: DeliveryConfig, paths: TransportPaths, hostname: string, log?: Logger): RouteTransports {
  const ca = delivery.tls.ca ? readCaFile('delivery.tls.ca', delivery.tls.ca) : undefined;
  let shared: { resolver: MxResolver; mtaSts: MtaSts | undefined } | undefined;
  const make = (url: string, withAuth: boolean, route: 'target' | 'internal'): Transport => {
    if (url === 'outbox') return new OutboxTransport(paths.outboxDir);
    const policy = routePolicy(delivery, url, withAuth, route);
    if (url === 'mx') {
      shared ??= (() => {
        const resolver = new MxResolver({ servers: delivery.mx.dnsServers.length ? delivery.mx.dnsServers : undefined });
        const stsCa = delivery.mx.mtaSts.ca ? readCaFile('delivery.mx.mtaSts.ca', delivery.mx.mtaSts.ca) : undefined;
        return { resolver, mtaSts: delivery.mx.mtaSts.enabled ? new MtaSts({ resolver, ...(stsCa ? { ca: stsCa.join('\n') } : {}) }) : undefined };
      })();
      return new MxTransport({
        hostname,
        timeout: delivery.timeout,
        port: delivery.mx.port,
        maxConnectionsPerDomain: delivery.mx.maxConnectionsPerDomain,
        policy,
        ca,
        resolver: shared.resolver,
        mtaSts: shared.mtaSts,
        log,
      });
    }
    const auth = withAuth && delivery.auth ? { user: delivery.auth.user, pass: readPassword(delivery.auth.passwordFile) } : undefined;
    return new SmtpTransport(url, { hostname, maxConnections: delivery.concurrency, timeout: delivery.timeout, policy, ca, auth });
  };
  const target = make(delivery.target, !!delivery.auth, 'target');
  const internalTarget = delivery.internalTarget ?? delivery.target;
  const internal = internalTarget === delivery.target ? target : make(internalTarget, false, 'internal');
  return { target, internal, all: internal === target ? [target] : [target, internal], warnings: deliveryWarnings(delivery) };
}

/**
 * The TLS policy of one route. `delivery.tls.default` is the outward route's (`delivery.target`):
 * the internal route keeps its own target's default (a loopback re-injection stays `may` when the
 * target is `mx` with `verify`). `delivery.tls.policies` is keyed by next-hop domain and applies
 * to both.
 */
function routePolicy(delivery: DeliveryConfig, url: string, withAuth: boolean, route: 'target' | 'internal'): TlsPolicy {
  const defaults = targetTlsDefaults(url, withAuth);
  return new TlsPolicy(route === 'target' ? delivery.tls : { policies: delivery.tls.policies }, defaults.level, defaults.secretsFloor);
}

/** The start-up warnings of `delivery`: a policy that lets mail with link keys or codes leave unverified. */
export function deliveryWarnings(delivery: DeliveryConfig): string[] {
  const warnings = new Set<string>();
  const routes: Array<[string, boolean, 'target' | 'internal']> = [[delivery.target, !!delivery.auth, 'target'], [delivery.internalTarget ?? delivery.target, false, 'internal']];
  for (const [url, withAuth, route] of routes) {
    if (url === 'outbox') continue;
    for (const { domain, level } of routePolicy(delivery, url, withAuth, route).loweredForSecrets()) {
      warnings.add(`delivery.tls.policies lowers ${domain} to ${level}: notifications, receipts and code mails to it leave without a verified certificate (their link keys and codes can be read by anyone in the path)`);
    }
  }
  return [...warnings];
}

/** Reads every file delivery needs (the login's password, the CA files) as a start would: the problems, each a named error's message. */
export function deliveryFileProblems(delivery: DeliveryConfig): string[] {
  const problems: string[] = [];
  const attempt = (read: () => unknown) => {
    try {
      read();
    } catch (err) {
      problems.push(`${(err as ZegelError).code ?? 'ERROR'}: ${(err as Error).message}`);
    }
  };
  if (delivery.auth) attempt(() => readPassword(delivery.auth!.passwordFile));
  if (delivery.tls.ca) attempt(() => readCaFile('delivery.tls.ca', delivery.tls.ca!));
  if (delivery.mx.mtaSts.ca) attempt(() => readCaFile('delivery.mx.mtaSts.ca', delivery.mx.mtaSts.ca!));
  return problems;
}
