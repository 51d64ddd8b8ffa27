import type { Clock } from '../clock.js';
import type { Logger } from '../log.js';
import { Revocations, type RevocationDeps, type Shredder } from '../secure/revocation.js';
import type { BlobRepository } from './blobs.js';
import type { Store } from './store.js';

/**
 * Revocation, expiry and purge (src/secure/revocation.ts) on any store:
 * its transactions, its event log and its secure repositories, the blob
 * store the message's ciphertext lives in (files on SQLite, PgBlobStore on
 * PostgreSQL), and the store's shredder (`store.shredder`: the WAL
 * truncation of the SQLite connection, nothing on PostgreSQL: see
 * src/store/pg/shred.ts). `schedulePurgeRun` queues the one-off purge run of
 * a scheduled revocation (the relay passes its job queue).
 */
export function revocationsFor(
  store: Pick<Store, 'transaction' | 'events' | 'secure'>,
  blobs: BlobRepository,
  shredder: Shredder,
  clock: Clock,
  log?: Logger | undefined,
  schedulePurgeRun?: RevocationDeps['schedulePurgeRun'],
): Revocations {
  return new Revocations({ store, events: store.events, repos: store.secure, blobs, shredder, clock, log, schedulePurgeRun });
}
