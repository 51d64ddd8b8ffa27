import argon2 from 'argon2';
import { systemClock, type Clock } from '../clock.js';
import { ZegelError } from '../errors.js';
import { normalisePhone, normaliseTarget } from '../address.js';
import type { Db } from './db.js';
import { sqliteTx, type Transactor, type Tx } from './tx.js';
import { isLanguage, isVerificationMethod, LANGUAGES, VERIFICATION_METHODS, type Language, type VerificationMethod } from '../vocabulary.js';

/**
 * The recipient directory (DESIGN.md, "Contracts → Recipient directory"): per
 * address or per `@domain`, how a recipient proves who they are (method,
 * phone, access code) and which language they read. Every field is optional
 * at each level; `resolve` takes each field from the address entry, else the
 * `@domain` entry, else the defaults. Access codes are stored only as argon2id.
 * Targets and phones are normalised by src/address.ts (re-exported here).
 */

export { normalisePhone, normaliseTarget };

/** Fields `set` changes. Absent (undefined): left as is; `null`: cleared at this level. */
export interface DirectoryPatch {
  method?: VerificationMethod | string | null;
  phone?: string | null;
  /** The plain access code (at least 8 characters); only its argon2id hash is stored. */
  accessCode?: string | null;
  language?: Language | string | null;
}

/** One directory row as callers see it: never the code or its hash. */
export interface DirectoryEntry {
  /** Lower-case address, or `@domain`. */
  target: string;
  method?: VerificationMethod;
  phone?: string;
  language?: Language;
  hasAccessCode: boolean;
  /** Milliseconds since the epoch (the injected clock). */
  updatedAt: number;
}

export interface DirectoryListEntry extends DirectoryEntry {
  /**
   * Settings that leave a recipient without a way in: `sms-code` with no phone
   * at the address or its `@domain` (the phone must then come from an
   * `[sms:+…]` subject tag), `access-code` with no code at either level.
   */
  warnings: string[];
}

export interface ResolvedRecipient {
  method: VerificationMethod;
  phone?: string;
  language: Language;
  /** argon2id hashes that open a message for this address: its own first, then its domain's (shared code). */
  accessCodeHashes: string[];
  /** Where `method` came from. */
  source: 'address' | 'domain' | 'default';
}

export interface ImportResult {
  /** Data rows applied. */
  rows: number;
  created: number;
  updated: number;
}

export interface ImportProblem {
  line: number;
  problem: string;
}

/** A CSV import that applied nothing; `message` holds one `FILE:LINE: problem` line per problem. */
export class DirectoryImportError extends ZegelError {
  readonly problems: ImportProblem[];

  constructor(source: string, problems: ImportProblem[]) {
    super('ZEGEL_DIRECTORY_IMPORT', problems.map((p) => `${source}:${p.line}: ${p.problem}`).join('\n'));
    this.name = 'DirectoryImportError';
    this.problems = problems;
  }
}

/** A `directory` row (both drivers select these columns). */
export interface DirectoryRow {
  target: string;
  method: string | null;
  phone: string | null;
  access_code: string | null;
  language: string | null;
  updated_at: number;
}

/** A validated patch with the code already hashed: what one row write needs. */
interface StoredPatch {
  method?: VerificationMethod | null;
  phone?: string | null;
  accessCodeHash?: string | null;
  language?: Language | null;
}

function checkMethod(value: string): VerificationMethod {
  if (isVerificationMethod(value)) return value;
  throw new ZegelError('ZEGEL_DIRECTORY_VALUE', `method ${JSON.stringify(value)}: expected one of ${VERIFICATION_METHODS.join(', ')}`);
}

function checkLanguage(value: string): Language {
  if (isLanguage(value)) return value;
  throw new ZegelError('ZEGEL_DIRECTORY_VALUE', `language ${JSON.stringify(value)}: expected one of ${LANGUAGES.join(', ')}`);
}

