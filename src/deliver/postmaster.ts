import type { Config } from '../config/schema.js';

/**
 * The postmaster address for relay-made mail that cannot be delivered
 * (Postfix's double bounce): `delivery.postmaster`, else `postmaster@` the
 * first `organisation.domains` entry. Without either there is nobody to
 * tell by mail: such mail is held for an admin at once (never dropped).
 */
export function postmasterAddress(config: Pick<Config, 'delivery' | 'organisation'>): string | undefined {
  if (config.delivery.postmaster) return config.delivery.postmaster;
  const domain = config.organisation.domains[0];
  return domain ? `postmaster@${domain}` : undefined;
}
