import { systemClock, type Clock } from '../../clock.js';
import { normaliseTarget } from '../../address.js';
import type { Language, VerificationMethod } from '../../vocabulary.js';
import {
  Directory,
  type DirectoryEntry,
  type DirectoryListEntry,
  type DirectoryPatch,
  type ImportResult,
  type PreparedWrite,
  type ResolvedRecipient,
} from '../directory.js';
import type { Public } from '../store.js';
import type { Transactor, Tx } from '../tx.js';
import type { PgPool } from './connect.js';
import { pgTx } from './tx.js';

interface Row {
  target: string;
  method: string | null;
  phone: string | null;
  access_code: string | null;
  language: string | null;
  updated_at: number;
}

const COLUMNS = 'target, method, phone, access_code, language, updated_at';

function toEntry(row: Row): DirectoryEntry {
  const entry: DirectoryEntry = { target: row.target, hasAccessCode: row.access_code !== null, updatedAt: row.updated_at };
  if (row.method !== null) entry.method = row.method as VerificationMethod;
  if (row.phone !== null) entry.phone = row.phone;
  if (row.language !== null) entry.language = row.language as Language;
  return entry;
}

/** The domain part of a target or address (`@d` → `d`, `a@d` → `d`). */
function domainOf(target: string): string {
  return target.slice(target.lastIndexOf('@') + 1);
}

/**
 * The recipient directory on PostgreSQL: the public face of
 * src/store/directory.ts, same validation, same merge, same precedence.
 *
 * Validating, normalising and hashing (argon2id) are the SQLite class's own
 * code, borrowed as they are (`prepare`, `prepareImport` use no database),
 * so both drivers accept and refuse exactly the same input. A merge write is
 * one statement (`INSERT … ON CONFLICT DO UPDATE` keeping each field the
 * patch leaves out), so two nodes writing one target at once each keep the
 * other's fields instead of overwriting them with a stale read.
 */
export class PgDirectory implements Public<Directory> {
  readonly #pool: PgPool;
  readonly #store: Transactor;
  readonly #clock: Clock;

  constructor(pool: PgPool, store: Transactor, clock: Clock = systemClock) {
    this.#pool = pool;
    this.#store = store;
    this.#clock = clock;
  }

  async #rows(sql: string, params: unknown[], tx?: Tx): Promise<Row[]> {
    return (await (tx ? pgTx(tx) : this.#pool).query<Row>(sql, params)).rows;
  }

  /** Merges `patch` into the entry for `target` (creating it if missing); returns the entry as stored. */
  async set(target: string, patch: DirectoryPatch): Promise<DirectoryEntry> {
    const write = await this.prepare(target, patch);
    return this.#store.transaction(async (tx) => (await this.put(tx, write)).entry);
  }

  /** Removes the entry for `target`; false if there was none. */
  async remove(target: string): Promise<boolean> {
    const key = normaliseTarget(target);
    return this.#store.transaction((tx) => this.delete(tx, key));
  }

  /** Applies a CSV import in one transaction; nothing when any row is bad (DirectoryImportError). */
  async importCsv(text: string, source = 'input'): Promise<ImportResult> {
    const writes = await this.prepareImport(text, source);
    return this.#store.transaction((tx) => this.putAll(tx, writes));
  }

  /** Normalises the target, validates the patch and hashes its access code (ZegelError on bad input). */
  prepare(target: string, patch: DirectoryPatch): Promise<PreparedWrite> {
    // touches no database and no private state: the one implementation for both drivers
    return Directory.prototype.prepare.call(this as unknown as Directory, target, patch);
  }

  /** Parses and validates a CSV import and hashes its access codes (DirectoryImportError listing every bad row). */
  prepareImport(text: string, source = 'input'): Promise<PreparedWrite[]> {
    return Directory.prototype.prepareImport.call(this as unknown as Directory, text, source);
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
    return { entry: toEntry(row), created: row.created };
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
    return row ? toEntry(row) : undefined;
  }

  /**
   * Every entry, without codes, each domain's `@domain` entry first and then
   * its addresses; `warnings` names settings that leave a recipient no way in
   * (the same order and words as Directory.list).
   */
  async list(tx?: Tx): Promise<DirectoryListEntry[]> {
    const rows = await this.#rows(`SELECT ${COLUMNS} FROM directory`, [], tx);
    const domains = new Map(rows.filter((r) => r.target.startsWith('@')).map((r) => [r.target, r]));
    // sorted here, not by ORDER BY: the server's collation must not decide the order
    const sortKey = (r: Row) => [domainOf(r.target), r.target.startsWith('@') ? 0 : 1, r.target] as const;
    rows.sort((a, b) => {
      const [domainA, levelA, targetA] = sortKey(a);
      const [domainB, levelB, targetB] = sortKey(b);
      if (domainA !== domainB) return domainA < domainB ? -1 : 1;
      return levelA - levelB || (targetA < targetB ? -1 : targetA > targetB ? 1 : 0);
    });
    return rows.map((row) => {
      const domain = row.target.startsWith('@') ? undefined : domains.get(`@${domainOf(row.target)}`);
      const method = row.method ?? domain?.method ?? null;
      const warnings: string[] = [];
      if (method === 'sms-code' && (row.phone ?? domain?.phone ?? null) === null) {
        warnings.push('sms-code without a phone: each message needs an [sms:+…] subject tag');
      }
      if (method === 'access-code' && (row.access_code ?? domain?.access_code ?? null) === null) {
        warnings.push('access-code without an access code: the recipient cannot open messages');
      }
      return { ...toEntry(row), warnings };
    });
  }

  /**
   * How `address` verifies and reads, field by field: its own entry, then its
   * exact `@domain` entry, then `defaults` (see Directory.resolve). One
   * statement reads both levels.
   */
  async resolve(address: string, defaults: { method: VerificationMethod; language: Language }, tx?: Tx): Promise<ResolvedRecipient> {
    let key = address.trim().toLowerCase();
    try {
      key = normaliseTarget(address);
    } catch {
      // not an address we could store: look it up as given
    }
    const ownKey = key.startsWith('@') ? null : key;
    const domainKey = key.includes('@') ? `@${domainOf(key)}` : null;
    const rows = await this.#rows(`SELECT ${COLUMNS} FROM directory WHERE target = $1 OR target = $2`, [ownKey, domainKey], tx);
    const own = ownKey === null ? undefined : rows.find((r) => r.target === ownKey);
    const domain = domainKey === null ? undefined : rows.find((r) => r.target === domainKey);
    const method = (own?.method ?? domain?.method ?? null) as VerificationMethod | null;
    const phone = own?.phone ?? domain?.phone ?? null;
    const language = (own?.language ?? domain?.language ?? defaults.language) as Language;
    const accessCodeHashes = [own?.access_code, domain?.access_code].filter((h): h is string => typeof h === 'string');
    const resolved: ResolvedRecipient = {
      method: method ?? defaults.method,
      language,
      accessCodeHashes,
      source: own?.method != null ? 'address' : domain?.method != null ? 'domain' : 'default',
    };
    if (phone !== null) resolved.phone = phone;
    return resolved;
  }
}
