import type { Shredder } from '../../secure/revocation.js';

/**
 * Revocation's shredder on PostgreSQL: nothing to do. On SQLite a shred
 * truncates the WAL so no old page image keeps a deleted wrap or K_srv
 * (src/store/shred.ts); PostgreSQL offers no such step to a client: the old
 * row versions stay as dead tuples until VACUUM, and in the WAL and its
 * archive. What revocation promises there, and what an operator does about
 * it, is docs/cluster.md, "What revocation promises on PostgreSQL": every
 * K_srv is sealed under the storage key, so those leftovers open nothing
 * without it.
 */
export const pgShredder: Shredder = {
  shred: () => Promise.resolve(false),
};
