import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { ZegelError } from '../errors.js';
import { TlsPolicy, targetHost } from '../deliver/tls-policy.js';
import type { Config } from './schema.js';

/**
 * Deployment rules that span several keys and are checked where a relay is
 * started or a configuration is checked (`zegel start`, `zegel check-config`,
 * SIGHUP), in this one module:
 *
 * - where the outbox lives: delivered mail (notifications carry link keys in
 *   their fragment) never inside `data.dir`, so a copy of the relay's state
 *   alone decrypts nothing;
 * - for whom the relay relays: a relay reachable beyond loopback must be told
 *   the organisation's domains and where mail goes;
 * - what a cluster needs: PostgreSQL with its URL (no password in it) and the
 *   key files every node shares; BullMQ only on top of PostgreSQL.
 */

/** The default outbox: a folder `outbox` beside `data.dir` (./data → ./outbox). */
export function defaultOutboxDir(dataDir: string): string {
  return path.join(path.dirname(path.resolve(dataDir)), 'outbox');
}

/** True when `inner` is `outer` or lies below it (lexically, after resolving). */
export function pathWithin(inner: string, outer: string): boolean {
  const relative = path.relative(path.resolve(outer), path.resolve(inner));
  return relative === '' || (!relative.startsWith('..') && !path.isAbsolute(relative));
}

/**
 * A path with its symlinks resolved as far as it exists: the real path of its
 * nearest existing ancestor, plus the parts not made yet.
 */
export function realPathSoFar(p: string): string {
  const missing: string[] = [];
  let current = path.resolve(p);
  for (;;) {
    try {
      return path.join(fs.realpathSync(current), ...missing.reverse());
    } catch {
      const parent = path.dirname(current);
      if (parent === current) return path.resolve(p);
      missing.push(path.basename(current));
      current = parent;
    }
  }
}

/** The outbox must not lie inside data.dir, nor data.dir inside the outbox: as written, and after resolving symlinks. */
export function outboxProblems(config: Config): string[] {
  const outbox = config.delivery.outboxDir ?? defaultOutboxDir(config.data.dir);
  const dataDir = config.data.dir;
  const reason = 'the outbox holds delivered mail with link keys, so a copy of data.dir would decrypt every message';
  if (pathWithin(outbox, dataDir)) {
    return [`delivery.outboxDir: ${outbox} lies inside data.dir (${dataDir}); ${reason}: put it beside data.dir (the default is ${defaultOutboxDir(dataDir)})`];
  }
  if (pathWithin(dataDir, outbox)) {
    return [`delivery.outboxDir: ${outbox} contains data.dir (${dataDir}); keep the outbox and data.dir apart`];
  }
  const [realOutbox, realData] = [realPathSoFar(outbox), realPathSoFar(dataDir)];
  if (pathWithin(realOutbox, realData) || pathWithin(realData, realOutbox)) {
    return [`delivery.outboxDir: ${outbox} resolves to ${realOutbox}, which overlaps data.dir (${dataDir} resolves to ${realData}); ${reason}`];
  }
  return [];
}

/**
 * The store and queue drivers and the keys a cluster shares (docs/architecture.md, "Configuration").
 * With `store.driver: postgres` every node must read the same relay key, storage key and audit
 * signing key, so none may be made by a node on its own: all three files must be named
 * (`zegel keys generate DIR` writes them). BullMQ carries jobs whose rows PostgreSQL holds, so it
 * needs `store.driver: postgres`. Server settings of a driver that is not chosen are refused
 * rather than ignored, so a misspelt driver cannot leave a node on its own SQLite unnoticed.
 */
export function clusterProblems(config: Config): string[] {
  const problems: string[] = [];
  const { store, queue } = config;
  if (store.driver === 'postgres') {
    if (!store.url) problems.push('store.url: required with store.driver postgres, e.g. postgres://zegel@db.example.nl:5432/zegel (the password in store.passwordFile)');
    const keys: Array<[string, string | undefined]> = [
      ['data.relayKeyFile', config.data.relayKeyFile],
      ['store.keyFile', store.keyFile],
      ['audit.signingKeyFile', config.audit.signingKeyFile],
    ];
    for (const [key, file] of keys) {
      if (!file) problems.push(`${key}: required with store.driver postgres: every node must use the same key file, so none is made on its own (zegel keys generate DIR writes relay.key, storage.key and audit-signing.pem)`);
    }
    if (config.data.relayKeyFile && store.keyFile && path.resolve(config.data.relayKeyFile) === path.resolve(store.keyFile)) {
      problems.push('store.keyFile: the same file as data.relayKeyFile; the storage key and the relay key must be different keys');
    }
  } else {
    for (const key of ['url', 'passwordFile', 'keyFile'] as const) {
      if (store[key] !== undefined) problems.push(`store.${key}: only used with store.driver postgres (store.driver is ${store.driver})`);
    }
  }
  if (queue.driver === 'bullmq') {
    if (!queue.url) problems.push('queue.url: required with queue.driver bullmq, e.g. redis://redis.example.nl:6379');
    if (store.driver !== 'postgres') problems.push(`queue.driver: bullmq needs store.driver postgres (PostgreSQL is the source of truth for jobs; store.driver is ${store.driver})`);
  } else {
    for (const key of ['url', 'passwordFile'] as const) {
      if (queue[key] !== undefined) problems.push(`queue.${key}: only used with queue.driver bullmq (queue.driver is ${queue.driver})`);
    }
    // the in-process queue lives in the SQLite file: a cluster's nodes would each run their own
    if (store.driver === 'postgres') problems.push('queue.driver: store.driver postgres needs queue.driver bullmq (the sqlite queue lives in one node\'s SQLite file), with queue.url redis://…');
  }
  return problems;
}

