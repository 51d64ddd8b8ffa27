import { soleLeader, type PeriodicLeader } from '../audit/leader.js';
import { AuditTrail } from '../audit/trail.js';
import type { Clock } from '../clock.js';
import type { Logger } from '../log.js';
import { SqliteQueue } from '../queue/sqlite.js';
import type { NewJob } from '../queue/types.js';
import { openDb, type Db } from './db.js';
import { Directory } from './directory.js';
import { EventLog } from './events.js';
import { GroupCommitter } from './group-commit.js';
import { MessageRepository, type IncomingMessage } from './messages.js';
import { secureRepositories, type SecureRepositories } from './secure-repositories.js';
import { shredderFor, type WalShredder } from './shred.js';
import type { Store } from './store.js';
import type { Tx } from './tx.js';

/**
 * The embedded default: the repositories and the job queue on one SQLite
 * file, so that taking a message in (its rows, its `received` event and its
 * first job) is one transaction, and concurrent transactions share one fsync
 * (group commit). The repositories' interface is async and transactional
 * (src/store/tx.ts), so a PostgreSQL driver can satisfy the same calls.
 */
export class SqliteBackend implements Store {
  readonly db: Db;
  readonly committer: GroupCommitter;
  /** The one writer of the audit trail (src/store/events.ts). */
  readonly events: EventLog;
  readonly messages: MessageRepository;
  /** secure_messages, secure_links, reader_sessions, one_time_codes, secure_replies (src/store/secure-repositories.ts). */
  readonly secure: SecureRepositories;
  /** The recipient directory (src/store/directory.ts). */
  readonly directory: Directory;
  readonly queue: SqliteQueue;
  /** Truncates the WAL after each shred (revocation.ts uses the same one: one per connection). */
  readonly shredder: WalShredder;
  /** Export, verify, checkpoint and purge of the audit trail, in this connection's transactions. */
  readonly audit: AuditTrail;

  constructor(dataDir: string, clock: Clock, log: Logger, options: { pollMs?: number } = {}) {
    this.db = openDb(dataDir);
    this.shredder = shredderFor(this.db, log);
    this.committer = new GroupCommitter(this.db);
    this.events = new EventLog(this.db, clock);
    this.messages = new MessageRepository(this.db, this.events, clock);
    this.secure = secureRepositories(this.db);
    this.directory = new Directory(this.db, this.committer, clock);
    this.queue = new SqliteQueue(this.db, this.committer, clock, log, options);
    this.audit = new AuditTrail(this.db, this.committer, this.events);
  }

  /** One relay owns a SQLite data directory: it always leads. */
  periodicLeader(): PeriodicLeader {
    return soleLeader;
  }

  transaction<T>(work: (tx: Tx) => Promise<T> | T): Promise<T> {
    return this.committer.transaction(work);
  }

  /** Durably records an accepted message and its first job; resolves after commit. */
  async intake(message: IncomingMessage, firstJob: NewJob): Promise<void> {
    await this.transaction(async (tx) => {
      await this.messages.insertReceived(tx, message);
      await this.queue.insert(tx, [firstJob]);
    });
    this.queue.poke(firstJob.kind);
  }

  /** The database answers (readiness). */
  async ping(): Promise<boolean> {
    // a failed WAL flush refuses every write until a restart (group-commit.ts)
    return this.db.open && !this.committer.failed && this.db.prepare('SELECT 1').get() !== undefined;
  }

  async close(): Promise<void> {
    // stops the poll timer at once (a no-op when the relay drained the queue already)
    void this.queue.close(0);
    await this.committer.close();
    this.shredder.close();
    this.db.close();
  }
}
/** What components depend on: the store interface (src/store/store.ts). */
export type Backend = Store;
