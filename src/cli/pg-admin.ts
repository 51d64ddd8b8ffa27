import type { Clock } from '../clock.js';
import { loadStorageKey } from '../crypto/storage-key.js';
import { ZegelError } from '../errors.js';
import type { Logger } from '../log.js';
import { PgBackend } from '../store/pg/backend.js';
import { openPgPool } from '../store/pg/connect.js';
import { hasSchema } from '../store/pg/migrate.js';
import { PgSpoolChunks } from '../store/pg/spool-chunks.js';
import { adminStoreOver, type AdminData, type AdminStore } from './context.js';

/** Connections a command uses at most: it runs one thing at a time. */
const POOL_MAX = 2;

/**
 * The admin commands' store with `store.driver: postgres`: the cluster's
 * database as a PgBackend (the repositories every node uses), the storage
 * key from `store.keyFile` (K_srv is sealed under it), and the spool and
 * blobs in their PostgreSQL tables. Commands connect as the configured user;
 * as on SQLite, they are meant to run as the schema's owner
 * (docs/cluster.md, "Roles and grants").
 *
 * No schema is made by accident: a database without Zegel's schema is
 * refused (ZEGEL_NO_DATABASE) unless the command opens with `create`
 * (`recipients set|import`: filling the directory before the first node
 * starts), and then it is migrated under the migration lock as a node's
 * start would. A schema older than this Zegel is migrated likewise.
 *
 * A command runs no workers and starts no reconciler (its queue is closed
 * at once; inserts still work): a job it makes due (`queue retry`, a
 * scheduled purge) is handed to BullMQ by the running nodes' reconciler,
 * within its interval (5 s, plus 2 s grace). Redis is never contacted.
 */
export async function openPgAdminStore(data: AdminData, options: { create?: boolean | undefined; clock: Clock; log: Logger }): Promise<AdminStore> {
  const { config } = data;
  const { store, queue } = config;
  const source = data.source ?? 'embedded default';
  if (!store.url) throw new ZegelError('ZEGEL_CONFIG_INVALID', `${source}: store.url is required with store.driver postgres`);
  if (!store.keyFile) throw new ZegelError('ZEGEL_CONFIG_INVALID', `${source}: store.keyFile is required with store.driver postgres`);
  // the configuration requires queue.driver bullmq and its url with postgres (src/config/validate.ts)
  if (!queue.url) throw new ZegelError('ZEGEL_CONFIG_INVALID', `${source}: queue.url is required with store.driver postgres`);
  const storageKey = loadStorageKey(store.keyFile);
  if (!options.create) await assertSchema(store.url, store.passwordFile, source);
  const backend = await PgBackend.open({
    url: store.url,
    passwordFile: store.passwordFile,
    storageKey,
    redisUrl: queue.url,
    clock: options.clock,
    log: options.log,
    applicationName: 'zegel-admin',
    poolMax: POOL_MAX,
  });
  // no workers, no reconciler: the nodes' reconciler carries what a command queues
  await backend.queue.close(0);
  return adminStoreOver(data, backend, {
    clock: options.clock,
    log: options.log,
    blobs: backend.blobs,
    // the spool's chunks (what PgSpool.remove removes; a PgSpool would make a drafts directory in data.dir)
    spool: new PgSpoolChunks(backend.pool, storageKey),
    // nothing to truncate on PostgreSQL (src/store/pg/shred.ts)
    shredPending: () => false,
  });
}

/** Refuses a database no Zegel has migrated (the analogue of SQLite's missing zegel.db). */
async function assertSchema(url: string, passwordFile: string | undefined, source: string): Promise<void> {
  const pool = await openPgPool({ url, passwordFile, applicationName: 'zegel-admin', max: 1 });
  try {
    if (!(await hasSchema(pool))) {
      throw new ZegelError('ZEGEL_NO_DATABASE', `no Zegel schema in PostgreSQL ${pool.where} (store.url of ${source}): no node has started on it and zegel db migrate has not run, so there is nothing to read or change`);
    }
  } finally {
    await pool.close();
  }
}