/** Whether a CIDR or address from smtp.allow covers loopback addresses only (127.0.0.0/8, ::1). */
export function isLoopbackEntry(entry: string): boolean {
  const [rawAddress, rawPrefix] = entry.split('/') as [string, string | undefined];
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(rawAddress);
  if (mapped) {
    const prefix = rawPrefix === undefined ? 32 : Number(rawPrefix) - 96;
    return prefix >= 8 && isLoopbackEntry(`${mapped[1]}/${prefix}`);
  }
  const family = net.isIP(rawAddress);
  if (family === 4) {
    const prefix = rawPrefix === undefined ? 32 : Number(rawPrefix);
    return prefix >= 8 && rawAddress.split('.')[0] === '127';
  }
  if (family === 6) {
    const prefix = rawPrefix === undefined ? 128 : Number(rawPrefix);
    const loopback = new net.BlockList();
    loopback.addAddress('::1', 'ipv6');
    return prefix === 128 && loopback.check(rawAddress, 'ipv6');
  }
  return false;
}

/** Whether smtp.listen's host accepts loopback connections only. */
export function isLoopbackHost(host: string): boolean {
  if (host.toLowerCase() === 'localhost') return true;
  return net.isIP(host) !== 0 && isLoopbackEntry(host);
}

function explicitDeliveryTarget(input: unknown): boolean {
  const delivery = (input as { delivery?: unknown } | null | undefined)?.delivery;
  return typeof delivery === 'object' && delivery !== null && (delivery as { target?: unknown }).target !== undefined;
}

/**
 * For whom the relay relays. A relay that listens beyond loopback, or allows
 * clients beyond loopback, relays for nobody until the configuration says for
 * whom: `organisation.domains` (the senders it carries mail for) and an
 * explicit `delivery.target`. The embedded default (127.0.0.1, loopback allow
 * list, outbox) needs neither. `input` is the configuration as written (to
 * tell an explicit target from the default); undefined for the embedded default.
 */
export function relayScopeProblems(config: Config, input: unknown): string[] {
  const openAllow = config.smtp.allow.filter((entry) => !isLoopbackEntry(entry));
  const listen = config.smtp.listen;
  const openListen = !isLoopbackHost(listen.host);
  if (!openAllow.length && !openListen) return [];
  const reach = [
    ...(openListen ? [`smtp.listen ${listen.host.includes(':') ? `[${listen.host}]` : listen.host}:${listen.port}`] : []),
    ...(openAllow.length ? [`smtp.allow ${openAllow.join(', ')}`] : []),
  ].join(' and ');
  const problems: string[] = [];
  if (!config.organisation.domains.length) {
    problems.push(
      `organisation.domains: empty while the relay is reachable beyond loopback (${reach}); list the domains whose senders may relay, e.g. [example.nl]` +
        (openAllow.length ? ', or narrow smtp.allow to 127.0.0.0/8 and ::1' : ''),
    );
  }
  if (!explicitDeliveryTarget(input)) {
    problems.push(`delivery.target: not set while the relay is reachable beyond loopback (${reach}); say where mail goes, e.g. smtp://smarthost.example.nl:25 (or outbox, explicitly)`);
  }
  return problems;
}

/** Throws ZEGEL_CONFIG_OPEN_RELAY when the configuration would relay for anyone (see relayScopeProblems). */
export function assertRelayScope(config: Config, input: unknown, source = 'configuration'): void {
  const problems = relayScopeProblems(config, input);
  if (problems.length) {
    throw new ZegelError('ZEGEL_CONFIG_OPEN_RELAY', `${source} would relay for anyone, refused:\n  ${problems.join('\n  ')}`);
  }
}

/**
 * A dotless `smtp.hostname` (configured, or the default when this host has no
 * fully qualified name): said at start and by check-config, not refused, since
 * a next hop on loopback may well accept it.
 */
export function hostnameWarning(config: Config): string | undefined {
  const name = config.smtp.hostname;
  if (name === undefined || name.replace(/\.$/, '').includes('.') || name.startsWith('[')) return undefined;
  return `smtp.hostname "${name}" has no dot: next hops with reject_non_fqdn_helo_hostname (a common Postfix setting) refuse it as EHLO name with 504, and relay-made mail carries it in its Message-ID; set smtp.hostname to this host's fully qualified name`;
}

/** delivery.auth and the mx keys only make sense with the targets they serve. */
export function deliveryProblems(config: Config): string[] {
  const { delivery } = config;
  const problems: string[] = [];
  if (delivery.auth && !/^smtps?:/.test(delivery.target)) {
    problems.push(`delivery.auth: a login is for a smarthost (delivery.target smtp://… or smtps://), not for ${delivery.target}`);
  }
  if (delivery.auth && /^smtps?:/.test(delivery.target)) {
    // the password only ever goes to a verified certificate: a lower level for the smarthost would send it to anyone in the path
    const host = targetHost(delivery.target).toLowerCase();
    // the smarthost's level as the transport will resolve it (a login target's own default is verify)
    const { level, source } = new TlsPolicy(delivery.tls, 'verify', 'verify').resolve(host, { secrets: false });
    if (level !== 'verify') {
      problems.push(`delivery.tls: ${source === 'policy' ? `policies.${host}` : 'default'} is ${level}, but the login of delivery.auth is only sent over a verified certificate; keep verify (a private CA goes in delivery.tls.ca)`);
    }
  }
  return problems;
}
