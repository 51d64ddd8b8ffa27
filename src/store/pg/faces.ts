/**
 * Compile-time check that every PostgreSQL repository gives the public face
 * of the SQLite class it stands for, so a later `PgBackend implements Store`
 * composes them without casts. Type-only: nothing here runs, and the
 * emitted module is empty. A face that drifts (a method added, renamed or
 * made synchronous on one side) fails `tsc`.
 *
 * Each class is checked twice: it is assignable to the face, and the
 * public names it has beyond the face are exactly the ones listed (`Extra`),
 * so a difference is stated here and nowhere assumed. The faces differ as
 * follows:
 *
 * - EventLog: Store.events is EventRepository (no `appendSync`). PgEventLog
 *   still has an `appendSync` that throws, because test/helpers/store-drivers.ts
 *   types its events as the whole Public<EventLog>; it also has `appendAll`
 *   (several events in one statement), which SQLite lacks.
 * - AuditTrail: `records` is a synchronous Iterable on SQLite and an
 *   AsyncIterable on PostgreSQL (rows come over the network).
 * - BlobStore: the shared face is BlobRepository (src/store/blobs.ts); the file
 *   class also has `dir`, and its `open` hands a BlobReadStream. The reader
 *   (src/secure/access.ts, src/secure/reply-desk.ts) still takes the file class.
 * - PgSpoolChunks and PgJobs (src/queue/pg-jobs.ts) have no SQLite class of
 *   the same shape to stand for, and are not checked here.
 */
import type { AuditTrail } from '../../audit/trail.js';
import type { BlobRepository, BlobStore } from '../blobs.js';
import type { CodeStore } from '../codes.js';
import type { Directory } from '../directory.js';
import type { EventLog } from '../events.js';
import type { LinkStore } from '../links.js';
import type { MessageRepository } from '../messages.js';
import type { ReplyStore } from '../replies.js';
import type { SecureRepositories } from '../secure-repositories.js';
import type { SecureStore } from '../secure.js';
import type { SessionStore } from '../sessions.js';
import type { EventRepository, Public } from '../store.js';
import type { Transactor } from '../tx.js';
import type { PgAuditTrail } from './audit.js';
import type { PgBlobStore } from './blob-chunks.js';
import type { PgCodeStore } from './codes.js';
import type { PgDirectory } from './directory.js';
import type { PgEventLog } from './events.js';
import type { PgLinkStore } from './links.js';
import type { PgMessageRepository } from './messages.js';
import type { PgReplyStore } from './replies.js';
import type { pgSecureRepositories } from './secure-repositories.js';
import type { PgSecureStore } from './secure.js';
import type { PgSessionStore } from './sessions.js';
import type { PgTransactor } from './tx.js';

/** true when A and B are the same type (not merely assignable). */
type Equal<A, B> = (<T>() => T extends A ? 1 : 2) extends <T>() => T extends B ? 1 : 2 ? true : false;
/** The public names of `Impl` that `Face` does not have. */
type Extra<Impl, Face> = Exclude<keyof Impl, keyof Face>;

/** Checks that `Impl` is assignable to `Face` and has exactly the extra public names `Extras` (never: none). */
type Gives<Impl extends Face, Face, Extras extends PropertyKey = never> = Equal<Extra<Impl, Face>, Extras>;

type Checks = [
  Gives<PgSecureStore, Public<SecureStore>>,
  Gives<PgLinkStore, Public<LinkStore>>,
  Gives<PgSessionStore, Public<SessionStore>>,
  Gives<PgCodeStore, Public<CodeStore>>,
  Gives<PgReplyStore, Public<ReplyStore>>,
  Gives<ReturnType<typeof pgSecureRepositories>, SecureRepositories>,
  Gives<PgMessageRepository, Public<MessageRepository>>,
  Gives<PgDirectory, Public<Directory>>,
  // appendSync throws (see above); appendAll is PostgreSQL's own
  Gives<PgEventLog, EventRepository, 'appendSync' | 'appendAll'>,
  Gives<PgEventLog, Public<EventLog>, 'appendAll'>,
  // records: an AsyncIterable here, an Iterable on SQLite
  Gives<PgAuditTrail, Omit<Public<AuditTrail>, 'records'>, 'records'>,
  Gives<PgBlobStore, BlobRepository>,
  Gives<BlobStore, BlobRepository, 'dir'>,
  Gives<PgTransactor, Transactor>,
];

/** Every check above holds: a failing one makes its entry `false`, and this line fails to compile. */
export const facesHold: Checks extends true[] ? true : never = true;
