/**
 * TLS policy levels for an outgoing SMTP session, in the spirit of Postfix's
 * `smtp_tls_security_level` / `smtp_tls_policy_maps`:
 *
 * - `may`: STARTTLS when the next hop offers it, unverified; plain text otherwise.
 * - `encrypt`: STARTTLS required (never plain text); the certificate is not checked.
 * - `verify`: STARTTLS required, and the certificate must chain to a trusted CA
 *   (the system CAs, plus `delivery.tls.ca`) and name the host connected to.
 *
 * A session that cannot meet its level is a temporary failure (4.7.x): the
 * message is retried, and finally bounced with a DSN that names the reason.
 * It never falls back to plain text.
 */
export const TLS_LEVELS = ['may', 'encrypt', 'verify'] as const;
export type TlsLevel = (typeof TLS_LEVELS)[number];

const RANK: Record<TlsLevel, number> = { may: 0, encrypt: 1, verify: 2 };

export function atLeast(a: TlsLevel, b: TlsLevel): TlsLevel {
  return RANK[a] >= RANK[b] ? a : b;
}

export function weakerThan(a: TlsLevel, b: TlsLevel): boolean {
  return RANK[a] < RANK[b];
}

/** What kind of mail a session carries: `secrets` for relay-made mail that holds a link key or a code. */
export interface MailKind {
  secrets: boolean;
}

/** The level a session gets and why (for the logs, the events and the start-up warning). */
export interface ResolvedLevel {
  level: TlsLevel;
  /** `policy` (delivery.tls.policies), `default` (delivery.tls.default or the target's default), `secrets` (raised for mail with link keys or codes). */
  source: 'policy' | 'default' | 'secrets';
}

export interface TlsPolicyConfig {
  default?: TlsLevel | undefined;
  policies?: Record<string, TlsLevel> | undefined;
}

/**
 * The TLS policy of one route: a default, per-domain entries, and the floor
 * for mail that carries secrets. The domain a policy is looked up by is the
 * next hop's: the recipient domain for `mx`, the smarthost's host name for a
 * smarthost (as Postfix keys its policy map by next-hop destination).
 *
 * `secretsFloor` is `verify` where mail leaves the organisation's own
 * machines (`mx`, `smtps://`, or a target with AUTH) and `undefined` for a
 * loopback target (the Postfix re-injection). Mail with secrets gets at least
 * the floor, unless `delivery.tls.policies` names the domain with a lower
 * level: the admin's explicit word wins, and the relay warns at start-up
 * (`loweredForSecrets`).
 */
export class TlsPolicy {
  readonly defaultLevel: TlsLevel;
  readonly secretsFloor: TlsLevel | undefined;
  readonly #policies: Map<string, TlsLevel>;

  constructor(config: TlsPolicyConfig, targetDefault: TlsLevel, secretsFloor: TlsLevel | undefined) {
    this.defaultLevel = config.default ?? targetDefault;
    this.secretsFloor = secretsFloor;
    this.#policies = new Map(Object.entries(config.policies ?? {}).map(([domain, level]) => [domain.toLowerCase().replace(/\.$/, ''), level]));
  }

  /** The level for a session to `domain` carrying mail of `kind`. */
  resolve(domain: string, kind: MailKind): ResolvedLevel {
    const explicit = this.#policies.get(domain.toLowerCase().replace(/\.$/, ''));
    if (explicit) return { level: explicit, source: 'policy' };
    if (kind.secrets && this.secretsFloor && weakerThan(this.defaultLevel, this.secretsFloor)) return { level: this.secretsFloor, source: 'secrets' };
    return { level: this.defaultLevel, source: 'default' };
  }

  /** Domains whose explicit policy lowers mail with secrets below the floor (warned about at start-up). */
  loweredForSecrets(): Array<{ domain: string; level: TlsLevel }> {
    const floor = this.secretsFloor;
    if (!floor) return [];
    return [...this.#policies].filter(([, level]) => weakerThan(level, floor)).map(([domain, level]) => ({ domain, level }));
  }
}

/** The host of a `smtp://` or `smtps://` target as policies and certificates name it (`[::1]` → `::1`). */
export function targetHost(url: string): string {
  return new URL(url).hostname.replace(/^\[|\]$/g, '');
}
