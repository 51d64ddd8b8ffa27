import type { Clock } from '../clock.js';
import type { Logger } from '../log.js';
import { Revocations as SecureRevocations, type RevocationDeps } from '../secure/revocation.js';
import type { BlobStore } from './blobs.js';
import type { Db } from './db.js';
import { EventLog } from './events.js';
import { GroupCommitter } from './group-commit.js';
import { secureRepositories, type SecureRepositories } from './secure-repositories.js';
import { shredderFor, type WalShredder } from './shred.js';
import type { Transactor } from './tx.js';

export type { PurgeReport, RevokeActor, RevokeResult, RevokedLink } from '../secure/revocation.js';

/**
 * Revocation, expiry and purge on one SQLite connection: the domain logic of
 * src/secure/revocation.ts wired to this connection's repositories, its
 * transactions (the relay passes its group committer and event log; a process
 * without them, the admin CLI, gets its own) and its WAL shredder (one per
 * connection: src/store/shred.ts).
 */
export class Revocations extends SecureRevocations {
  constructor(deps: {
    db: Db;
    clock: Clock;
    blobs: BlobStore;
    log?: Logger | undefined;
    shredder?: WalShredder | undefined;
    store?: Transactor | undefined;
    events?: EventLog | undefined;
    repos?: SecureRepositories | undefined;
    schedulePurgeRun?: RevocationDeps['schedulePurgeRun'];
  }) {
    super({
      store: deps.store ?? new GroupCommitter(deps.db),
      events: deps.events ?? new EventLog(deps.db, deps.clock),
      repos: deps.repos ?? secureRepositories(deps.db),
      schedulePurgeRun: deps.schedulePurgeRun,
      clock: deps.clock,
      blobs: deps.blobs,
      log: deps.log,
      shredder: deps.shredder ?? shredderFor(deps.db, deps.log),
    });
  }
}
