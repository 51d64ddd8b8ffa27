import type { Clock } from '../clock.js';
import type { Logger } from '../log.js';
import { SqliteQueue } from '../queue/sqlite.js';
import type { JobQueue, NewJob } from '../queue/types.js';
import { openDb, type Db } from './db.js';
import { GroupCommitter } from './group-commit.js';
import { MessageStore, type IncomingMessage } from './messages.js';
import { shredderFor, type WalShredder } from './shred.js';

/**
 * The embedded default: store and queue in one SQLite file, so that taking a
 * message in (its rows, its `received` event and its first job) is one
 * transaction, and concurrent intakes share one fsync (group commit).
 */
export interface Backend {
  store: MessageStore;
  queue: JobQueue;
  /** Durably records an accepted message and its first job; resolves after commit. */
  intake(message: IncomingMessage, firstJob: NewJob): Promise<void>;
  close(): void;
}

export class SqliteBackend implements Backend {
  readonly db: Db;
  readonly committer: GroupCommitter;
  readonly store: MessageStore;
  readonly queue: SqliteQueue;
  /** Truncates the WAL after each shred (revocation.ts uses the same one: one per connection). */
  readonly shredder: WalShredder;

  constructor(dataDir: string, clock: Clock, log: Logger, options: { pollMs?: number } = {}) {
    this.db = openDb(dataDir);
    this.shredder = shredderFor(this.db, log);
    this.committer = new GroupCommitter(this.db);
    this.store = new MessageStore(this.db, this.committer, clock);
    this.queue = new SqliteQueue(this.db, this.committer, clock, log, options);
  }

  async intake(message: IncomingMessage, firstJob: NewJob): Promise<void> {
    await this.committer.write(() => {
      this.store.insertReceivedSync(message);
      this.queue.insertSync([firstJob]);
    });
    this.queue.poke();
  }

  close(): void {
    // stops the poll timer at once (a no-op when the relay drained the queue already)
    void this.queue.close(0);
    this.committer.close();
    this.shredder.close();
    this.db.close();
  }
}
