import pg from 'pg';
import t, { type Test } from 'tap';
import { chainHash, GENESIS_HASH } from '../src/audit/chain.js';
import { openDb } from '../src/store/db.js';
import { openPgPool, type PgPool } from '../src/store/pg/connect.js';
import { isPgStoreError } from '../src/store/pg/errors.js';
import { MIGRATION_LOCK, migrate, migrationChecksum } from '../src/store/pg/migrate.js';
import { PG_MIGRATIONS, type PgMigration } from '../src/store/pg/migrations/index.js';
import { startPostgres } from './helpers/pg-server.js';
import { tempDir, waitFor } from './helpers/relay.js';

/**
 * The PostgreSQL schema and its migrator, on a real server (one per file):
 * migration 001 holds every table, column and index of the SQLite schema
 * plus the cluster's own; migrating is versioned, once, under a lock, and
 * refuses a schema it does not know; the audit trail is append-only and its
 * hash chain is the one src/audit/chain.ts verifies, also with writers on
 * several connections at once; the reader role cannot read the spool.
 */
const server = await startPostgres();
t.teardown(() => server.cleanup());
t.comment(`initdb ${server.startupMs.initdb} ms, start ${server.startupMs.start} ms`);

let databases = 0;
async function freshDatabase(t: Test): Promise<{ url: string; name: string }> {
  const name = `migrations_${++databases}`;
  return { url: await server.createDatabase(name), name };
}

async function poolFor(t: Test, url: string, user?: { name: string; passwordFile: string }): Promise<PgPool> {
  const pool = await openPgPool({
    url: user ? url.replace('postgres://postgres@', `postgres://${user.name}@`) : url,
    passwordFile: user?.passwordFile ?? server.passwordFile,
    applicationName: 'zegel-test',
  });
  t.teardown(() => pool.close());
  return pool;
}

async function rejection(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise;
  } catch (err) {
    return err;
  }
  throw new Error('expected a rejection');
}

