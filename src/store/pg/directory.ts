import { systemClock, type Clock } from '../../clock.js';
import { normaliseTarget } from '../../address.js';
import type { Language, VerificationMethod } from '../../vocabulary.js';
import {
  DirectoryWrites,
  listEntries,
  resolveFrom,
  resolveKeys,
  toDirectoryEntry,
  type Directory,
  type DirectoryEntry,
  type DirectoryRow as Row,
  type DirectoryListEntry,
  type ImportResult,
  type PreparedWrite,
  type ResolvedRecipient,
} from '../directory.js';
import type { Public } from '../store.js';
import type { Transactor, Tx } from '../tx.js';
import type { PgPool } from './connect.js';
import { pgTx } from './tx.js';

const COLUMNS = 'target, method, phone, access_code, language, updated_at';

/**
 * The recipient directory on PostgreSQL: the public face of
 * src/store/directory.ts, same validation, same merge, same precedence.
 *
 * Validating, normalising and hashing (argon2id), the row → entry mapping,
 * list order and warnings, and resolve precedence are the driver-free
 * functions of src/store/directory.ts, so both drivers accept, refuse and
 * answer exactly alike. A merge write is one statement (`INSERT … ON
 * CONFLICT DO UPDATE` keeping each field the patch leaves out), so two nodes
 * writing one target at once each keep the other's fields instead of
 * overwriting them with a stale read.
 */
export class PgDirectory extends DirectoryWrites implements Public<Directory> {
  readonly #pool: PgPool;
  readonly #clock: Clock;

  constructor(pool: PgPool, store: Transactor, clock: Clock = systemClock) {
    super(store);
    this.#pool = pool;
    this.#clock = clock;
  }

  async #rows(sql: string, params: unknown[], tx?: Tx): Promise<Row[]> {
    return (await (tx ? pgTx(tx) : this.#pool).query<Row>(sql, params)).rows;
  }

  /** One merge write; `created` tells whether the entry is new. */
  async put(tx: Tx, write: PreparedWrite): Promise<{ entry: DirectoryEntry; created: boolean }> {
    const { patch } = write;
    const given = (v: unknown) => v !== undefined;
    const { rows } = await pgTx(tx).query<Row & { created: boolean }>(
      `INSERT INTO directory AS d (target, method, phone, access_code, language, updated_at)
       VALUES ($1, $2, $3, $4, $5, $6)
       ON CONFLICT (target) DO UPDATE SET
         method      = CASE WHEN $7  THEN excluded.method      ELSE d.method      END,
         phone       = CASE WHEN $8  THEN excluded.phone       ELSE d.phone       END,
         access_code = CASE WHEN $9  THEN excluded.access_code ELSE d.access_code END,
         language    = CASE WHEN $10 THEN excluded.language    ELSE d.language    END,
         updated_at  = excluded.updated_at
       RETURNING ${COLUMNS}, (xmax = 0) AS created`,
      [
        write.target,
        patch.method ?? null,
        patch.phone ?? null,
        patch.accessCodeHash ?? null,
        patch.language ?? null,
        this.#clock.now(),
        given(patch.method),
        given(patch.phone),
        given(patch.accessCodeHash),
        given(patch.language),
      ],
    );
    const row = rows[0]!;
    return { entry: toDirectoryEntry(row), created: row.created };
  }

  /** Every write of an import, in order, in the caller's transaction. */
  async putAll(tx: Tx, writes: readonly PreparedWrite[]): Promise<ImportResult> {
    const result: ImportResult = { rows: writes.length, created: 0, updated: 0 };
    for (const write of writes) {
      if ((await this.put(tx, write)).created) result.created++;
      else result.updated++;
    }
    return result;
  }

  /** Removes the entry for `target`; false if there was none. */
  async delete(tx: Tx, target: string): Promise<boolean> {
    const { rowCount } = await pgTx(tx).query('DELETE FROM directory WHERE target = $1', [normaliseTarget(target)]);
    return (rowCount ?? 0) > 0;
  }

  async get(target: string, tx?: Tx): Promise<DirectoryEntry | undefined> {
    const [row] = await this.#rows(`SELECT ${COLUMNS} FROM directory WHERE target = $1`, [normaliseTarget(target)], tx);
    return row ? toDirectoryEntry(row) : undefined;
  }

  /**
   * Every entry, without codes, each domain's `@domain` entry first and then
   * its addresses; `warnings` names settings that leave a recipient no way in
   * (the same order and words as Directory.list).
   */
  async list(tx?: Tx): Promise<DirectoryListEntry[]> {
    // sorted by listEntries, not by ORDER BY: the server's collation must not decide the order
    return listEntries(await this.#rows(`SELECT ${COLUMNS} FROM directory`, [], tx));
  }

  /**
   * How `address` verifies and reads, field by field: its own entry, then its
   * exact `@domain` entry, then `defaults` (see Directory.resolve). One
   * statement reads both levels.
   */
  async resolve(address: string, defaults: { method: VerificationMethod; language: Language }, tx?: Tx): Promise<ResolvedRecipient> {
    const keys = resolveKeys(address);
    const rows = await this.#rows(`SELECT ${COLUMNS} FROM directory WHERE target = $1 OR target = $2`, [keys.own, keys.domain], tx);
    const own = keys.own === null ? undefined : rows.find((r) => r.target === keys.own);
    const domain = keys.domain === null ? undefined : rows.find((r) => r.target === keys.domain);
    return resolveFrom(own, domain, defaults);
  }
}