/** Access codes: at least 8 characters, no control characters, no surrounding whitespace. The code itself never appears in the message. */
function checkAccessCode(code: string): string {
  const fail = (why: string) => new ZegelError('ZEGEL_DIRECTORY_ACCESS_CODE', `access code: ${why}`);
  if ([...code].length < 8) throw fail('must be at least 8 characters');
  if (code.length > 1024) throw fail('must be at most 1024 characters');
  if (/[\u0000-\u001f\u007f]/.test(code)) throw fail('must be one line without control characters');
  if (code.trim() !== code) throw fail('must not begin or end with whitespace');
  return code;
}

function hashAccessCode(code: string): Promise<string> {
  return argon2.hash(code, { type: argon2.argon2id });
}

/** Validates a patch (everything but hashing), so a CSV import can find every bad row before it hashes anything. */
function validatePatch(patch: DirectoryPatch): { method?: VerificationMethod | null; phone?: string | null; accessCode?: string | null; language?: Language | null } {
  const out: ReturnType<typeof validatePatch> = {};
  if (patch.method !== undefined) out.method = patch.method === null ? null : checkMethod(patch.method);
  if (patch.phone !== undefined) out.phone = patch.phone === null ? null : normalisePhone(patch.phone);
  if (patch.accessCode !== undefined) out.accessCode = patch.accessCode === null ? null : checkAccessCode(patch.accessCode);
  if (patch.language !== undefined) out.language = patch.language === null ? null : checkLanguage(patch.language);
  return out;
}

async function hashPatch(patch: ReturnType<typeof validatePatch>): Promise<StoredPatch> {
  const { accessCode, ...rest } = patch;
  const stored: StoredPatch = { ...rest };
  if (accessCode !== undefined) stored.accessCodeHash = accessCode === null ? null : await hashAccessCode(accessCode);
  return stored;
}

/** A row as callers see it: never the code or its hash. */
export function toDirectoryEntry(row: DirectoryRow): DirectoryEntry {
  const entry: DirectoryEntry = { target: row.target, hasAccessCode: row.access_code !== null, updatedAt: row.updated_at };
  if (row.method !== null) entry.method = row.method as VerificationMethod;
  if (row.phone !== null) entry.phone = row.phone;
  if (row.language !== null) entry.language = row.language as Language;
  return entry;
}

/** The domain part of a target or address (`@d` → `d`, `a@d` → `d`). */
export function domainOf(target: string): string {
  return target.slice(target.lastIndexOf('@') + 1);
}

/**
 * Checks a code against argon2 hashes (an address's own code, its domain's
 * shared code). Every hash is tried, so the time taken does not tell which
 * one matched; a malformed hash counts as no match.
 */
export async function verifyAccessCode(hashes: readonly string[], code: string): Promise<boolean> {
  let ok = false;
  for (const hash of hashes) {
    try {
      if (await argon2.verify(hash, code)) ok = true;
    } catch {
      // not an argon2 hash: no match
    }
  }
  return ok;
}

/**
 * A validated write with its access code already hashed (argon2 runs before
 * any transaction: no slow work while the write lock is held). Made by
 * `Directory.prepare` / `prepareImport`, applied by `put` / `putAll`.
 */
export interface PreparedWrite {
  /** The normalised target. */
  readonly target: string;
  readonly patch: StoredPatch;
}

/** Normalises the target, validates the patch and hashes its access code (ZegelError on bad input). */
export async function prepareWrite(target: string, patch: DirectoryPatch): Promise<PreparedWrite> {
  const key = normaliseTarget(target);
  return { target: key, patch: await hashPatch(validatePatch(patch)) };
}

/**
 * Parses and validates a CSV import (see `Directory.importCsv`) and hashes
 * its access codes: every bad row is found before anything is hashed or
 * written (DirectoryImportError listing every problem).
 */
