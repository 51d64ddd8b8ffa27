import { randomBytes } from 'node:crypto';
import t from 'tap';
import { StorageKey } from '../src/crypto/storage-key.js';
import { ZegelError } from '../src/errors.js';
import { openDb, type Db } from '../src/store/db.js';
import { GroupCommitter } from '../src/store/group-commit.js';
import { openPgPool, type PgPool } from '../src/store/pg/connect.js';
import { migrate } from '../src/store/pg/migrate.js';
import { pgSecureRepositories } from '../src/store/pg/secure-repositories.js';
import { linkKsrvContext } from '../src/store/pg/server-keys.js';
import { PgTransactor } from '../src/store/pg/tx.js';
import { secureRepositories } from '../src/store/secure-repositories.js';
import { startPostgres } from './helpers/pg-server.js';
import { tempDir } from './helpers/relay.js';
import { secureContract, storeSecure, type ContractNode, type SecureDriver } from './helpers/secure-contract.js';
import type { Tx } from '../src/store/tx.js';
import { openChunk } from '../src/crypto/storage-key.js';

/**
 * Secure delivery's repositories (links with their attempts and lock,
 * sessions, codes, replies, the messages' revocation and purge columns)
 * behave the same on SQLite and on PostgreSQL: one contract
 * (test/helpers/secure-contract.ts), run against both. On PostgreSQL the
 * lockout is counted by three pools at once, as three nodes would; on
 * SQLite by three connections to one file. Then what PostgreSQL adds: K_srv
 * stored sealed under the storage key, bound to its row.
 */

// SQLite: connections to one file
const dataDir = tempDir(t);
const sqliteDrivers: Array<{ db: Db; committer: GroupCommitter }> = [];
t.teardown(async () => {
  for (const { db, committer } of sqliteDrivers) {
    await committer.close();
    db.close();
  }
});
const sqlite: SecureDriver = {
  name: 'sqlite',
  async node() {
    const db = openDb(dataDir);
    const committer = new GroupCommitter(db);
    sqliteDrivers.push({ db, committer });
    return { store: committer, repos: secureRepositories(db) };
  },
  async queued(queueId, at) {
    const db = sqliteDrivers[0]?.db ?? (await this.node(), sqliteDrivers[0]!.db);
    db.prepare(`INSERT INTO messages (id, received_at, mail_from, size, origin, state) VALUES (?, ?, 'arts@zorg.test', 10, 'submission', 'queued')`).run(queueId, at);
  },
};

// PostgreSQL: pools to one database
const server = await startPostgres();
t.teardown(() => server.cleanup());
const url = await server.createDatabase('secure_contract');
const storageKey = new StorageKey(randomBytes(32));
const pools: PgPool[] = [];
t.teardown(async () => {
  for (const pool of pools) await pool.close();
});
async function pgPool(): Promise<PgPool> {
  const pool = await openPgPool({ url, passwordFile: server.passwordFile, applicationName: 'zegel-test', max: 4 });
  pools.push(pool);
  return pool;
}
await migrate(await pgPool());
const postgres: SecureDriver = {
  name: 'postgres',
  async node() {
    const pool = await pgPool();
    return { store: new PgTransactor(pool), repos: pgSecureRepositories(pool, storageKey) };
  },
  async queued(queueId, at) {
    await pools[0]!.query(`INSERT INTO messages (id, received_at, mail_from, size, origin, state) VALUES ($1, $2, 'arts@zorg.test', 10, 'submission', 'queued')`, [queueId, at]);
  },
};

secureContract(t, sqlite);
secureContract(t, postgres);

t.test('postgres: K_srv is stored sealed under the storage key, bound to its link', async (t) => {
  const node = await postgres.node();
  const { links } = await storeSecure(postgres, node, 2);
  const [a, b] = [links[0]!, links[1]!];
  const raw = async (id: string) => (await server.query<{ k_srv: Buffer }>('SELECT k_srv FROM secure_links WHERE id = $1', [id], 'secure_contract'))[0]!.k_srv;
  const stored = await raw(a.id);
  t.notOk(stored.includes(a.kSrv), 'the stored bytes do not hold K_srv');
  t.same(openChunk(storageKey, linkKsrvContext(a.id), stored), a.kSrv, 'they open to K_srv with the storage key and the link id');
  const other = pgSecureRepositories(pools[0]!, new StorageKey(randomBytes(32)));
  await t.rejects(other.links.get(a.id), { code: 'ZEGEL_STORAGE_SEAL' }, 'another storage key opens nothing');
  // a sealed K_srv copied onto another link's row does not open there
  await server.query('UPDATE secure_links SET k_srv = $1 WHERE id = $2', [stored, b.id], 'secure_contract');
  const err = await node.repos.links.get(b.id).then(
    () => undefined,
    (e: unknown) => e,
  );
  t.ok(err instanceof ZegelError && err.code === 'ZEGEL_STORAGE_SEAL', 'a K_srv moved to another link is refused');
});

