import type crypto from 'node:crypto';
import { loadSigningKey } from '../audit/checkpoint.js';
import type { Config } from '../config/schema.js';
import { ZegelError } from '../errors.js';
import { loadRelaySecret } from './relay-secret.js';
import { loadStorageKey, type StorageKey } from './storage-key.js';

/** The keys every node of a cluster reads from the same files (docs/architecture.md, "Key schedule"). */
export interface SharedKeys {
  relaySecret: Buffer;
  storageKey: StorageKey;
  signingKey: crypto.KeyObject;
}

/**
 * Reads the three shared key files a PostgreSQL store needs, making none:
 * `data.relayKeyFile` (ZEGEL_RELAY_KEY), `store.keyFile` (ZEGEL_STORAGE_KEY)
 * and `audit.signingKeyFile` (ZEGEL_AUDIT_KEY), each refused when missing or
 * unreadable. The configuration already requires all three to be named
 * (clusterProblems in src/config/validate.ts).
 */
export function loadSharedKeys(config: Config): SharedKeys {
  const { relayKeyFile } = config.data;
  const { keyFile } = config.store;
  const { signingKeyFile } = config.audit;
  if (!relayKeyFile || !keyFile || !signingKeyFile) {
    throw new ZegelError('ZEGEL_CONFIG_INVALID', 'data.relayKeyFile, store.keyFile and audit.signingKeyFile must all be set for the shared keys');
  }
  return {
    relaySecret: loadRelaySecret({ dataDir: config.data.dir, relayKeyFile }),
    storageKey: loadStorageKey(keyFile),
    signingKey: loadSigningKey({ signingKeyFile, dataDir: config.data.dir, create: false }).key,
  };
}