export async function prepareImportWrites(text: string, source = 'input'): Promise<PreparedWrite[]> {
  const problems: ImportProblem[] = [];
  let records: CsvRecord[];
  try {
    records = parseCsv(text);
  } catch (err) {
    if (err instanceof CsvSyntaxError) throw new DirectoryImportError(source, [{ line: err.line, problem: err.message }]);
    throw err;
  }
  const header = records.shift();
  if (!header) throw new DirectoryImportError(source, [{ line: 1, problem: `empty file: expected the header ${IMPORT_COLUMNS.join(',')}` }]);
  const columns = header.fields.map((f) => f.value.trim().toLowerCase());
  for (const [i, name] of columns.entries()) {
    if (!(IMPORT_COLUMNS as readonly string[]).includes(name)) problems.push({ line: header.line, problem: `unknown column ${JSON.stringify(header.fields[i]!.value)}: expected ${IMPORT_COLUMNS.join(',')}` });
    else if (columns.indexOf(name) !== i) problems.push({ line: header.line, problem: `column ${name} appears twice` });
  }
  if (!columns.includes('target')) problems.push({ line: header.line, problem: `no target column: expected the header ${IMPORT_COLUMNS.join(',')}` });
  if (problems.length) throw new DirectoryImportError(source, problems);

  const rows: Array<{ line: number; target: string; patch: ReturnType<typeof validatePatch> }> = [];
  const seen = new Map<string, number>();
  for (const record of records) {
    if (record.fields.length === 1 && !record.fields[0]!.quoted && record.fields[0]!.value.trim() === '') continue; // blank line
    if (record.fields.length !== columns.length) {
      problems.push({ line: record.line, problem: `${record.fields.length} cells, expected ${columns.length} (${columns.join(',')})` });
      continue;
    }
    const cell = (name: ImportColumn): string | undefined => {
      const i = columns.indexOf(name);
      const field = i < 0 ? undefined : record.fields[i];
      if (!field) return undefined;
      const value = field.quoted ? field.value : field.value.trim();
      return value === '' ? undefined : value;
    };
    try {
      const rawTarget = cell('target');
      if (rawTarget === undefined) throw new ZegelError('ZEGEL_DIRECTORY_TARGET', 'target is empty');
      const target = normaliseTarget(rawTarget);
      const patch = validatePatch({ method: cell('method'), phone: cell('phone'), accessCode: cell('access_code'), language: cell('language') });
      if (!Object.keys(patch).length) throw new ZegelError('ZEGEL_DIRECTORY_VALUE', `${target}: nothing to set (every cell but target is empty)`);
      const earlier = seen.get(target);
      if (earlier !== undefined) throw new ZegelError('ZEGEL_DIRECTORY_TARGET', `${target} already appears on line ${earlier}`);
      seen.set(target, record.line);
      rows.push({ line: record.line, target, patch });
    } catch (err) {
      if (!(err instanceof ZegelError)) throw err;
      problems.push({ line: record.line, problem: err.message });
    }
  }
  if (problems.length) throw new DirectoryImportError(source, problems);

  // argon2 runs on the thread pool: a few at a time, before the one transaction
  const writes: PreparedWrite[] = new Array(rows.length);
  let next = 0;
  const worker = async () => {
    for (let i = next++; i < rows.length; i = next++) writes[i] = { target: rows[i]!.target, patch: await hashPatch(rows[i]!.patch) };
  };
  await Promise.all(Array.from({ length: Math.min(4, rows.length) }, worker));
  return writes;
}

/**
 * Every entry, without codes, each domain's `@domain` entry first and then
 * its addresses; `warnings` names settings that leave a recipient no way in.
 * Sorted here, not by the database: no server collation decides the order.
 */
