import type { StorageKey } from '../../crypto/storage-key.js';
import type { SecureRepositories } from '../secure-repositories.js';
import { PgCodeStore } from './codes.js';
import type { PgPool } from './connect.js';
import { PgLinkStore } from './links.js';
import { PgReplyStore } from './replies.js';
import { PgSecureStore } from './secure.js';
import { PgSessionStore } from './sessions.js';

/**
 * Secure delivery's repositories on PostgreSQL (one pool, one storage key):
 * the same faces as SecureRepositories (src/store/secure-repositories.ts).
 */
export type PgSecureRepositories = SecureRepositories;

export function pgSecureRepositories(pool: PgPool, storageKey: StorageKey): PgSecureRepositories {
  const links = new PgLinkStore(pool, storageKey);
  return {
    secure: new PgSecureStore(pool, storageKey, links),
    links,
    sessions: new PgSessionStore(pool),
    codes: new PgCodeStore(pool),
    replies: new PgReplyStore(pool),
  };
}