t.test('postgres: two nodes revoking the last two links at once purge the message', async (t) => {
  const [a, b] = [await postgres.node(), await postgres.node()];
  const { secureId, links } = await storeSecure(postgres, a, 2);
  // the row steps of src/secure/revocation.ts (revokeLink): shred the link, then purge if no wrap is left;
  // both shred before either counts, the order that lost the purge when the count took no lock
  let arrived = 0;
  let open!: () => void;
  const barrier = new Promise<void>((resolve) => (open = resolve));
  const revoke = (node: typeof a, linkId: string) =>
    node.store.transaction(async (tx) => {
      const link = await node.repos.links.get(linkId, tx);
      t.equal(await node.repos.links.shred(tx, link!.id, 'revoked'), true);
      if (++arrived === 2) open();
      await barrier;
      if ((await node.repos.links.wrapsLeft(secureId, tx)) > 0) return false;
      await node.repos.links.shredAll(tx, secureId);
      await node.repos.secure.purge(tx, secureId, 'revoked', 9000);
      return true;
    });
  const purged = await Promise.all([revoke(a, links[0]!.id), revoke(b, links[1]!.id)]);
  t.same(purged.sort(), [false, true], 'one of them purges');
  t.match(await a.repos.secure.get(secureId), { purged_at: 9000, body_blob: null });
});

/**
 * Runs `first` in a transaction held open after it ran, then `second` on
 * another node; lets the first commit once the second either finished or
 * waits for a row lock (pg_stat_activity), so both orders of the race are
 * met without a fixed sleep. Resolves to both results.
 */
async function overlapping<A, B>(first: (tx: Tx) => Promise<A>, second: () => Promise<B>, firstNode: ContractNode): Promise<[A, B]> {
  let ran!: () => void;
  const firstRan = new Promise<void>((resolve) => (ran = resolve));
  let release!: () => void;
  const released = new Promise<void>((resolve) => (release = resolve));
  const one = firstNode.store.transaction(async (tx) => {
    const result = await first(tx);
    ran();
    await released;
    return result;
  });
  await firstRan;
  let done = false;
  const two = second().finally(() => {
    done = true;
  });
  const deadline = Date.now() + 10_000;
  for (;;) {
    if (done) break;
    const waiting = await server.query("SELECT 1 FROM pg_stat_activity WHERE datname = 'secure_contract' AND wait_event_type = 'Lock'");
    if (waiting.length) break;
    if (Date.now() > deadline) throw new Error('the second node neither finished nor waited for a lock');
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  release();
  return [await one, await two];
}

t.test('postgres: two nodes resending one link at once make one new link', async (t) => {
  const [a, b] = [await postgres.node(), await postgres.node()];
  const { secureId, links } = await storeSecure(postgres, a, 1);
  const resend = (newId: string) => ({ id: newId, messageId: secureId, oldLinkId: links[0]!.id, wrap: randomBytes(60), kSrv: randomBytes(32), notificationId: newId, createdAt: 3000 });
  const [first, second] = await overlapping(
    (tx) => a.repos.links.replace(tx, resend('resentA')),
    () => b.store.transaction((tx) => b.repos.links.replace(tx, resend('resentB'))),
    a,
  );
  t.same([first, second], [true, false], 'the second finds the link replaced');
  t.same((await a.repos.links.ofMessage(secureId)).map((l) => [l.id, l.state]).sort((x, y) => x[1]!.localeCompare(y[1]!)), [
    ['resentA', 'active'],
    [links[0]!.id, 'replaced'],
  ]);
});

t.test("postgres: two nodes sending a code at once keep to the link's code limit", async (t) => {
  const [a, b] = [await postgres.node(), await postgres.node()];
  const { links } = await storeSecure(postgres, a, 1);
  const linkId = links[0]!.id;
  const LIMIT = 1;
  // LinkService.insertCode's steps: the recent codes, the limit, then the new code
  const send = async (node: ContractNode, tx: Tx, at: number): Promise<number | 'refused'> => {
    if ((await node.repos.codes.createdSince(linkId, 0, tx)).length >= LIMIT) return 'refused';
    await node.repos.codes.voidLive(tx, linkId);
    return node.repos.codes.insert(tx, { linkId, sessionHash: 's'.repeat(64), channel: 'email', codeHash: 'h'.repeat(64), createdAt: at, expiresAt: at + 1000 });
  };
  const [first, second] = await overlapping(
    (tx) => send(a, tx, 1000),
    () => b.store.transaction((tx) => send(b, tx, 1001)),
    a,
  );
  t.type(first, 'number');
  t.equal(second, 'refused', 'the second sees the first code and is refused');
  t.same(await a.repos.codes.createdSince(linkId, 0), [1000]);
});