export function listEntries(rows: readonly DirectoryRow[]): DirectoryListEntry[] {
  const domains = new Map(rows.filter((r) => r.target.startsWith('@')).map((r) => [r.target, r]));
  const sortKey = (r: DirectoryRow) => [domainOf(r.target), r.target.startsWith('@') ? 0 : 1, r.target] as const;
  const sorted = [...rows].sort((a, b) => {
    const [domainA, levelA, targetA] = sortKey(a);
    const [domainB, levelB, targetB] = sortKey(b);
    if (domainA !== domainB) return domainA < domainB ? -1 : 1;
    return levelA - levelB || (targetA < targetB ? -1 : targetA > targetB ? 1 : 0);
  });
  return sorted.map((row) => {
    const domain = row.target.startsWith('@') ? undefined : domains.get(`@${domainOf(row.target)}`);
    const method = row.method ?? domain?.method ?? null;
    const warnings: string[] = [];
    if (method === 'sms-code' && (row.phone ?? domain?.phone ?? null) === null) {
      warnings.push('sms-code without a phone: each message needs an [sms:+…] subject tag');
    }
    if (method === 'access-code' && (row.access_code ?? domain?.access_code ?? null) === null) {
      warnings.push('access-code without an access code: the recipient cannot open messages');
    }
    return { ...toDirectoryEntry(row), warnings };
  });
}

/**
 * The rows `resolve` reads for `address`: its own (none for a `@domain`) and
 * its exact `@domain` (none for a string without `@`). An address that cannot
 * be normalised is looked up as given, lower-cased.
 */
export function resolveKeys(address: string): { own: string | null; domain: string | null } {
  let key = address.trim().toLowerCase();
  try {
    key = normaliseTarget(address);
  } catch {
    // not an address we could store: look it up as given
  }
  return { own: key.startsWith('@') ? null : key, domain: key.includes('@') ? `@${domainOf(key)}` : null };
}

