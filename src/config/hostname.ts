import dns from 'node:dns';
import os from 'node:os';

/**
 * The default of `smtp.hostname`: this host's fully qualified name when it has
 * one. Next hops that apply Postfix's `reject_non_fqdn_helo_hostname` refuse a
 * dotless EHLO name (504), and Message-IDs of relay-made mail carry the name
 * too, so the short `os.hostname()` is only the last resort.
 *
 * Resolution, as `hostname -f` does it but without network of its own: the
 * kernel's host name when it already has a dot; otherwise the system resolver
 * (nsswitch: /etc/hosts first) gives the name's addresses, and the canonical
 * name of each address (getnameinfo) is taken when it is `<short name>.<domain>`.
 * Bounded by a timeout, so a slow resolver never holds up start for long.
 */
export interface HostnameResolver {
  /** The kernel's host name (os.hostname()). */
  hostname(): string;
  /** Addresses of a name through the system resolver (dns.lookup). */
  lookup(name: string): Promise<string[]>;
  /** The canonical name of an address through the system resolver (dns.lookupService). */
  lookupService(address: string): Promise<string>;
}

export const systemResolver: HostnameResolver = {
  hostname: () => os.hostname(),
  lookup: async (name) => (await dns.promises.lookup(name, { all: true, hints: dns.ADDRCONFIG })).map((a) => a.address),
  lookupService: async (address) => (await dns.promises.lookupService(address, 0)).hostname,
};

/** A name with at least one dot between labels (`mail.example.org`), not a loopback alias. */
export function isFqdn(name: string): boolean {
  const n = name.replace(/\.$/, '').toLowerCase();
  return /^[a-z0-9_-]+(\.[a-z0-9_-]+)+$/.test(n) && !/^localhost(\.|$)/.test(n) && !/^ip6-/.test(n);
}

export interface DefaultHostname {
  name: string;
  /** How it was found: the kernel's name had a dot, the resolver gave the FQDN, or neither (short name). */
  from: 'hostname' | 'resolver' | 'short';
}

/** This host's FQDN, or the short name when none is found within `timeoutMs`. Never rejects. */
export async function defaultHostname(resolver: HostnameResolver = systemResolver, timeoutMs = 2000): Promise<DefaultHostname> {
  const short = resolver.hostname().trim() || 'localhost';
  if (isFqdn(short)) return { name: short.replace(/\.$/, ''), from: 'hostname' };
  const prefix = `${short.toLowerCase()}.`;
  const search = async (): Promise<string | undefined> => {
    const addresses = await resolver.lookup(short).catch(() => [] as string[]);
    for (const address of addresses.slice(0, 8)) {
      const name = (await resolver.lookupService(address).catch(() => '')).replace(/\.$/, '');
      if (isFqdn(name) && name.toLowerCase().startsWith(prefix)) return name;
    }
    return undefined;
  };
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<undefined>((resolve) => {
    timer = setTimeout(() => resolve(undefined), timeoutMs); // not unref'd: start waits for it, at most timeoutMs
  });
  try {
    const found = await Promise.race([search().catch(() => undefined), timeout]);
    return found ? { name: found, from: 'resolver' } : { name: short, from: 'short' };
  } finally {
    clearTimeout(timer);
  }
}
