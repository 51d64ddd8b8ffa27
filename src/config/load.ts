import fs from 'node:fs';
import path from 'node:path';
import { parseDocument } from 'yaml';
import type { z } from 'zod';
import { ZegelError } from '../errors.js';
import { configSchema, type Config } from './schema.js';
import { clusterProblems, defaultOutboxDir, deliveryProblems, outboxProblems } from './validate.js';
import { defaultHostname, type HostnameResolver } from './hostname.js';

export interface LoadedConfig {
  config: Config;
  /** The file it came from, or undefined for the embedded default. */
  source: string | undefined;
  /** The configuration as written (before defaults), or undefined for the embedded default. */
  input?: unknown;
}

function formatIssue(issue: z.core.$ZodIssue): string {
  const key = issue.path.length ? issue.path.join('.') : '(top level)';
  if (issue.code === 'unrecognized_keys') {
    const keys = issue.keys.map((k) => (issue.path.length ? `${key}.${k}` : k));
    return `${keys.join(', ')}: unknown key${keys.length > 1 ? 's' : ''}`;
  }
  return `${key}: ${issue.message}`;
}

/**
 * Validates a parsed configuration object. Relative paths are resolved against
 * `baseDir` (the config file's folder, or the working directory).
 */
export function parseConfig(input: unknown, baseDir: string = process.cwd(), source = 'configuration'): Config {
  const result = configSchema.safeParse(input ?? {});
  if (!result.success) {
    const problems = result.error.issues.map(formatIssue);
    throw new ZegelError('ZEGEL_CONFIG_INVALID', `${source} is invalid:\n  ${problems.join('\n  ')}`);
  }
  const config = result.data;
  const resolve = (p: string) => path.resolve(baseDir, p);
  config.data.dir = resolve(config.data.dir);
  if (config.data.relayKeyFile) config.data.relayKeyFile = resolve(config.data.relayKeyFile);
  if (config.store.passwordFile) config.store.passwordFile = resolve(config.store.passwordFile);
  if (config.store.keyFile) config.store.keyFile = resolve(config.store.keyFile);
  if (config.queue.passwordFile) config.queue.passwordFile = resolve(config.queue.passwordFile);
  if (config.audit.signingKeyFile) config.audit.signingKeyFile = resolve(config.audit.signingKeyFile);
  config.delivery.outboxDir = config.delivery.outboxDir ? resolve(config.delivery.outboxDir) : defaultOutboxDir(config.data.dir);
  if (config.rules.dir) config.rules.dir = resolve(config.rules.dir);
  if (config.delivery.auth) config.delivery.auth.passwordFile = resolve(config.delivery.auth.passwordFile);
  if (config.delivery.tls.ca) config.delivery.tls.ca = resolve(config.delivery.tls.ca);
  if (config.delivery.mx.mtaSts.ca) config.delivery.mx.mtaSts.ca = resolve(config.delivery.mx.mtaSts.ca);
  if (config.smtp.tls) config.smtp.tls = { key: resolve(config.smtp.tls.key), cert: resolve(config.smtp.tls.cert) };
  if (config.notification.dkim) config.notification.dkim.privateKeyFile = resolve(config.notification.dkim.privateKeyFile);
  if (config.verification.sms.tokenFile) config.verification.sms.tokenFile = resolve(config.verification.sms.tokenFile);
  // defaults that depend on other keys (DESIGN.md, "Configuration")
  config.delivery.internalTarget ??= config.delivery.target;
  if (!config.notification.noReplyAddress && config.organisation.domains[0]) {
    config.notification.noReplyAddress = `no-reply@${config.organisation.domains[0]}`;
  }
  const problems = crossChecks(config);
  if (problems.length) {
    throw new ZegelError('ZEGEL_CONFIG_INVALID', `${source} is invalid:\n  ${problems.join('\n  ')}`);
  }
  return config;
}

/** Rules that span several keys. */
function crossChecks(config: Config): string[] {
  const problems: string[] = [...outboxProblems(config), ...clusterProblems(config), ...deliveryProblems(config)];
  if (config.smtp.auth.users.length && !config.smtp.tls) {
    problems.push('smtp.auth.users: SMTP AUTH is only offered after STARTTLS, so smtp.tls.key and smtp.tls.cert are required');
  }
  if (config.smtp.requireTLS && !config.smtp.tls) {
    problems.push('smtp.requireTLS: needs smtp.tls.key and smtp.tls.cert');
  }
  return problems;
}

export function loadConfigFile(file: string): LoadedConfig {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    throw new ZegelError('ZEGEL_CONFIG_UNREADABLE', `cannot read configuration ${file}: ${(err as Error).message}`, { cause: err });
  }
  const doc = parseDocument(text, { prettyErrors: true, uniqueKeys: true });
  if (doc.errors.length) {
    const first = doc.errors[0]!;
    throw new ZegelError('ZEGEL_CONFIG_INVALID', `${file} is not valid YAML: ${first.message}`);
  }
  const input: unknown = doc.toJS();
  const config = parseConfig(input, path.dirname(path.resolve(file)), file);
  return { config, source: path.resolve(file), input };
}

/** The embedded default: loopback listener, outbox delivery into ./outbox, ./data. */
export function defaultConfig(): LoadedConfig {
  return { config: parseConfig({}, process.cwd(), 'embedded default'), source: undefined };
}

/**
 * Fills in `smtp.hostname` when the configuration leaves it out: this host's
 * fully qualified name, or its short name when it has none (hostname.ts). For
 * `zegel start`, `check-config` and SIGHUP, so the greeting, EHLO to next hops
 * and Message-IDs all carry the name check-config shows.
 */
export async function completeHostname(loaded: LoadedConfig, resolver?: HostnameResolver): Promise<LoadedConfig> {
  if (loaded.config.smtp.hostname === undefined) loaded.config.smtp.hostname = (await defaultHostname(resolver)).name;
  return loaded;
}
