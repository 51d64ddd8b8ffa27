import net from 'node:net';
import argon2 from 'argon2';
import type { Config } from '../config/schema.js';
import { SmtpReplyError } from '../errors.js';

/** Who may relay through Zegel, and for which senders. */
export class RelayPolicy {
  readonly #allow = new net.BlockList();
  readonly #domains: Set<string>;
  readonly #checkSender: boolean;
  readonly #users: Map<string, string>;

  constructor(config: Pick<Config, 'smtp' | 'organisation'>) {
    for (const entry of config.smtp.allow) {
      const [address, prefix] = entry.split('/') as [string, string | undefined];
      const type = net.isIPv6(address) ? 'ipv6' : 'ipv4';
      if (prefix === undefined) this.#allow.addAddress(address, type);
      else this.#allow.addSubnet(address, Number(prefix), type);
    }
    this.#domains = new Set(config.organisation.domains);
    this.#checkSender = config.smtp.senderDomainCheck && this.#domains.size > 0;
    this.#users = new Map(config.smtp.auth.users.map((u) => [u.username, u.passwordHash]));
  }

  get senderDomainCheck(): boolean {
    return this.#checkSender;
  }

  clientAllowed(ip: string): boolean {
    const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(ip);
    const address = mapped ? mapped[1]! : ip;
    const type = net.isIPv6(address) ? 'ipv6' : 'ipv4';
    return net.isIP(address) !== 0 && this.#allow.check(address, type);
  }

  /** Throws 554 5.7.1 unless the client may relay. */
  assertMayRelay(ip: string, user: unknown): void {
    if (user || this.clientAllowed(ip)) return;
    throw new SmtpReplyError(554, '5.7.1', 'Relay access denied: connect from an allowed network or authenticate');
  }

  /** Throws 550 5.7.1 when the envelope sender is outside the organisation's domains. */
  assertSender(address: string): void {
    if (!this.#checkSender || address === '') return;
    const domain = address.slice(address.lastIndexOf('@') + 1).toLowerCase();
    if (!address.includes('@') || !this.#domains.has(domain)) {
      throw new SmtpReplyError(550, '5.7.1', `Sender address rejected: ${domain || 'no domain'} is not a domain of this organisation`);
    }
  }

  isInternal(address: string): boolean {
    const domain = address.slice(address.lastIndexOf('@') + 1).toLowerCase();
    return this.#domains.has(domain);
  }

  /** Verifies SMTP AUTH credentials against the configured argon2 hashes. */
  async authenticate(username: string, password: string): Promise<boolean> {
    const hash = this.#users.get(username);
    if (!hash) {
      // same work for unknown users, so timing does not tell which names exist
      await argon2.hash(password, { type: argon2.argon2id }).catch(() => undefined);
      return false;
    }
    try {
      return await argon2.verify(hash, password);
    } catch {
      return false;
    }
  }
}

export function hashPassword(password: string): Promise<string> {
  return argon2.hash(password, { type: argon2.argon2id });
}
