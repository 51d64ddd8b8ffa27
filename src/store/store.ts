import type { PeriodicLeader } from '../audit/leader.js';
import type { AuditTrailStore } from '../audit/trail.js';
import type { NewJob, JobQueue } from '../queue/types.js';
import type { Shredder } from '../secure/revocation.js';
import type { Directory } from './directory.js';
import type { EventLog } from './events.js';
import type { IncomingMessage, MessageRepository } from './messages.js';
import type { SecureRepositories } from './secure-repositories.js';
import type { Transactor, Tx } from './tx.js';

/** The public face of a repository class: its methods and fields, none of its private state (a second driver implements this). */
export type Public<T> = { [K in keyof T]: T[K] };

/**
 * The audit trail's writer as components see it: EventLog's face without
 * `appendSync`, the synchronous append only SQLite's own repositories use
 * inside a write (src/store/messages.ts); a network store has no such call.
 */
export type EventRepository = Omit<Public<EventLog>, 'appendSync'>;

/**
 * What the relay's components see of the store: transactions and the
 * repositories, every call async. The embedded default implements it on one
 * SQLite file (src/store/sqlite-backend.ts); a PostgreSQL driver is meant to
 * implement the same interface. Components depend on this type, not on the
 * SQLite class, and none of them holds a database handle.
 */
export interface Store extends Transactor {
  /** The audit trail's one writer (src/store/events.ts). */
  readonly events: EventRepository;
  /** messages, recipients, relay_mail (src/store/messages.ts). */
  readonly messages: Public<MessageRepository>;
  /** The job queue (src/queue/), whose jobs commit with the rows that need them. */
  readonly queue: JobQueue & { insert(tx: Tx, jobs: NewJob[]): Promise<void> };
  /** Secure delivery's tables (src/store/secure-repositories.ts). */
  readonly secure: SecureRepositories;
  /** The recipient directory (src/store/directory.ts). */
  readonly directory: Public<Directory>;
  /** The audit trail as the checkpoint timer and the admin commands reach it: export, verify, sign, purge (src/audit/trail.ts). */
  readonly audit: AuditTrailStore;
  /** What revocation calls after it deleted keys: the WAL truncation of the SQLite connection, nothing on PostgreSQL (src/store/pg/shred.ts). */
  readonly shredder: Shredder;
  /** A leader for periodic work done once per cluster (src/audit/leader.ts): always this node on SQLite, the holder of an advisory lock on PostgreSQL. */
  periodicLeader(): PeriodicLeader;
  /** Durably records an accepted message and its first job; resolves after the commit. */
  intake(message: IncomingMessage, firstJob: NewJob): Promise<void>;
  /** The store answers (readiness). */
  ping(): Promise<boolean>;
  close(): Promise<void>;
}
