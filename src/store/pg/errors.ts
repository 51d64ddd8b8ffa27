import { ZegelError, type ZegelErrorCode } from '../../errors.js';

/**
 * The PostgreSQL store's error codes:
 *
 * - `ZEGEL_STORE_UNAVAILABLE`: the server cannot be reached or refuses this
 *   node (down, restarting, connection lost, login refused, timed out). A
 *   caller answers with a temporary failure (SMTP 451) and tries again later.
 * - `ZEGEL_SCHEMA_NEWER`: the database was migrated by a newer Zegel; this
 *   code does not know its schema and will not touch it.
 * - `ZEGEL_SCHEMA_CHECKSUM`: an applied migration's SQL differs from this
 *   code's migration of the same version: the schema is not the one the
 *   code was written for.
 * - `ZEGEL_SCHEMA_BEHIND`: the schema is older than this code and the
 *   node's login (a member of a group role) may not migrate it: the owner
 *   runs `zegel db migrate` first.
 */
export type PgStoreErrorCode = Extract<ZegelErrorCode, 'ZEGEL_STORE_UNAVAILABLE' | 'ZEGEL_SCHEMA_NEWER' | 'ZEGEL_SCHEMA_CHECKSUM' | 'ZEGEL_SCHEMA_BEHIND'>;

export function pgStoreError(code: PgStoreErrorCode, message: string): ZegelError {
  return new ZegelError(code, message);
}

/** Whether an error is the PostgreSQL store's error with `code`. */
export function isPgStoreError(err: unknown, code: PgStoreErrorCode): err is ZegelError {
  return err instanceof ZegelError && err.code === code;
}
