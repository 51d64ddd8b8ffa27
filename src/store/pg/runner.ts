import type pg from 'pg';
import type { Tx } from '../tx.js';
import type { PgPool } from './connect.js';
import { pgTx } from './tx.js';

/** Something that runs one statement: the pool (its own short transaction) or the caller's transaction. */
export interface PgRunner {
  query<R extends pg.QueryResultRow = pg.QueryResultRow>(text: string, params?: unknown[]): Promise<pg.QueryResult<R>>;
}

/**
 * Where a repository read runs: inside the caller's transaction when it
 * passes one (to see its own writes), on the pool otherwise.
 */
export function reader(pool: PgPool, tx: Tx | undefined): PgRunner {
  return tx === undefined ? pool : pgTx(tx);
}
