import { inspect } from 'node:util';
import t, { type Test } from 'tap';
import { ZegelError } from '../src/errors.js';
import { openPgPool, type PgPool } from '../src/store/pg/connect.js';
import { isPgStoreError } from '../src/store/pg/errors.js';
import { PgTransactor, PgTx, pgTx } from '../src/store/pg/tx.js';
import { SqliteTx, sqliteTx, type Tx } from '../src/store/tx.js';
import { startPostgres } from './helpers/pg-server.js';
import { rejection } from './helpers/rejection.js';

/**
 * The store's transaction contract (src/store/tx.ts) on PostgreSQL, against a
 * real server (one per file): `transaction` resolves after COMMIT, and what
 * it wrote is then visible to every other connection (and survives a kill
 * -9 of the server); a throw rolls back; a handle kept past its transaction
 * is refused; a lost server is ZEGEL_STORE_UNAVAILABLE, and no error names
 * the password; the pool recovers once the server is back.
 */
const server = await startPostgres();
t.teardown(() => server.cleanup());
const url = await server.createDatabase('tx');
await server.query('CREATE TABLE items (id integer PRIMARY KEY, note text)', [], 'tx');

async function pool(t: Test, options: { url?: string; passwordFile?: string } = {}): Promise<PgPool> {
  const p = await openPgPool({ url: options.url ?? url, passwordFile: options.passwordFile ?? server.passwordFile, applicationName: 'zegel-test', connectTimeoutMs: 3_000 });
  t.teardown(() => p.close());
  return p;
}

const ids = async (p: PgPool): Promise<number[]> => (await p.query<{ id: number }>('SELECT id FROM items ORDER BY id')).rows.map((r) => r.id);
const insert = (tx: Tx, id: number) => pgTx(tx).query('INSERT INTO items (id) VALUES ($1)', [id]);

t.test('a commit is visible to other connections once transaction resolves, not before', async (t) => {
  const [writer, other] = [await pool(t), await pool(t)];
  const store = new PgTransactor(writer);
  const seenInside: number[][] = [];
  const result = await store.transaction(async (tx) => {
    await insert(tx, 1);
    await insert(tx, 2);
    seenInside.push(await ids(other));
    return 'done';
  });
  t.equal(result, 'done', 'resolves to what work returned');
  t.same(seenInside, [[]], 'another connection saw nothing while the transaction was open');
  t.same(await ids(other), [1, 2], 'and sees both rows after it resolved');
  t.same(writer.stats.total - writer.stats.idle, 0, 'the connection went back to the pool');
});

t.test('a throw in work rolls back everything it wrote and rejects with that error', async (t) => {
  const p = await pool(t);
  const store = new PgTransactor(p);
  const boom = new Error('boom');
  const err = await rejection(
    store.transaction(async (tx) => {
      await insert(tx, 10);
      throw boom;
    }),
  );
  t.equal(err, boom);
  t.notOk((await ids(p)).includes(10), 'the row is gone');
  // a failed statement the work swallowed leaves the transaction aborted: COMMIT then rolls back, and says so
  const swallowed = await rejection(
    store.transaction(async (tx) => {
      await insert(tx, 11);
      await insert(tx, 11).catch(() => undefined);
    }),
  );
  t.ok(swallowed instanceof ZegelError && swallowed.code === 'ZEGEL_STORE_WRITE', `a commit that rolled back rejects: ${swallowed.message}`);
  t.notOk((await ids(p)).includes(11), 'nothing of it is there');
  t.same(p.stats.total - p.stats.idle, 0, 'the connections went back to the pool');
  await store.transaction((tx) => insert(tx, 12));
  t.ok((await ids(p)).includes(12), 'the pool still works');
});

