import type pg from 'pg';
import { ZegelError } from '../../errors.js';
import type { Transactor, Tx } from '../tx.js';
import type { PgPool } from './connect.js';
import { pgStoreError } from './errors.js';

/**
 * The PostgreSQL side of the store's transaction contract (src/store/tx.ts).
 *
 * Each `transaction(work)` takes one pooled connection, runs `BEGIN`, hands
 * `work` a `PgTx` bound to that connection, and `COMMIT`s; a throw from
 * `work` rolls back. The promise resolves only after the server has
 * answered COMMIT, so with `synchronous_commit = on` (the server default)
 * the commit is on disk (and on a synchronous standby, if one is named) by
 * then. The connection goes back to the pool afterwards, or is destroyed
 * when its state is unknown (a lost connection, a failed ROLLBACK).
 *
 * Unlike SQLite's group commit, transactions run side by side, each on its
 * own connection, at READ COMMITTED. The caller's rule stays the same: no
 * I/O inside `work`; here an open transaction holds a connection and its
 * row locks until it ends.
 *
 * A COMMIT whose connection is lost before the answer has an unknown
 * outcome: the transaction may or may not have committed. It is reported as
 * ZEGEL_STORE_UNAVAILABLE like any lost connection, so the caller treats it
 * as not done (SMTP 451; the client sends again). At-least-once: the
 * repositories' writes are idempotent where a retry can meet its own commit.
 */
export class PgTx implements Tx {
  readonly driver = 'postgres' as const;
  readonly #client: pg.PoolClient;
  readonly #pool: PgPool;
  #open = true;

  constructor(client: pg.PoolClient, pool: PgPool) {
    this.#client = client;
    this.#pool = pool;
  }

  close(): void {
    this.#open = false;
  }

  get open(): boolean {
    return this.#open;
  }

  /** One statement inside this transaction; refused once the transaction has ended. */
  async query<R extends pg.QueryResultRow = pg.QueryResultRow>(text: string, params?: unknown[]): Promise<pg.QueryResult<R>> {
    if (!this.#open) throw new ZegelError('ZEGEL_STORE_TX', 'a statement ran outside its transaction');
    try {
      return await this.#client.query<R>(text, params);
    } catch (err) {
      throw this.#pool.failure(err);
    }
  }
}

/** Checks that a handle belongs to PostgreSQL and is still open (a handle kept past its transaction is a bug). */
export function pgTx(tx: Tx): PgTx {
  if (!(tx instanceof PgTx) || !tx.open) throw new ZegelError('ZEGEL_STORE_TX', 'a repository write ran outside its transaction');
  return tx;
}

export class PgTransactor implements Transactor {
  readonly #pool: PgPool;

  constructor(pool: PgPool) {
    this.#pool = pool;
  }

  async transaction<T>(work: (tx: Tx) => Promise<T> | T): Promise<T> {
    const checkout = await this.#pool.checkout();
    const { client } = checkout;
    const tx = new PgTx(client, this.#pool);
    // destroyed rather than pooled when the connection's state is not known to be idle
    let destroy = true;
    try {
      await this.#run(client, 'BEGIN');
      let result: T;
      try {
        result = await work(tx);
      } catch (err) {
        tx.close();
        try {
          await this.#run(client, 'ROLLBACK');
          destroy = false;
        } catch {
          // the connection is lost or confused: it is destroyed below, which ends the transaction
        }
        throw err;
      }
      tx.close();
      const commit = await this.#run(client, 'COMMIT');
      destroy = false;
      // COMMIT of a transaction an earlier statement aborted answers ROLLBACK, without an error
      if (commit.command !== 'COMMIT') throw new ZegelError('ZEGEL_STORE_WRITE', 'the transaction was rolled back: a statement in it failed');
      return result;
    } finally {
      tx.close();
      checkout.release(destroy);
    }
  }

  async #run(client: pg.PoolClient, text: 'BEGIN' | 'COMMIT' | 'ROLLBACK'): Promise<pg.QueryResult> {
    try {
      return await client.query(text);
    } catch (err) {
      const failure = this.#pool.failure(err);
      if (text === 'COMMIT' && failure instanceof ZegelError && (failure.code as string) === 'ZEGEL_STORE_UNAVAILABLE') {
        throw pgStoreError('ZEGEL_STORE_UNAVAILABLE', `${failure.message}; the commit's outcome is unknown`);
      }
      throw failure;
    }
  }
}