t.test('a fresh database gets every table, column and index of the SQLite schema, and the cluster tables', async (t) => {
  const { url } = await freshDatabase(t);
  const pool = await poolFor(t, url);
  const result = await migrate(pool);
  t.same(result, { applied: PG_MIGRATIONS.map((m) => ({ version: m.version, name: m.name })), version: PG_MIGRATIONS.length });

  const sqlite = openDb(tempDir(t, 'zegel-pg-schema-'));
  t.teardown(() => sqlite.close());
  const sqliteTables = (sqlite.prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name").all() as Array<{ name: string }>).map((r) => r.name);
  t.ok(sqliteTables.length >= 12, `SQLite has ${sqliteTables.length} tables`);
  const pgColumns = new Map<string, string[]>();
  for (const row of (await pool.query<{ table_name: string; column_name: string }>("SELECT table_name, column_name FROM information_schema.columns WHERE table_schema = 'public' ORDER BY table_name, ordinal_position")).rows) {
    pgColumns.set(row.table_name, [...(pgColumns.get(row.table_name) ?? []), row.column_name]);
  }
  // columns only a cluster needs: the BullMQ driver's lease and dispatch state (002-job-dispatch.ts)
  const clusterOnly: Record<string, string[]> = { jobs: ['dispatch', 'lease_owner', 'lease_until'] };
  for (const table of sqliteTables) {
    const columns = (sqlite.prepare(`SELECT name FROM pragma_table_info(?)`).all(table) as Array<{ name: string }>).map((r) => r.name);
    const extra = clusterOnly[table] ?? [];
    t.same([...(pgColumns.get(table) ?? [])].filter((c) => !extra.includes(c)).sort(), [...columns].sort(), `${table}: the same columns`);
    for (const c of extra) t.ok(pgColumns.get(table)?.includes(c), `${table}.${c}: the cluster's own column`);
  }
  for (const table of ['spool_chunks', 'blobs', 'blob_chunks', 'rate_limits', 'zegel_schema_migrations']) t.ok(pgColumns.has(table), `${table} exists`);

  const sqliteIndexes = (sqlite.prepare("SELECT name FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL ORDER BY name").all() as Array<{ name: string }>).map((r) => r.name);
  const pgIndexes = new Set((await pool.query<{ indexname: string }>("SELECT indexname FROM pg_indexes WHERE schemaname = 'public'")).rows.map((r) => r.indexname));
  t.same(sqliteIndexes.filter((name) => !pgIndexes.has(name)), [], `every SQLite index (${sqliteIndexes.length}) exists by name`);

  const recorded = (await pool.query<{ version: number; name: string; checksum: string }>('SELECT version, name, checksum FROM zegel_schema_migrations ORDER BY version')).rows;
  t.same(recorded, PG_MIGRATIONS.map((m) => ({ version: m.version, name: m.name, checksum: migrationChecksum(m) })), 'each version recorded with its checksum');
  const roles = (await pool.query<{ rolname: string; rolcanlogin: boolean }>("SELECT rolname, rolcanlogin FROM pg_roles WHERE rolname LIKE 'zegel\\_%' ORDER BY rolname")).rows;
  t.same(roles, [
    { rolname: 'zegel_reader', rolcanlogin: false },
    { rolname: 'zegel_smtp', rolcanlogin: false },
    { rolname: 'zegel_worker', rolcanlogin: false },
  ]);

  const again = await migrate(pool);
  t.same(again, { applied: [], version: PG_MIGRATIONS.length }, 'a second run applies nothing');
  t.equal((await pool.query('SELECT 1 FROM zegel_schema_migrations')).rowCount, PG_MIGRATIONS.length, 'and records nothing');
});

t.test('two migrators started at once both succeed, and each version is applied once', async (t) => {
  const { url } = await freshDatabase(t);
  const [a, b, holder] = [await poolFor(t, url), await poolFor(t, url), await poolFor(t, url)];
  // a third session holds the lock until both migrators wait for it, so they contend for certain
  const held = await holder.checkout();
  t.teardown(() => held.release(true));
  await held.client.query('SELECT pg_advisory_lock($1, $2)', [...MIGRATION_LOCK]);
  const both = Promise.all([migrate(a), migrate(b)]);
  await waitFor(
    async () => Number((await holder.query("SELECT count(*) AS n FROM pg_locks WHERE locktype = 'advisory' AND NOT granted")).rows[0]!.n) === 2,
    10_000,
    'both migrators to wait for the lock',
  );
  await held.client.query('SELECT pg_advisory_unlock($1, $2)', [...MIGRATION_LOCK]);
  const [first, second] = await both;
  t.same([...first.applied, ...second.applied].map((m) => m.version), PG_MIGRATIONS.map((m) => m.version), 'every version applied by one of them, none twice');
  t.equal(first.version, PG_MIGRATIONS.length);
  t.equal(second.version, PG_MIGRATIONS.length);
  t.equal((await a.query('SELECT 1 FROM zegel_schema_migrations')).rowCount, PG_MIGRATIONS.length);
});

t.test('a database at a newer version than this code knows is refused, untouched', async (t) => {
  const { url } = await freshDatabase(t);
  const pool = await poolFor(t, url);
  await migrate(pool);
  const next = PG_MIGRATIONS.length + 1;
  await pool.query("INSERT INTO zegel_schema_migrations (version, name, checksum) VALUES ($1, 'from-the-future', 'x')", [next]);
  const err = await rejection(migrate(pool));
  t.ok(isPgStoreError(err, 'ZEGEL_SCHEMA_NEWER'), `refused: ${(err as Error).message}`);
  t.match((err as Error).message, `version ${next}`);
  // the same when the newer one is not the last this code would apply
  const err2 = await rejection(migrate(pool, { migrations: [...PG_MIGRATIONS, { version: next, name: 'mine', sql: 'CREATE TABLE must_not_exist (a int)' }, { version: next + 1, name: 'more', sql: 'SELECT 1' }] }));
  t.ok(isPgStoreError(err2, 'ZEGEL_SCHEMA_CHECKSUM'), 'a different migration under that number is refused too');
  t.equal((await pool.query("SELECT to_regclass('must_not_exist') AS t")).rows[0]!.t, null, 'nothing applied');
});

t.test('an applied migration whose SQL changed is refused before anything else is applied', async (t) => {
  const { url } = await freshDatabase(t);
  const pool = await poolFor(t, url);
  await migrate(pool);
  const [first, ...rest] = PG_MIGRATIONS as [PgMigration, ...PgMigration[]];
  const edited: PgMigration[] = [{ ...first, sql: `${first.sql}\n-- edited after release\n` }, ...rest, { version: PG_MIGRATIONS.length + 1, name: 'next', sql: 'CREATE TABLE must_not_exist (a int)' }];
  const err = await rejection(migrate(pool, { migrations: edited }));
  t.ok(isPgStoreError(err, 'ZEGEL_SCHEMA_CHECKSUM'), `refused: ${(err as Error).message}`);
  t.equal((await pool.query("SELECT to_regclass('must_not_exist') AS t")).rows[0]!.t, null, 'the pending migration was not applied');
});

t.test('a migration that fails leaves neither its changes nor its record', async (t) => {
  const { url } = await freshDatabase(t);
  const pool = await poolFor(t, url);
  await migrate(pool);
  const next = PG_MIGRATIONS.length + 1;
  const broken = [...PG_MIGRATIONS, { version: next, name: 'broken', sql: 'CREATE TABLE half_done (a int); SELECT no_such_function();' }];
  const err = await rejection(migrate(pool, { migrations: broken }));
  t.match((err as Error).message, `migration ${next}-broken failed`);
  t.equal((await pool.query("SELECT to_regclass('half_done') AS t")).rows[0]!.t, null, 'its first statement was rolled back');
  t.equal((await pool.query('SELECT 1 FROM zegel_schema_migrations WHERE version = $1', [next])).rowCount, 0, 'not recorded');
  t.same((await migrate(pool)).applied, [], 'the known schema is still current');
});

t.test('the events table is append-only, and its chain is the one src/audit/chain.ts verifies', async (t) => {
  const { url } = await freshDatabase(t);
  const pool = await poolFor(t, url);
  await migrate(pool);
  const insert = 'INSERT INTO events (at, message_id, recipient, type, detail) VALUES ($1, $2, $3, $4, $5)';
  await pool.query(insert, [1_700_000_000_000, 'q1', 'a@example.nl', 'received', JSON.stringify({ size: 10 })]);
  await pool.query(insert, [1_700_000_000_001, null, null, 'note', 'tab\there, quote " backslash \\ newline\n bell \u0007 é 𝄞 \u2028 </script>']);
  // several rows of one statement link in order too
  await pool.query(`INSERT INTO events (at, message_id, recipient, type, detail, seq, hash) VALUES
    (3, 'q2', NULL, 'a', '{}', 999, 'forged'), (4, 'q2', NULL, 'b', '{}', 999, 'forged')`);
  // concurrent writers on their own connections cannot fork the chain
  const writers = await Promise.all([poolFor(t, url), poolFor(t, url), poolFor(t, url)]);
  await Promise.all(
    Array.from({ length: 30 }, (_, i) =>
      (async () => {
        const checkout = await writers[i % writers.length]!.checkout();
        try {
          await checkout.client.query('BEGIN');
          await checkout.client.query(insert, [10 + i, `c${i}`, null, 'concurrent', '{}']);
          await checkout.client.query(insert, [10 + i, `c${i}`, null, 'concurrent-2', '{}']);
          await checkout.client.query(i % 7 === 0 ? 'ROLLBACK' : 'COMMIT');
        } finally {
          checkout.release();
        }
      })(),
    ),
  );
  const rows = (await pool.query<{ seq: number; at: number; message_id: string | null; recipient: string | null; type: string; detail: string; prev_hash: string; hash: string }>(
    'SELECT * FROM events ORDER BY seq',
  )).rows;
  t.equal(rows.length, 4 + 2 * 30 - 2 * 5, 'every committed event, none of the rolled-back ones');
  let prev = GENESIS_HASH;
  const broken: number[] = [];
  for (const row of rows) {
    if (row.prev_hash !== prev || row.hash !== chainHash(prev, row)) broken.push(row.seq);
    prev = row.hash;
  }
  t.same(broken, [], 'each record links to the one before it and hashes as chainHash does');
  t.not(rows[2]!.hash, 'forged');
  t.ok(rows.every((r, i) => i === 0 || r.seq > rows[i - 1]!.seq) && !rows.some((r) => r.seq === 999), 'seq comes from the chain, not the writer');

  for (const [what, sql] of [
    ['UPDATE', "UPDATE events SET detail = '{}' WHERE seq = (SELECT min(seq) FROM events)"],
    ['UPDATE of the hashes', "UPDATE events SET hash = 'x', prev_hash = 'y'"],
    ['DELETE', 'DELETE FROM events WHERE seq = (SELECT max(seq) FROM events)'],
    ['TRUNCATE', 'TRUNCATE events'],
    ['DELETE of a checkpoint', 'DELETE FROM audit_checkpoints'],
  ] as const) {
    if (what === 'DELETE of a checkpoint') await pool.query("INSERT INTO audit_checkpoints (seq, hash, at, key_id, signature) VALUES (1, 'h', 1, 'k', 's')");
    const err = await rejection(pool.query(sql));
    t.match((err as Error).message, /append-only/, `${what} refused`);
  }
  t.equal((await pool.query('SELECT 1 FROM events')).rowCount, rows.length, 'every event is still there');

  // the retention cut: the anchor moves first, then exactly the records up to it may go
  const cut = rows[1]!;
  const tx = await pool.checkout();
  try {
    await tx.client.query('BEGIN');
    await tx.client.query('INSERT INTO audit_anchor (id, seq, hash, at) VALUES (1, $1, $2, 5)', [cut.seq, cut.hash]);
    await tx.client.query('DELETE FROM events WHERE seq <= $1', [cut.seq]);
    await tx.client.query(insert, [6, null, null, 'audit-purged', '{}']);
    await tx.client.query('COMMIT');
  } finally {
    tx.release();
  }
  const after = (await pool.query<{ seq: number; prev_hash: string }>('SELECT seq, prev_hash FROM events ORDER BY seq')).rows;
  t.equal(after[0]!.seq, rows[2]!.seq, 'the records up to the anchor are gone');
  t.match((await rejection(pool.query('DELETE FROM events WHERE seq = $1', [rows[2]!.seq]))) as Error, { message: /append-only/ }, 'one past the anchor is refused');

  const serializable = await pool.checkout();
  try {
    await serializable.client.query('BEGIN ISOLATION LEVEL REPEATABLE READ');
    t.match((await rejection(serializable.client.query(insert, [7, null, null, 'x', '{}']))) as Error, { message: /READ COMMITTED only/ }, 'appends above READ COMMITTED are refused');
    await serializable.client.query('ROLLBACK');
  } finally {
    serializable.release();
  }
});

t.test('each group role has its grants; the reader cannot read the spool', async (t) => {
  const { url } = await freshDatabase(t);
  const owner = await poolFor(t, url);
  await migrate(owner);
  await owner.query(
    "INSERT INTO spool_chunks (message_id, seq, bytes) VALUES ('q1', 0, '\\x00ff'); INSERT INTO blobs (secure_id, blob_id, size, created_at) VALUES ('s1', 'b1', 2, 1); INSERT INTO blob_chunks VALUES ('s1', 'b1', 0, '\\x0102')",
  );
  const login = async (role: string): Promise<PgPool> => {
    const name = `${role}_login`;
    await owner.query(`CREATE ROLE ${name} LOGIN PASSWORD '${server.password}' IN ROLE ${role}`);
    t.teardown(() => server.query(`DROP OWNED BY ${name}; DROP ROLE ${name}`, [], url.slice(url.lastIndexOf('/') + 1)).catch(() => undefined));
    return poolFor(t, url, { name, passwordFile: server.passwordFile });
  };
  const [smtp, worker, reader] = [await login('zegel_smtp'), await login('zegel_worker'), await login('zegel_reader')];
  const denied = async (pool: PgPool, sql: string): Promise<boolean> => {
    const err = await pool.query(sql).then(
      () => undefined,
      (e: unknown) => e,
    );
    return err instanceof pg.DatabaseError && err.code === '42501';
  };

  t.ok(await denied(reader, 'SELECT * FROM spool_chunks'), 'the reader cannot SELECT spool_chunks');
  t.ok(await denied(reader, "SELECT 1 FROM spool_chunks WHERE message_id = 'q1'"), 'not even whether a message has chunks');
  t.ok(await denied(reader, "UPDATE spool_chunks SET bytes = '\\x00' WHERE message_id = 'q1'"), 'nor change them');
  t.ok(await denied(reader, "DELETE FROM spool_chunks WHERE message_id = 'q1'"), 'nor remove them');
  t.ok(await denied(reader, 'COPY spool_chunks TO STDOUT'), 'nor copy them out');
  await reader.query("INSERT INTO spool_chunks (message_id, seq, bytes) VALUES ('r1', 0, '\\x01')");
  t.pass('the reader hands the bytes of its own mails to the spool');
  t.equal((await reader.query('SELECT size FROM blobs')).rows[0]!.size, 2, 'the reader reads ciphertext blobs');
  await reader.query(`INSERT INTO events (at, type, detail) VALUES (1, 'opened', '{}')`);
  t.pass('the reader appends events');

  t.equal((await smtp.query('SELECT count(*) AS n FROM spool_chunks')).rows[0]!.n, 2, 'the SMTP role reads the spool');
  t.equal((await worker.query('SELECT count(*) AS n FROM spool_chunks')).rows[0]!.n, 2, 'the worker reads the spool');
  t.ok(await denied(smtp, 'SELECT * FROM secure_links'), 'the SMTP role has no access to links');
  t.ok(await denied(smtp, 'SELECT * FROM blob_chunks'), 'nor to blobs');
  t.ok(await denied(smtp, 'DELETE FROM events WHERE false'), 'the SMTP role cannot delete events');
  t.ok(await denied(reader, 'SELECT * FROM audit_checkpoints'), 'the reader has no access to checkpoints');
  t.ok(await denied(worker, "INSERT INTO directory (target, updated_at) VALUES ('x', 1)"), 'the directory is written by the owner (admin) only');
  for (const pool of [smtp, worker, reader]) {
    t.ok(await denied(pool, 'UPDATE zegel_schema_migrations SET checksum = checksum'), 'no role changes the migration record');
    t.ok(await denied(pool, 'CREATE TABLE intruder (a int)'), 'no role creates tables');
  }
});