t.test('a handle used after its transaction is refused', async (t) => {
  const store = new PgTransactor(await pool(t));
  let kept: Tx | undefined;
  await store.transaction(async (tx) => {
    kept = tx;
    t.equal(pgTx(tx), tx, 'inside: the handle is accepted');
    t.equal(tx.driver, 'postgres');
  });
  t.throws(() => pgTx(kept!), { code: 'ZEGEL_STORE_TX' }, 'pgTx refuses it afterwards');
  const err = await rejection((kept as PgTx).query('INSERT INTO items (id) VALUES (20)'));
  t.match(err, { code: 'ZEGEL_STORE_TX' }, 'a statement on it is refused');
  const failed = await rejection(
    store.transaction(async (tx) => {
      kept = tx;
      throw new Error('x');
    }),
  );
  t.equal(failed.message, 'x');
  t.throws(() => pgTx(kept!), { code: 'ZEGEL_STORE_TX' }, 'also after a rollback');
  t.throws(() => pgTx(new SqliteTx()), { code: 'ZEGEL_STORE_TX' }, "SQLite's handle is not PostgreSQL's");
  await store.transaction(async (tx) => {
    t.throws(() => sqliteTx(tx), { code: 'ZEGEL_STORE_TX' }, "and PostgreSQL's is not SQLite's");
  });
});

t.test('a committed transaction survives a kill -9 of the server; an open one is lost and reported unavailable', async (t) => {
  const p = await pool(t);
  const store = new PgTransactor(p);
  await store.transaction((tx) => insert(tx, 30));
  const err = await rejection(
    store.transaction(async (tx) => {
      await insert(tx, 31);
      await server.kill();
      await insert(tx, 32);
    }),
  );
  t.ok(isPgStoreError(err, 'ZEGEL_STORE_UNAVAILABLE'), `the open transaction fails: ${err.message}`);
  await server.start();
  const after = await ids(p);
  t.ok(after.includes(30), 'the committed row is there after crash recovery');
  t.notOk(after.includes(31), 'the open transaction is not');
  await store.transaction((tx) => insert(tx, 33));
  t.ok((await ids(p)).includes(33), 'the pool replaced its dead connections by itself');
});

t.test('with the server down, or the password wrong, errors are ZEGEL_STORE_UNAVAILABLE and never name the password', async (t) => {
  const p = await pool(t);
  const store = new PgTransactor(p);
  // idle pooled connections: the server ends them on shutdown, which must not crash the process
  await Promise.all([1, 2, 3].map((i) => store.transaction((tx) => pgTx(tx).query('SELECT pg_sleep(0.05), $1::int', [i]))));
  t.ok(p.stats.idle >= 2, `idle connections: ${p.stats.idle}`);
  await server.stop();
  const errors: Error[] = [];
  errors.push(await rejection(store.transaction((tx) => insert(tx, 40))));
  errors.push(await rejection(p.query('SELECT 1')));
  errors.push(await rejection(pool(t)));
  for (const err of errors) t.ok(isPgStoreError(err, 'ZEGEL_STORE_UNAVAILABLE'), `unavailable: ${err.message}`);
  await server.start();

  const wrong = `${server.passwordFile}.wrong`;
  const fs = await import('node:fs');
  const badPassword = `${server.password}-not`;
  fs.writeFileSync(wrong, `${badPassword}\n`, { mode: 0o600 });
  const refused = await rejection(pool(t, { passwordFile: wrong }));
  t.ok(isPgStoreError(refused, 'ZEGEL_STORE_UNAVAILABLE'), `a refused login: ${refused.message}`);
  errors.push(refused);
  const noFile = await rejection(pool(t, { passwordFile: `${server.passwordFile}.missing` }));
  t.ok(isPgStoreError(noFile, 'ZEGEL_STORE_UNAVAILABLE'), `a missing password file: ${noFile.message}`);
  const withPassword = await rejection(pool(t, { url: url.replace('postgres@', `postgres:${server.password}@`) }));
  t.match(withPassword, { code: 'ZEGEL_CONFIG_INVALID' }, 'a URL with a password in it is refused');
  errors.push(withPassword);
  const unparsable = await rejection(pool(t, { url: `postgres://postgres:${server.password}@[bad/db` }));
  t.match(unparsable, { code: 'ZEGEL_CONFIG_INVALID' }, 'an unparsable URL is refused');
  errors.push(unparsable);
  for (const err of errors) {
    for (const secret of [server.password, badPassword]) {
      t.notOk(err.message.includes(secret), `the message does not hold the password: ${err.message}`);
      t.notOk(inspect(err, { depth: 5 }).includes(secret), 'nor does anything the error carries');
    }
  }
  await store.transaction((tx) => insert(tx, 41));
  t.ok((await ids(p)).includes(41), 'the pool works again once the server is back');
});
