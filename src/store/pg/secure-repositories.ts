import type { StorageKey } from '../../crypto/storage-key.js';
import type { SecureRepositories } from '../secure-repositories.js';
import { PgCodeStore } from './codes.js';
import type { PgPool } from './connect.js';
import { PgLinkStore, type LinkRepository } from './links.js';
import { PgReplyStore } from './replies.js';
import { PgSecureStore, type SecureMessageRepository } from './secure.js';
import { PgSessionStore } from './sessions.js';

/**
 * Secure delivery's repositories on PostgreSQL (one pool, one storage key).
 * The same as SecureRepositories (src/store/secure-repositories.ts) except
 * SQLite's two synchronous calls, which a network store cannot give:
 * `secure.byQueueId` resolves a promise, `links.insertRows` does not exist.
 */
export interface PgSecureRepositories extends Omit<SecureRepositories, 'secure' | 'links'> {
  secure: SecureMessageRepository;
  links: LinkRepository;
}

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
