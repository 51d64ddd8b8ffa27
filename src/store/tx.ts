import { ZegelError } from '../errors.js';

/**
 * The store's transaction contract, shared by every repository and every
 * driver (SQLite now, PostgreSQL later).
 *
 * A `Tx` is an opaque handle for one open transaction. Repository methods
 * that write take it as their first argument, so several repositories can
 * change their tables in one commit:
 *
 *     await store.transaction(async (tx) => {
 *       await store.messages.insertReceived(tx, message);
 *       await store.jobs.insert(tx, [job]);
 *     });
 *
 * The promise of `transaction` settles only after the commit is durable.
 * Reads take an optional `tx` to see the transaction's own writes.
 *
 * Rule for callers: no I/O inside `work` (no file, network or timer awaits):
 * on SQLite the write lock is held until `work` settles. Write files before
 * the transaction and remove them after it.
 */
export interface Tx {
  /** Which driver made the handle; a repository refuses a handle of another store. */
  readonly driver: 'sqlite' | 'postgres';
}

export interface Transactor {
  /** Runs `work` in one transaction and resolves after its commit is durable; a throw rolls `work` back alone. */
  transaction<T>(work: (tx: Tx) => Promise<T> | T): Promise<T>;
}

/** The SQLite handle: valid only while the group commit runs the work it was given to. */
export class SqliteTx implements Tx {
  readonly driver = 'sqlite' as const;
  #open = true;

  close(): void {
    this.#open = false;
  }

  get open(): boolean {
    return this.#open;
  }
}

/** Checks that a handle belongs to SQLite and is still open (a handle kept past its transaction is a bug). */
export function sqliteTx(tx: Tx): SqliteTx {
  if (!(tx instanceof SqliteTx) || !tx.open) throw new ZegelError('ZEGEL_STORE_TX', 'a repository write ran outside its transaction');
  return tx;
}
