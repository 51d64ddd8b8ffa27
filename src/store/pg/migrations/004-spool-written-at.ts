import type { PgMigration } from './index.js';

/**
 * Version 4: `spool_chunks.written_at`, the server's clock in milliseconds
 * when the chunk was written. The spool's chunks are written before the
 * transaction that records their message (src/store/pg/spool-chunks.ts), so
 * in a cluster another node's start-up sweep must not take a message whose
 * chunks are being written right now for an orphan: the sweep removes only
 * chunks unowned AND older than a grace period. The server's clock, so that
 * nodes with skewed clocks agree. The roles' grants on spool_chunks (001)
 * cover the column; writers never set it.
 */
export const spoolWrittenAt: PgMigration = {
  version: 4,
  name: 'spool-written-at',
  sql: `
ALTER TABLE spool_chunks ADD COLUMN written_at bigint NOT NULL DEFAULT (floor(extract(epoch FROM clock_timestamp()) * 1000))::bigint;
`,
};
