import { randomBytes } from 'node:crypto';
import type { Test } from 'tap';
import { ManualClock } from '../../src/clock.js';
import type { SecureContext } from '../../src/secure/context.js';
import { LinkService } from '../../src/secure/links.js';
import type { LinkRepository } from '../../src/store/pg/links.js';
import type { PgSecureRepositories } from '../../src/store/pg/secure-repositories.js';
import type { SecureMessageRepository } from '../../src/store/pg/secure.js';
import type { SecureRepositories } from '../../src/store/secure-repositories.js';
import type { SecureLinkInsert, SecureMessageRow } from '../../src/store/secure.js';
import type { Transactor } from '../../src/store/tx.js';

/**
 * The secure-delivery repositories' contract, written once and run against
 * each driver (test/store-secure-contract.test.ts): SQLite
 * (src/store/secure-repositories.ts) and PostgreSQL
 * (src/store/pg/secure-repositories.ts). A driver gives nodes: each its own
 * connection (SQLite) or pool (PostgreSQL) to one database, as relay
 * processes or cluster nodes would have.
 */

/** What both drivers' repositories offer (SQLite's byQueueId answers at once, PostgreSQL's with a promise). */
export type ContractRepos = Omit<PgSecureRepositories, 'secure' | 'links'> & {
  secure: Omit<SecureMessageRepository, 'byQueueId'> & { byQueueId(queueId: string): SecureMessageRow | undefined | Promise<SecureMessageRow | undefined> };
  links: LinkRepository;
};

export interface ContractNode {
  store: Transactor;
  repos: ContractRepos;
}

export interface SecureDriver {
  name: string;
  /** A node on the shared database; closed by the driver's teardown. */
  node(): Promise<ContractNode>;
  /** Records the queued message (messages row) a secure message refers to: the intake's part, not under test here. */
  queued(queueId: string, at: number): Promise<void>;
}

const id = (): string => randomBytes(16).toString('base64url');

/** A secure message with `n` links, committed; resolves to its ids and what was stored. */
export async function storeSecure(driver: SecureDriver, node: ContractNode, n = 2, at = Date.UTC(2026, 0, 5, 9)): Promise<{ secureId: string; queueId: string; links: SecureLinkInsert[] }> {
  const queueId = id();
  const secureId = id();
  await driver.queued(queueId, at);
  const links: SecureLinkInsert[] = Array.from({ length: n }, (_, i) => ({
    id: id(),
    recipientIdx: i,
    address: `r${i}@voorbeeld.test`,
    method: i === 0 ? 'email-code' : 'sms-code',
    phone: i === 0 ? undefined : '+31612345678',
    language: 'nl',
    wrap: randomBytes(60),
    kSrv: randomBytes(32),
    notificationId: id(),
  }));
  await node.store.transaction((tx) =>
    node.repos.secure.insert(tx, { id: secureId, queueId, sender: 'Arts@Zorg.test', createdAt: at, expiresAt: at + 86_400_000, bodyBlob: 'body', blobs: [{ id: 'body', bytes: 10 }], threadId: secureId, originMessageId: `<${queueId}@zorg.test>` }, links),
  );
  return { secureId, queueId, links };
}

