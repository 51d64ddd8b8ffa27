import net from 'node:net';
import { z } from 'zod';
import { parseDuration, parseSize } from './units.js';
import { LANGUAGES, VERIFICATION_METHODS } from '../vocabulary.js';
import { TLS_LEVELS } from '../deliver/tls-policy.js';

/**
 * The one configuration schema. Every default lives here; the table in
 * DESIGN.md ("Contracts") and config/zegel.example.yaml describe the same keys.
 */

const size = z
  .union([z.string(), z.number()])
  .transform((value, ctx) => {
    const parsed = parseSize(value);
    if (parsed === undefined) {
      ctx.addIssue({ code: 'custom', message: `expected a size such as 50MB or a number of bytes, got ${JSON.stringify(value)}` });
      return z.NEVER;
    }
    return parsed;
  });

const duration = z
  .union([z.string(), z.number()])
  .transform((value, ctx) => {
    const parsed = parseDuration(value);
    if (parsed === undefined) {
      ctx.addIssue({ code: 'custom', message: `expected a duration such as 5m, 48h or 90d, got ${JSON.stringify(value)}` });
      return z.NEVER;
    }
    return parsed;
  });

const hostPort = z.string().transform((value, ctx) => {
  const match = /^(?:\[([0-9a-fA-F:.]+)\]|([^:\s]+)):(\d{1,5})$/.exec(value.trim());
  const port = match ? Number(match[3]) : NaN;
  if (!match || !(port >= 0 && port <= 65535)) {
    ctx.addIssue({ code: 'custom', message: `expected host:port (for IPv6 [::1]:port), got ${JSON.stringify(value)}` });
    return z.NEVER;
  }
  return { host: (match[1] ?? match[2]) as string, port };
});

const cidr = z.string().refine(
  (value) => {
    const [address, prefix, ...rest] = value.split('/');
    if (rest.length || !address) return false;
    const family = net.isIP(address);
    if (!family) return false;
    if (prefix === undefined) return true;
    const bits = Number(prefix);
    return /^\d+$/.test(prefix) && bits >= 0 && bits <= (family === 4 ? 32 : 128);
  },
  { message: 'expected an IP address or CIDR such as 10.0.0.0/8 or ::1/128' },
);