/** Field by field: the address's own row, then its `@domain` row, then `defaults` (see `Directory.resolve`). */
export function resolveFrom(own: DirectoryRow | undefined, domain: DirectoryRow | undefined, defaults: { method: VerificationMethod; language: Language }): ResolvedRecipient {
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

/**
 * What both directory repositories (this module's SQLite one and
 * src/store/pg/directory.ts) build on their own `put`, `putAll` and
 * `delete`: the driver-free prepare steps and the single-step conveniences
 * the CLI uses (`set`, `importCsv`, `remove`), which validate and hash first,
 * then open one transaction on the store they were given.
 */
export abstract class DirectoryWrites {
  readonly #store: Transactor;

  constructor(store: Transactor) {
    this.#store = store;
  }

  /** One merge write (see `set`); `created` tells whether the entry is new. */
  abstract put(tx: Tx, write: PreparedWrite): Promise<{ entry: DirectoryEntry; created: boolean }>;

  /** Every write of an import, in order, in the caller's transaction. */
  abstract putAll(tx: Tx, writes: readonly PreparedWrite[]): Promise<ImportResult>;

  /** Removes the entry for `target`; false if there was none. */
  abstract delete(tx: Tx, target: string): Promise<boolean>;

  /**
   * Merges `patch` into the entry for `target` (creating it if missing): only
   * the fields given change. Returns the entry as stored.
   */
  async set(target: string, patch: DirectoryPatch): Promise<DirectoryEntry> {
    const write = await this.prepare(target, patch);
    return this.#store.transaction(async (tx) => (await this.put(tx, write)).entry);
  }

  /** Removes the entry for `target`; false if there was none. */
  async remove(target: string): Promise<boolean> {
    const key = normaliseTarget(target);
    return this.#store.transaction((tx) => this.delete(tx, key));
  }

  /**
   * Applies a CSV file (header `target,method,phone,access_code,language`, any
   * order, `target` required; an empty cell leaves that field as is) in one
   * transaction. If any row is bad nothing is applied and a
   * DirectoryImportError lists every problem as `SOURCE:LINE: problem`.
   */
  async importCsv(text: string, source = 'input'): Promise<ImportResult> {
    const writes = await this.prepareImport(text, source);
    return this.#store.transaction((tx) => this.putAll(tx, writes));
  }

  /** Normalises the target, validates the patch and hashes its access code (ZegelError on bad input). */
  prepare(target: string, patch: DirectoryPatch): Promise<PreparedWrite> {
    return prepareWrite(target, patch);
  }

  /**
   * Parses and validates a CSV import (see `importCsv`) and hashes its access
   * codes: every bad row is found before anything is hashed or written.
   */
  prepareImport(text: string, source = 'input'): Promise<PreparedWrite[]> {
    return prepareImportWrites(text, source);
  }
}

/**
 * The `directory` table's repository (src/store/tx.ts): the only module that
 * holds its SQL. Reads are async and take an optional `tx` to see a
 * transaction's own writes. Writes take the caller's transaction first
 * (`put`, `putAll`, `delete`); `set`, `importCsv` and `remove` are the
 * single-step conveniences of DirectoryWrites.
 */
export class Directory extends DirectoryWrites {
  readonly #clock: Clock;
  readonly #select;
  readonly #selectAll;
  readonly #upsert;
  readonly #delete;

  constructor(db: Db, store: Transactor, clock: Clock = systemClock) {
    super(store);
    this.#clock = clock;
    this.#select = db.prepare<[string], DirectoryRow>('SELECT target, method, phone, access_code, language, updated_at FROM directory WHERE target = ?');
    this.#selectAll = db.prepare<[], DirectoryRow>('SELECT target, method, phone, access_code, language, updated_at FROM directory');
    this.#upsert = db.prepare<[DirectoryRow]>(
      `INSERT INTO directory (target, method, phone, access_code, language, updated_at)
       VALUES (@target, @method, @phone, @access_code, @language, @updated_at)
       ON CONFLICT (target) DO UPDATE SET method = excluded.method, phone = excluded.phone,
         access_code = excluded.access_code, language = excluded.language, updated_at = excluded.updated_at`,
    );
    this.#delete = db.prepare<[string]>('DELETE FROM directory WHERE target = ?');
  }

  /** One merge write (see `set`); `created` tells whether the entry is new. */
  async put(tx: Tx, write: PreparedWrite): Promise<{ entry: DirectoryEntry; created: boolean }> {
    sqliteTx(tx);
    return this.#apply(write.target, write.patch);
  }

  /** Every write of an import, in order, in the caller's transaction. */
  async putAll(tx: Tx, writes: readonly PreparedWrite[]): Promise<ImportResult> {
    sqliteTx(tx);
    const result: ImportResult = { rows: writes.length, created: 0, updated: 0 };
    for (const write of writes) {
      if (this.#apply(write.target, write.patch).created) result.created++;
      else result.updated++;
    }
    return result;
  }

  /** Removes the entry for `target`; false if there was none. */
  async delete(tx: Tx, target: string): Promise<boolean> {
    sqliteTx(tx);
    return this.#delete.run(normaliseTarget(target)).changes > 0;
  }

  async get(target: string, _tx?: Tx): Promise<DirectoryEntry | undefined> {
    const row = this.#select.get(normaliseTarget(target));
    return row ? toDirectoryEntry(row) : undefined;
  }

  /**
   * Every entry, without codes, each domain's `@domain` entry first and then
   * its addresses; `warnings` names settings that leave a recipient no way in.
   */
  async list(_tx?: Tx): Promise<DirectoryListEntry[]> {
    return listEntries(this.#selectAll.all());
  }

  /**
   * How `address` verifies and reads, field by field: its own entry, then its
   * exact `@domain` entry (not parent domains), then `defaults`. Addresses are
   * matched case-insensitively. Never throws on an odd address: it then gets
   * whatever the levels it can be matched against say.
   */
  async resolve(address: string, defaults: { method: VerificationMethod; language: Language }, _tx?: Tx): Promise<ResolvedRecipient> {
    const keys = resolveKeys(address);
    const own = keys.own === null ? undefined : this.#select.get(keys.own);
    const domain = keys.domain === null ? undefined : this.#select.get(keys.domain);
    return resolveFrom(own, domain, defaults);
  }

  /** One merge write; runs synchronously inside the caller's transaction. */
  #apply(target: string, patch: StoredPatch): { entry: DirectoryEntry; created: boolean } {
    const existing = this.#select.get(target);
    const row: DirectoryRow = {
      target,
      method: patch.method !== undefined ? patch.method : (existing?.method ?? null),
      phone: patch.phone !== undefined ? patch.phone : (existing?.phone ?? null),
      access_code: patch.accessCodeHash !== undefined ? patch.accessCodeHash : (existing?.access_code ?? null),
      language: patch.language !== undefined ? patch.language : (existing?.language ?? null),
      updated_at: this.#clock.now(),
    };
    this.#upsert.run(row);
    return { entry: toDirectoryEntry(row), created: !existing };
  }
}

export const IMPORT_COLUMNS = ['target', 'method', 'phone', 'access_code', 'language'] as const;
type ImportColumn = (typeof IMPORT_COLUMNS)[number];

export interface CsvField {
  value: string;
  /** The cell was written in double quotes (its value is taken exactly). */
  quoted: boolean;
}

export interface CsvRecord {
  /** 1-based line on which the record starts. */
  line: number;
  fields: CsvField[];
}

export class CsvSyntaxError extends Error {
  readonly line: number;

  constructor(line: number, message: string) {
    super(message);
    this.name = 'CsvSyntaxError';
    this.line = line;
  }
}

/**
 * RFC 4180 CSV: comma-separated, fields optionally in double quotes (`""` is a
 * quote inside them, and they may span lines), records ended by CRLF, LF or
 * CR; a leading UTF-8 BOM is skipped. A quote inside an unquoted field, text
 * after a closing quote or an unterminated quote is a CsvSyntaxError with the
 * line it is on. Blank lines come back as one empty unquoted field.
 */
export function parseCsv(text: string): CsvRecord[] {
  const input = text.charCodeAt(0) === 0xfeff ? text.slice(1) : text;
  const records: CsvRecord[] = [];
  let line = 1;
  let i = 0;
  const n = input.length;
  if (n === 0) return records;
  let record: CsvRecord = { line, fields: [] };
  for (;;) {
    // one field starts at i
    let field: CsvField;
    let j = i;
    while (j < n && (input[j] === ' ' || input[j] === '\t')) j++;
    if (input[j] === '"') {
      i = j; // blanks before an opening quote are not part of the cell
      const startLine = line;
      let value = '';
      i++;
      for (;;) {
        if (i >= n) throw new CsvSyntaxError(startLine, 'unterminated quoted cell (a " opened here is never closed)');
        const c = input[i]!;
        if (c === '"') {
          if (input[i + 1] === '"') {
            value += '"';
            i += 2;
            continue;
          }
          i++;
          break;
        }
        if (c === '\r' || c === '\n') {
          if (c === '\r' && input[i + 1] === '\n') {
            value += '\r';
            i++;
          }
          line++;
        }
        value += input[i];
        i++;
      }
      // only spaces or tabs may follow a closing quote
      while (i < n && (input[i] === ' ' || input[i] === '\t')) i++;
      if (i < n && input[i] !== ',' && input[i] !== '\r' && input[i] !== '\n') {
        throw new CsvSyntaxError(line, `unexpected ${JSON.stringify(input[i])} after a closing quote (write "" for a quote inside a quoted cell)`);
      }
      field = { value, quoted: true };
    } else {
      const start = i;
      while (i < n && input[i] !== ',' && input[i] !== '\r' && input[i] !== '\n') {
        if (input[i] === '"') {
          throw new CsvSyntaxError(line, 'a " inside an unquoted cell: put the whole cell in double quotes and write "" for a quote');
        }
        i++;
      }
      field = { value: input.slice(start, i), quoted: false };
    }
    record.fields.push(field);
    if (i >= n) {
      records.push(record);
      break;
    }
    const c = input[i]!;
    if (c === ',') {
      i++;
      continue;
    }
    // end of record
    i += c === '\r' && input[i + 1] === '\n' ? 2 : 1;
    line++;
    records.push(record);
    if (i >= n) break;
    record = { line, fields: [] };
  }
  return records;
}
