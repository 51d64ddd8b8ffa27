import { schema } from './001-schema.js';
import { jobDispatch } from './002-job-dispatch.js';
import { eventsGapless } from './003-events-gapless.js';
import { spoolWrittenAt } from './004-spool-written-at.js';
import { rateLimitsUnlogged } from './005-rate-limits-unlogged.js';

/**
 * One PostgreSQL schema migration: TypeScript modules exporting SQL, so tsc
 * puts them in dist/ with the code that needs them. `sql` runs as one
 * simple-protocol query (several statements) inside the migration's own
 * transaction. A released migration is never edited (migrate checks each
 * applied one's checksum); a change is a new file with the next version.
 */
export interface PgMigration {
  version: number;
  /** Short name, recorded with the version (`schema`, `spool-index`, …). */
  name: string;
  sql: string;
}

/** Every migration this code knows, in version order (1, 2, …, no gaps). */
export const PG_MIGRATIONS: readonly PgMigration[] = [schema, jobDispatch, eventsGapless, spoolWrittenAt, rateLimitsUnlogged];
