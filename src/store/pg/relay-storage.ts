import fs from 'node:fs';
import path from 'node:path';
import { ZegelError } from '../../errors.js';
import type { OpenStorageOptions, RelayStorage } from '../relay-storage.js';
import { PgBackend } from './backend.js';
import { readPasswordFile } from './connect.js';
import { PgSpool } from './pg-spool.js';

/**
 * Connections a node's pool holds beyond its job concurrency: SMTP intakes
 * and reader requests in flight, the reconciler, lease renewals.
 */
const POOL_HEADROOM = 8;

/**
 * The cluster storage: PgBackend (rows, events, jobs through BullMQ), the
 * spool and the blobs as sealed or ciphertext chunks in the same database,
 * so nothing depends on this node's disk once a message is accepted.
 */
export async function openPgStorage(options: OpenStorageOptions): Promise<RelayStorage> {
  const { config, clock, log, role, keys } = options;
  const { url, passwordFile } = config.store;
  if (!url || !keys) throw new ZegelError('ZEGEL_CONFIG_INVALID', 'store.driver postgres needs store.url and the shared key files');
  if (config.queue.driver !== 'bullmq' || !config.queue.url) throw new ZegelError('ZEGEL_CONFIG_INVALID', 'store.driver postgres needs queue.driver bullmq with queue.url');
  const redisPassword = config.queue.passwordFile === undefined ? undefined : await readPasswordFile(config.queue.passwordFile);
  const backend = await PgBackend.open({
    url,
    passwordFile,
    storageKey: keys.storageKey,
    redisUrl: config.queue.url,
    redisPassword,
    clock,
    log,
    applicationName: `zegel-${role}`,
    poolMax: Math.max(10, options.concurrency + POOL_HEADROOM),
  });
  let spool: PgSpool;
  try {
    // this node's scratch: reply uploads, and drafts of relay-made mail composed as a stream
    // (streamed into chunks once stamped); never a message once it is accepted
    fs.mkdirSync(config.data.dir, { recursive: true, mode: 0o700 });
    spool = new PgSpool(backend.pool, keys.storageKey, { draftDir: path.join(config.data.dir, 'drafts') });
    // a crash while a reply was composed leaves its plaintext draft: this node's own folder, nobody else's
    const cleared = await spool.clearDrafts();
    if (cleared) log.info({ removed: cleared }, 'removed reply drafts a crash left behind');
  } catch (err) {
    await backend.close();
    throw err;
  }
  return {
    driver: 'postgres',
    store: backend,
    spool,
    blobs: backend.blobs,
    sharedLimits: backend.rateLimits,
    sqlite: undefined,
    stats: () => ({ ...backend.queue.reconcilerStats, workerRestarts: backend.queue.workerRestarts }),
    close: () => backend.close(),
  };
}