export function secureContract(t: Test, driver: SecureDriver): void {
  t.test(`${driver.name}: a secure message and its links read back as written`, async (t) => {
    const node = await driver.node();
    const { secureId, queueId, links } = await storeSecure(driver, node);
    const { secure, links: linkRepo } = node.repos;
    const row = await secure.get(secureId);
    t.match(row, { id: secureId, queue_id: queueId, sender: 'Arts@Zorg.test', state: 'active', body_blob: 'body', blobs: '[{"id":"body","bytes":10}]', thread_id: secureId, purged_at: null, sender_k_srv: null });
    t.equal((await secure.byQueueId(queueId))?.id, secureId, 'byQueueId');
    t.equal(await secure.threadOfOrigin(`<${queueId}@zorg.test>`), secureId, 'threadOfOrigin');
    t.ok((await secure.idsWithBlobs()).has(secureId), 'idsWithBlobs');
    t.same((await secure.list({ sender: 'arts@zorg.test', since: 0 })).map((r) => r.id), [secureId], 'list by sender, case-insensitive');
    const stored = await secure.links(secureId);
    t.same(stored.map((l) => l.id), links.map((l) => l.id), 'links by recipient');
    for (const [i, l] of stored.entries()) {
      t.ok(l.k_srv && Buffer.compare(l.k_srv, links[i]!.kSrv) === 0, `K_srv ${i} reads back as written`);
      t.ok(l.wrap && Buffer.compare(l.wrap, links[i]!.wrap) === 0, `wrap ${i} reads back as written`);
    }
    t.match(await linkRepo.get(links[1]!.id), { message_id: secureId, recipient_idx: 1, method: 'sms-code', phone: '+31612345678', language: 'nl', state: 'active', failures: 0, locked_until: null });

    const kSrvS = randomBytes(32);
    await node.store.transaction((tx) => secure.setStatus(tx, secureId, { statusId: `s${secureId}`, tokenHash: 'ab'.repeat(32), wrap: randomBytes(60), kSrv: kSrvS }));
    const status = await secure.byStatusId(`s${secureId}`);
    t.ok(status?.sender_k_srv && Buffer.compare(status.sender_k_srv, kSrvS) === 0, "the sender's K_srv reads back as written");
  });

  t.test(`${driver.name}: a resent link, open times, shredding and the purge`, async (t) => {
    const node = await driver.node();
    const { secureId, links } = await storeSecure(driver, node);
    const { secure, links: repo } = node.repos;
    const [first, second] = [links[0]!, links[1]!];
    await node.store.transaction((tx) => repo.opened(tx, first.id, 1000));
    const next = { id: id(), messageId: secureId, oldLinkId: first.id, wrap: randomBytes(60), kSrv: randomBytes(32), notificationId: id(), createdAt: 2000 };
    t.equal(await node.store.transaction((tx) => repo.replace(tx, next)), true, 'an active link is replaced');
    t.equal(await node.store.transaction((tx) => repo.replace(tx, { ...next, id: id() })), false, 'a replaced link is not replaced again');
    t.match(await repo.get(first.id), { state: 'replaced', replaced_by: next.id, wrap: null, k_srv: null, first_opened_at: 1000 });
    const resent = await repo.get(next.id);
    t.match(resent, { state: 'active', address: first.address, method: first.method, recipient_idx: 0, created_at: 2000 });
    t.ok(resent?.k_srv && Buffer.compare(resent.k_srv, next.kSrv) === 0, "the resent link's K_srv reads back");
    t.equal(await repo.openedBefore(secureId, 0, next.id), true, 'the old link of the same recipient was opened');
    t.equal(await repo.openedBefore(secureId, 1, second.id), false);

    t.equal(await repo.wrapsLeft(secureId), 2);
    t.equal(await node.store.transaction((tx) => repo.scheduleRevoke(tx, second.id, 5000)), true);
    t.same(await repo.dueRevocations(4999, 10), []);
    t.same(await repo.dueRevocations(5000, 10), [second.id], 'a scheduled revocation is due at its time');
    t.equal(await node.store.transaction((tx) => repo.shred(tx, second.id, 'revoked')), true);
    t.equal(await node.store.transaction((tx) => repo.shred(tx, second.id, 'revoked')), false, 'shredding twice changes nothing');
    t.match(await repo.get(second.id), { state: 'revoked', wrap: null, k_srv: null, revoke_at: null });
    t.same(await repo.dueRevocations(5000, 10), []);
    t.equal(await repo.wrapsLeft(secureId), 1);
    t.equal(await repo.hasWrap(secureId), true);

    t.equal(await node.store.transaction((tx) => secure.scheduleRevoke(tx, secureId, 7000)), true);
    t.same(await secure.dueRevocations(7000, 10), [secureId]);
    const expiry = Date.UTC(2026, 0, 5, 9) + 86_400_000;
    t.notOk((await secure.dueExpiry(expiry - 1, 100)).includes(secureId), 'not due for expiry before expires_at');
    t.ok((await secure.dueExpiry(expiry, 100)).includes(secureId), 'due for expiry at expires_at');
    await node.store.transaction(async (tx) => {
      await secure.setState(tx, secureId, 'revoked');
      await repo.shredAll(tx, secureId);
      await secure.purge(tx, secureId, 'revoked', 8000);
    });
    t.equal(await repo.hasWrap(secureId), false);
    t.match(await secure.get(secureId), { state: 'revoked', body_blob: null, purged_at: 8000, revoke_at: null, sender_wrap: null, sender_k_srv: null });
    t.equal(await node.store.transaction((tx) => secure.scheduleRevoke(tx, secureId, 9000)), false, 'a purged message schedules nothing');
    t.notOk((await secure.idsWithBlobs()).has(secureId));
    t.notOk((await secure.unpurgedInactive()).includes(secureId));
  });

  t.test(`${driver.name}: five wrong codes spread over three nodes lock the link, and no more are tested`, async (t) => {
    const nodes = [await driver.node(), await driver.node(), await driver.node()];
    const clock = new ManualClock();
    const until = clock.now() + 3600_000;
    const MAX = 5;
    // the reader's logic (src/secure/access.ts): reserve, then a wrong code; the fifth, or one past it, locks
    const services = nodes.map(
      (n) => new LinkService({ store: n.store, repos: n.repos as unknown as SecureRepositories, clock, events: undefined as never } satisfies SecureContext),
    );
    // a race between one node's lock and another's count shows up in some rounds only: several links
    for (let round = 0; round < 6; round++) {
      const { links } = await storeSecure(driver, nodes[0]!, 1);
      const linkId = links[0]!.id;
      const outcomes: string[] = [];
      await Promise.all(
        services.map(async (service) => {
          for (let i = 0; i < 8; i++) {
            const reserved = await service.reserveAttempt(linkId);
            if ('lockedUntil' in reserved) {
              outcomes.push('locked');
              continue;
            }
            if (reserved.attempt > MAX) {
              await service.lock(linkId, until);
              outcomes.push('over');
              continue;
            }
            outcomes.push('tested');
            if (reserved.attempt >= MAX) await service.lock(linkId, until);
          }
        }),
      );
      t.equal(outcomes.filter((o) => o === 'tested').length, MAX, `round ${round}: exactly ${MAX} codes tested across three nodes (${outcomes.join(' ')})`);
      t.match(await nodes[1]!.repos.links.get(linkId), { locked_until: until }, 'the link is locked');
      t.same(await services[2]!.reserveAttempt(linkId), { lockedUntil: until }, 'a later try on another node meets the lock');
    }
  });

  t.test(`${driver.name}: reader sessions`, async (t) => {
    const node = await driver.node();
    const { links } = await storeSecure(driver, node, 1);
    const linkId = links[0]!.id;
    const { sessions } = node.repos;
    await node.store.transaction((tx) => sessions.insertVerified(tx, { idHash: 'a'.repeat(64), linkId, now: 1000, expiresAt: 2000 }, undefined));
    t.same(await sessions.get('a'.repeat(64)), { idHash: 'a'.repeat(64), linkId, createdAt: 1000, verifiedAt: 1000, expiresAt: 2000 });
    await node.store.transaction((tx) => sessions.insertVerified(tx, { idHash: 'b'.repeat(64), linkId, now: 1500, expiresAt: 9000 }, 'a'.repeat(64)));
    t.equal(await sessions.get('a'.repeat(64)), undefined, 'the replaced session is gone');
    await node.store.transaction((tx) => sessions.insertVerified(tx, { idHash: 'c'.repeat(64), linkId, now: 1600, expiresAt: 1700 }, undefined));
    t.equal(await node.store.transaction((tx) => sessions.deleteExpired(tx, 1700)), 1, 'one session expired');
    t.ok(await sessions.get('b'.repeat(64)));
    await node.store.transaction((tx) => sessions.endForLink(tx, linkId));
    t.equal(await sessions.get('b'.repeat(64)), undefined, "the link's sessions ended");
  });

  t.test(`${driver.name}: one-time codes, one use across two nodes`, async (t) => {
    const [a, b] = [await driver.node(), await driver.node()];
    const { links } = await storeSecure(driver, a, 1);
    const linkId = links[0]!.id;
    const code = { linkId, sessionHash: 's'.repeat(64), channel: 'email' as const, codeHash: 'h'.repeat(64), createdAt: 1000, expiresAt: 5000 };
    const first = await a.store.transaction((tx) => a.repos.codes.insert(tx, code));
    await a.store.transaction(async (tx) => {
      await a.repos.codes.voidLive(tx, linkId);
    });
    const second = await a.store.transaction((tx) => a.repos.codes.insert(tx, { ...code, createdAt: 2000 }));
    t.not(first, second);
    t.same(await b.repos.codes.createdSince(linkId, 1500), [2000]);
    t.same(await b.repos.codes.live(linkId, 's'.repeat(64), 3000), [{ id: second, codeHash: 'h'.repeat(64), expiresAt: 5000 }], 'only the newer code is live');
    t.same(await b.repos.codes.live(linkId, 's'.repeat(64), 5000), [], 'not once expired');
    const used = await Promise.all([a, b].map((n) => n.store.transaction((tx) => n.repos.codes.use(tx, second))));
    t.same(used.sort(), [false, true], 'of two nodes using one code, one succeeds');
    const third = await a.store.transaction((tx) => a.repos.codes.insert(tx, { ...code, createdAt: 3000 }));
    await b.store.transaction((tx) => b.repos.codes.deleteLive(tx, linkId));
    t.same(await a.repos.codes.live(linkId, 's'.repeat(64), 0), [], `live code ${third} deleted`);
    t.equal(await a.store.transaction((tx) => a.repos.codes.deleteExpired(tx, 5000)), 2, 'the used and the void code expired');
  });

  t.test(`${driver.name}: replies`, async (t) => {
    const node = await driver.node();
    const { secureId, links } = await storeSecure(driver, node, 2);
    const { replies } = node.repos;
    const [l0, l1] = [links[0]!.id, links[1]!.id];
    const reply = (n: number, linkId: string, at: number) => ({ id: `reply${n}${secureId}`.slice(0, 40), messageId: secureId, linkId, createdAt: at, blob: `blob${n}`, queueId: `q${n}` });
    await node.store.transaction(async (tx) => {
      await replies.insert(tx, reply(1, l0, 1000));
      await replies.insert(tx, reply(2, l0, 2000));
      await replies.insert(tx, reply(3, l1, 3000));
    });
    t.same(await replies.ofLink(l0), [{ id: reply(1, l0, 0).id, createdAt: 1000, blob: 'blob1' }, { id: reply(2, l0, 0).id, createdAt: 2000, blob: 'blob2' }]);
    t.same(await replies.get(reply(3, l1, 0).id, l1), { id: reply(3, l1, 0).id, createdAt: 3000, blob: 'blob3' });
    t.equal(await replies.get(reply(3, l1, 0).id, l0), undefined, "another link's reply is not found");
    t.same(await replies.counts(l0, 1500), { total: 2, recent: 1, oldestRecent: 2000 });
    t.same(await replies.counts(l1, 5000), { total: 1, recent: 0, oldestRecent: undefined });
    t.same([...(await replies.perLink(secureId)).entries()].sort(), [
      [l0, { count: 2, last: 2000 }],
      [l1, { count: 1, last: 3000 }],
    ].sort());
    t.equal(await replies.messageOf(reply(2, l0, 0).id), secureId);
    t.equal(await node.store.transaction((tx) => replies.dropBlobs(tx, secureId)), 3);
    t.same(await replies.ofLink(l0), [], 'purged copies are not listed');
    t.same(await replies.counts(l0, 0), { total: 2, recent: 2, oldestRecent: 1000 }, 'but still counted');
  });
}