const domain = z
  .string()
  .regex(/^(?=.{1,253}$)(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$/i, 'expected a domain name such as example.nl')
  .transform((value) => value.toLowerCase());

const address = z.string().regex(/^[^\s@<>]+@[^\s@<>]+$/, 'expected an e-mail address');

const target = z
  .string()
  .refine((value) => value === 'outbox' || value === 'mx' || /^smtps?:\/\/(?:[^\s/:@\[\]]+|\[[0-9a-fA-F:.]+\])(?::\d{1,5})?\/?$/.test(value), {
    message: 'expected "outbox", "mx", smtp://host:port (STARTTLS) or smtps://host:port (TLS from the first byte); a login goes in delivery.auth, never in the URL',
  });

/** A TLS policy level for outgoing sessions (src/deliver/tls-policy.ts). */
const tlsLevel = z.enum(TLS_LEVELS);

/**
 * A connection URL with one of `schemes`. `secretFree`: a password in it (user:password@, or a
 * `password` parameter) is refused, and the message never repeats the URL (it may hold one).
 */
function serverUrl(schemes: readonly string[], example: string, secretFree: string | undefined) {
  return z.string().superRefine((value, ctx) => {
    let url: URL;
    try {
      url = new URL(value);
    } catch {
      ctx.addIssue({ code: 'custom', message: `expected a URL such as ${example}` });
      return;
    }
    // postgres:///db?host=/run/postgresql names a Unix socket instead of a host
    if (!schemes.includes(url.protocol.slice(0, -1)) || !(url.hostname || url.searchParams.has('host'))) {
      ctx.addIssue({ code: 'custom', message: `expected a URL such as ${example} (${schemes.map((s) => `${s}://`).join(' or ')} with a host)` });
      return;
    }
    if (secretFree && (url.password !== '' || [...url.searchParams.keys()].some((key) => key.toLowerCase() === 'password'))) {
      ctx.addIssue({ code: 'custom', message: `holds a password, refused: ${secretFree}` });
    }
  });
}

const postgresUrl = serverUrl(['postgres', 'postgresql'], 'postgres://zegel@db.example.nl:5432/zegel', 'the password goes in a file named by store.passwordFile, never in the YAML');
const redisUrl = serverUrl(['redis', 'rediss'], 'redis://redis.example.nl:6379', 'the password goes in a file named by queue.passwordFile, never in the YAML');

const verificationMethod = z.enum(VERIFICATION_METHODS);
const language = z.enum(LANGUAGES);

const strict = <T extends z.ZodRawShape>(shape: T) => z.object(shape).strict();

export const configSchema = strict({
  organisation: strict({
    name: z.string().min(1).default('Zegel'),
    domains: z.array(domain).default([]),
    logoUrl: z.string().url().optional(),
    colour: z
      .string()
      .regex(/^#[0-9a-fA-F]{6}$/, 'expected a colour such as #0b5394')
      .optional(),
    helpText: strict({ nl: z.string().optional(), en: z.string().optional() }).optional(),
  }).prefault({}),
  smtp: strict({
    listen: hostPort.prefault('127.0.0.1:2525'),
    /**
     * The name in the greeting, EHLO/HELO to next hops and Message-IDs of relay-made mail. Absent: this host's
     * fully qualified name (src/config/hostname.ts), else the short name with a warning at start and in check-config.
     */
    hostname: z.string().min(1).optional(),
    allow: z.array(cidr).default(['127.0.0.0/8', '::1/128']),
    auth: strict({
      users: z
        .array(
          strict({
            username: z.string().min(1),
            passwordHash: z.string().regex(/^\$argon2(id|i|d)\$/, 'expected an argon2 hash (zegel hash-password makes one)'),
          }),
        )
        .default([]),
      /** Failed AUTH attempts per client address (IPv6: per /64) within failureWindow; the next is refused with 454 4.7.0, unverified. */
      maxFailures: z.number().int().min(1).default(5),
      /** The same per username, across all addresses (0: not counted). */
      maxFailuresPerUser: z.number().int().min(0).default(20),
      failureWindow: duration.refine((ms) => ms >= 1000, 'expected at least 1s').default(15 * 60e3),
      /** How long an address or username over its limit is refused, even with the right password. */
      lockFor: duration.refine((ms) => ms >= 1000, 'expected at least 1s').default(15 * 60e3),
    }).prefault({}),
    tls: strict({ key: z.string().min(1), cert: z.string().min(1) }).optional(),
    requireTLS: z.boolean().default(false),
    maxMessageSize: size.default(50 * 1024 * 1024),
    maxRecipients: z.number().int().min(1).default(100),
    maxHops: z.number().int().min(1).default(50),
    senderDomainCheck: z.boolean().default(true),
    bareLineEndings: z.enum(['normalise', 'reject']).default('normalise'),
    socketTimeout: duration.default(300_000),
  }).prefault({}),
  delivery: strict({
    target: target.default('outbox'),
    internalTarget: target.optional(),
    /**
     * Where relay-made mail that cannot be delivered goes (a DSN, receipt, code mail, notice or reply):
     * a notice by the internal route; when that fails too the mail is held for an admin.
     * Absent: postmaster@ the first organisation.domains entry; no domains: held at once (src/deliver/postmaster.ts).
     */
    postmaster: address.optional(),
    /** Where `outbox` delivery writes (delivered mail, never inside data.dir); absent: `outbox` beside data.dir. */
    outboxDir: z.string().min(1).optional(),
    concurrency: z.number().int().min(1).max(1000).default(20),
    retry: strict({
      schedule: z.array(duration).min(1).default([5 * 60e3, 10 * 60e3, 30 * 60e3, 3600e3, 2 * 3600e3, 4 * 3600e3]),
      giveUpAfter: duration.default(48 * 3600e3),
    }).prefault({}),
    timeout: duration.default(120_000),
    /** SMTP AUTH at a smarthost (smtp:// or smtps:// delivery.target): the password on the first line of passwordFile, never in this file. */
    auth: strict({ user: z.string().min(1), passwordFile: z.string().min(1) }).optional(),
    /**
     * TLS towards the next hop (docs/delivery.md). `default`: absent means `verify` for mx, smtps:// and
     * a target with auth, and for any other non-loopback smtp:// target; `may` for a loopback target.
     * Mail with link keys or codes gets at least `verify` over mx, smtps:// and auth targets unless
     * `policies` names the domain lower (warned at start). `ca`: an extra trusted CA (PEM file), added
     * to the system CAs. `policies`: per next-hop domain (the recipient domain for mx, the smarthost name otherwise).
     */
    tls: strict({
      default: tlsLevel.optional(),
      ca: z.string().min(1).optional(),
      policies: z.record(domain, tlsLevel).default({}),
    }).prefault({}),
    /** delivery.target mx: the SMTP port of every MX (25), the DNS servers to ask (absent: the system's), MTA-STS. */
    mx: strict({
      port: z.number().int().min(1).max(65535).default(25),
      dnsServers: z.array(hostPort).default([]),
      /** Sessions at most to one recipient domain at a time. */
      maxConnectionsPerDomain: z.number().int().min(1).max(100).default(5),
      mtaSts: strict({
        enabled: z.boolean().default(true),
        /** An extra CA (PEM file) trusted for fetching policies, added to the system CAs. */
        ca: z.string().min(1).optional(),
      }).prefault({}),
    }).prefault({}),
  }).prefault({}),
  data: strict({
    dir: z.string().min(1).default('./data'),
    /**
     * The relay secret (32 bytes: code hashes, X-Zegel-Origin), shared by every node of a cluster.
     * Absent: data.dir/relay.key, made at the first start; set: never made, must exist (mode 0600 or stricter).
     */
    relayKeyFile: z.string().min(1).optional(),
  }).prefault({}),
  /**
   * Where the relay's state lives: `sqlite` (the embedded default, data.dir on this node's disk) or
   * `postgres` (shared by every node of a cluster; needs store.url and the three shared key files).
   */
  store: strict({
    driver: z.enum(['sqlite', 'postgres']).default('sqlite'),
    /** postgres://user@host:5432/db: never with a password in it (store.passwordFile). */
    url: postgresUrl.optional(),
    /** A file holding the database password (first line). */
    passwordFile: z.string().min(1).optional(),
    /** The storage key (32 bytes, mode 0600 or stricter) that seals spool chunks and every K_srv on PostgreSQL. */
    keyFile: z.string().min(1).optional(),
  }).prefault({}),
  rules: strict({ dir: z.string().min(1).optional() }).prefault({}),
  classify: strict({
    optInTags: z.array(z.string().min(1)).default(['veilig', 'secure', 'vertrouwelijk']),
    limits: strict({
      depth: z.number().int().min(0).default(3),
      entries: z.number().int().min(1).default(1000),
      totalBytes: size.default(200 * 1024 * 1024),
      ratio: z.number().min(1).default(100),
      timeout: duration.default(10_000),
    }).prefault({}),
  }).prefault({}),
  reader: strict({
    listen: hostPort.prefault('127.0.0.1:8080'),
    publicUrl: z.string().url().default('http://127.0.0.1:8080'),
    /** Largest reply a recipient may send from the reader: its text and attachments together. */
    replyMaxSize: size.default(25 * 1024 * 1024),
    /** Replies one link may send: in all, and in any 24 hours. */
    replyLimit: strict({
      perLink: z.number().int().min(0).default(50),
      perDay: z.number().int().min(0).default(20),
    }).prefault({}),
    /** Reverse proxies (addresses or CIDRs) whose X-Forwarded-For names the client; empty: the socket's peer is the client. */
    trustedProxies: z.array(cidr).default([]),
    /**
     * Requests per client address and per link (or status page) in a window,
     * by the plugin @fastify/rate-limit. pages: /m, /s and /assets; api: open,
     * blobs, reply lists and the status overview; checks: code, verify, forgot,
     * sending a reply and the status page's key, revoke and resend.
     */
    rateLimit: strict({
      enabled: z.boolean().default(true),
      pages: strict({ perAddress: z.number().int().min(1).default(300), perLink: z.number().int().min(1).default(60), window: duration.default(60e3) }).prefault({}),
      api: strict({ perAddress: z.number().int().min(1).default(600), perLink: z.number().int().min(1).default(120), window: duration.default(60e3) }).prefault({}),
      checks: strict({ perAddress: z.number().int().min(1).default(30), perLink: z.number().int().min(1).default(20), window: duration.default(60e3) }).prefault({}),
    }).prefault({}),
  }).prefault({}),
  notification: strict({
    from: z.enum(['no-reply', 'sender']).default('no-reply'),
    noReplyAddress: address.optional(),
    replyTo: z.boolean().default(true),
    dkim: strict({ domain, selector: z.string().min(1), privateKeyFile: z.string().min(1) }).optional(),
    language: strict({
      default: language.default('nl'),
      byDomain: z.record(z.string(), language).default({}),
    }).prefault({}),
  }).prefault({}),
  verification: strict({
    default: verificationMethod.default('email-code'),
    sms: strict({
      driver: z.enum(['log', 'webhook']).default('log'),
      url: z.string().url().optional(),
      tokenFile: z.string().optional(),
    }).prefault({}),
    ttl: strict({
      email: duration.default(15 * 60e3),
      sms: duration.default(10 * 60e3),
      maxAttempts: z.number().int().min(1).default(5),
      lockFor: duration.default(15 * 60e3),
    }).prefault({}),
  }).prefault({}),
  retention: strict({
    messages: duration.default(90 * 86400e3),
    audit: duration.default(6 * 365.25 * 86400e3),
  }).prefault({}),
  /** The audit trail (src/audit): signed chain heads over the hash-chained event table. */
  audit: strict({
    /** Ed25519 private key (PEM, PKCS#8) that signs checkpoints; absent: data.dir/audit-signing.pem, made at the first start (required with store.driver postgres). */
    signingKeyFile: z.string().min(1).optional(),
    /** How often the relay signs the chain head. */
    checkpointInterval: duration.default(10 * 60e3),
  }).prefault({}),
  receipts: strict({
    sender: z.boolean().default(true),
    firstOpen: z.boolean().default(false),
  }).prefault({}),
  /** How jobs are dispatched: `sqlite` (in process) or `bullmq` (Redis carries jobs; PostgreSQL stays the source of truth). */
  queue: strict({
    driver: z.enum(['sqlite', 'bullmq']).default('sqlite'),
    /** redis://host:6379 (rediss:// for TLS): never with a password in it (queue.passwordFile). */
    url: redisUrl.optional(),
    /** A file holding the Redis password (first line; Redis AUTH). */
    passwordFile: z.string().min(1).optional(),
  }).prefault({}),
  metrics: strict({
    /** The operations listener (/healthz, /readyz, /metrics): host:port, or off. Never the public reader port. */
    listen: z.union([z.literal('off'), hostPort]).prefault('off'),
  }).prefault({}),
  log: strict({
    level: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  }).prefault({}),
});

export type ConfigInput = z.input<typeof configSchema>;
export type Config = z.output<typeof configSchema>;
