import crypto from 'node:crypto';
import type { Test } from 'tap';
import type { AuditRecord } from '../../src/audit/export.js';
import { rejection } from './rejection.js';
import type { Driver, StoreFixture, StoreNode } from './store-drivers.js';

/**
 * The audit trail's contract (src/store/events.ts, src/audit/), written once
 * and run against every driver: one hash chain, numbered without gaps, that
 * `verify` proves, whoever appended; tampering found; append-only refused;
 * the retention cut; the export and the admin reads.
 */

const key = crypto.generateKeyPairSync('ed25519').privateKey;
const pub = crypto.createPublicKey(key);

async function all(records: AsyncIterable<AuditRecord> | Iterable<AuditRecord>): Promise<AuditRecord[]> {
  const out: AuditRecord[] = [];
  for await (const r of records) out.push(r);
  return out;
}

const seqs = async (s: StoreFixture): Promise<number[]> => (await s.rows<{ seq: number }>('SELECT seq FROM events ORDER BY seq')).map((r) => Number(r.seq));

/** `n` events about `message`, each in its own transaction on `node`. */
async function appendMany(node: StoreNode, message: string, n: number): Promise<void> {
  for (let i = 0; i < n; i++) {
    await node.transaction((tx) => node.events.append(tx, { messageId: message, type: 'deferred', recipient: `r${i}@example.nl`, detail: { attempt: i, reply: `451 try ${i}` } }));
  }
}

export function eventsContract(t: Test, driver: Driver): void {
  t.test(`${driver.name}: appends chain in commit order and verify proves the chain`, async (t) => {
    const s = await driver.make(t);
    await s.transaction(async (tx) => {
      await s.events.append(tx, { messageId: 'q1', type: 'received', detail: { from: 'jan@org.test', size: 10, clientIp: '192.0.2.7' } });
      await s.events.append(tx, { messageId: 'q1', recipient: 'Piet@Extern.test', type: 'decided', detail: { reason: 'bsn', decision: 'encrypt' } });
    });
    s.clock.advance(1000);
    await s.transaction((tx) => s.events.append(tx, { messageId: null, type: 'rules-reloaded', detail: { rules: 3 } }));
    const events = await s.events.forMessage('q1');
    t.same(
      events.map((e) => [e.seq, e.type, e.recipient, e.detail]),
      [
        [1, 'received', undefined, { clientIp: '192.0.2.7', from: 'jan@org.test', size: 10 }],
        [2, 'decided', 'Piet@Extern.test', { decision: 'encrypt', reason: 'bsn' }],
      ],
    );
    const stored = await s.rows<{ detail: string }>('SELECT detail FROM events WHERE seq = 2');
    t.equal(stored[0]!.detail, '{"decision":"encrypt","reason":"bsn"}', 'the detail is stored as canonical JSON (keys sorted)');
    const result = await s.audit.verify(pub);
    t.ok(result.ok, result.problem ?? 'intact');
    t.equal(result.records, 3);
    t.equal(result.unsigned, 3, 'nothing signed yet');
    t.same(await seqs(s), [1, 2, 3]);
  });

  t.test(`${driver.name}: a rolled-back append leaves no record and no gap`, async (t) => {
    const s = await driver.make(t);
    await appendMany(s, 'q1', 1);
    const boom = new Error('later statement failed');
    const err = await rejection(
      s.transaction(async (tx) => {
        await s.events.append(tx, { messageId: 'q1', type: 'delivered', detail: {} });
        throw boom;
      }),
    );
    t.equal(err, boom);
    await appendMany(s, 'q1', 1);
    t.same(await seqs(s), [1, 2], 'the next record takes the number the rolled-back one had');
    const result = await s.audit.verify(pub);
    t.ok(result.ok, result.problem ?? 'intact');
  });

  t.test(`${driver.name}: three nodes appending at once make one chain that verifies`, async (t) => {
    const s = await driver.make(t);
    const nodes = [s, await s.node(), await s.node()];
    const per = 40;
    const started = performance.now();
    await Promise.all(
      nodes.map(async (node, n) => {
        // several transactions in flight per node, several events per transaction
        await Promise.all(
          [0, 1].map(async (lane) => {
            for (let i = 0; i < per / 2; i++) {
              await node.transaction(async (tx) => {
                await node.events.append(tx, { messageId: `node${n}`, type: 'deferred', detail: { lane, i, part: 'a' } });
                await node.events.append(tx, { messageId: `node${n}`, type: 'deferred', detail: { lane, i, part: 'b' } });
              });
            }
          }),
        );
      }),
    );
    const ms = performance.now() - started;
    const total = nodes.length * per * 2;
    t.same(await seqs(s), Array.from({ length: total }, (_, i) => i + 1), `${total} records numbered 1..${total} (${Math.round((total / ms) * 1000)} appends/s)`);
    for (let n = 0; n < nodes.length; n++) {
      const mine = await s.events.forMessage(`node${n}`);
      t.equal(mine.length, per * 2, `node ${n}'s records all there`);
      // a transaction's two records are adjacent: the lock is held from the first append to the commit
      for (let i = 0; i < mine.length; i += 2) {
        if (mine[i]!.detail.part !== 'a' || mine[i + 1]!.seq !== mine[i]!.seq + 1) {
          t.fail(`node ${n}: a transaction's records were interleaved at ${mine[i]!.seq}`);
          break;
        }
      }
    }
    await s.audit.checkpoint(key, s.clock.now());
    const result = await s.audit.verify(pub);
    t.ok(result.ok, result.problem ?? 'intact');
    t.equal(result.records, total);
    t.equal(result.unsigned, 0);
  });

  t.test(`${driver.name}: an edited, a deleted or a cut record is found by verify`, async (t) => {
    const s = await driver.make(t);
    await appendMany(s, 'q1', 6);
    await s.audit.checkpoint(key, s.clock.now());
    t.ok((await s.audit.verify(pub)).ok, 'intact before');
    const attacker = await s.attacker();

    await attacker.editEvent(3, 'detail', '{"attempt":2,"reply":"250 ok"}');
    let result = await s.audit.verify(pub);
    t.notOk(result.ok, 'an edited detail is found');
    t.equal(result.badSeq, 3);
    t.match(result.problem, /record 3: hash mismatch/);
    await attacker.editEvent(3, 'detail', '{"attempt":2,"reply":"451 try 2"}');
    t.ok((await s.audit.verify(pub)).ok, 'the original bytes verify again');

    await attacker.deleteEvent(4);
    result = await s.audit.verify(pub);
    t.notOk(result.ok, 'a deleted record is found');
    t.equal(result.badSeq, 5);
    t.match(result.problem, /missing record between 3 and 5/);

    await attacker.deleteEvent(6);
    await attacker.deleteEvent(5);
    result = await s.audit.verify(pub);
    t.notOk(result.ok, 'a cut tail is found by the checkpoint');
    t.match(result.problem, /checkpoint .* names record 6 \(truncated\?\)/);
  });

  t.test(`${driver.name}: the application cannot update or delete records`, async (t) => {
    const s = await driver.make(t);
    await appendMany(s, 'q1', 2);
    const update = await rejection(s.exec("UPDATE events SET detail = '{}' WHERE seq = ?", [1]));
    t.match(update.message, /append-only/, `UPDATE refused: ${update.message}`);
    const del = await rejection(s.exec('DELETE FROM events WHERE seq = ?', [2]));
    t.match(del.message, /append-only/, `DELETE refused: ${del.message}`);
    await s.audit.checkpoint(key, s.clock.now());
    const cp = await rejection(s.exec('DELETE FROM audit_checkpoints'));
    t.match(cp.message, /append-only/, `a checkpoint cannot be removed: ${cp.message}`);
    t.same(await seqs(s), [1, 2]);
    t.ok((await s.audit.verify(pub)).ok);
  });

  t.test(`${driver.name}: the retention purge cuts the start, signs, and the chain goes on from its anchor`, async (t) => {
    const s = await driver.make(t);
    await appendMany(s, 'old', 4);
    s.clock.advance(10 * 86_400_000);
    await appendMany(s, 'new', 2);
    const purged = await s.audit.purge(key, s.clock.now(), 5 * 86_400_000);
    t.equal(purged.removed, 4);
    t.equal(purged.anchor?.seq, 4);
    t.same(await seqs(s), [5, 6, 7], 'records 1-4 gone; 7 is the audit-purged event');
    const [purgeEvent] = (await all(s.audit.records({ event: 'audit-purged' })));
    t.same(purgeEvent?.detail, { through: 4, removed: 4, cutoff: new Date(s.clock.now() - 5 * 86_400_000).toISOString() });
    t.same(await s.audit.purge(key, s.clock.now(), 5 * 86_400_000), { removed: 0 }, 'a second purge finds nothing to cut');
    await appendMany(s, 'new', 1);
    t.same(await seqs(s), [5, 6, 7, 8], 'the next append follows on');
    const result = await s.audit.verify(pub);
    t.ok(result.ok, result.problem ?? 'intact');
    t.equal(result.records, 4);
    // the last checkpoint is the anchor's (signed after the head's), so every record kept counts as unsigned until the next one
    t.equal(result.unsigned, 4);
  });

  t.test(`${driver.name}: two nodes purging at once cut once, while a third appends`, async (t) => {
    const s = await driver.make(t);
    const [a, b] = [await s.node(), await s.node()];
    await appendMany(s, 'old', 5);
    s.clock.advance(10 * 86_400_000);
    const retention = 5 * 86_400_000;
    const [first, second] = await Promise.all([a.audit.purge(key, s.clock.now(), retention), b.audit.purge(key, s.clock.now(), retention), appendMany(s, 'new', 5)]);
    t.same([first, second].map((r) => r.removed).sort(), [0, 5], 'one purge removed the five old records, the other found nothing left');
    t.equal((await all(s.audit.records({ event: 'audit-purged' }))).length, 1, 'one audit-purged event');
    const result = await s.audit.verify(pub);
    t.ok(result.ok, result.problem ?? 'intact');
    t.equal(result.records, 6, 'five new records and the purge event');
  });

  t.test(`${driver.name}: export selects by time, message, recipient and event, oldest first`, async (t) => {
    const s = await driver.make(t);
    const at0 = s.clock.now();
    await s.transaction(async (tx) => {
      await s.events.append(tx, { messageId: 'q1', type: 'received', detail: { clientIp: '192.0.2.7' } });
      await s.events.append(tx, { messageId: 'q1', recipient: 'Piet@Extern.test', type: 'opened', detail: { linkId: 'L1' } });
    });
    s.clock.advance(60_000);
    await s.transaction(async (tx) => {
      await s.events.append(tx, { messageId: 'q2', type: 'admin-action', detail: { command: 'queue delete' } });
      await s.events.append(tx, { messageId: 'q1', recipient: 'piet@extern.test', type: 'revoked', detail: { actor: 'sender' } });
    });
    const everything = await all(s.audit.records({}));
    t.same(
      everything.map((r) => [r.seq, r.type, r.actor, r.clientIp]),
      [
        [1, 'received', undefined, '192.0.2.7'],
        [2, 'opened', undefined, undefined],
        [3, 'admin-action', 'admin', undefined],
        [4, 'revoked', 'sender', undefined],
      ],
    );
    t.ok(everything.every((r) => /^[0-9a-f]{64}$/.test(r.hash ?? '')), 'each with its hash');
    t.same((await all(s.audit.records({ message: 'q1' }))).map((r) => r.seq), [1, 2, 4]);
    t.same((await all(s.audit.records({ recipient: ' PIET@extern.test ' }))).map((r) => r.seq), [2, 4], 'recipient case-insensitive');
    t.same((await all(s.audit.records({ since: at0 + 1 }))).map((r) => r.seq), [3, 4]);
    t.same((await all(s.audit.records({ until: at0 + 1, event: 'opened' }))).map((r) => r.seq), [2]);
  });

  t.test(`${driver.name}: the admin reads of the event log`, async (t) => {
    const s = await driver.make(t);
    await s.transaction(async (tx) => {
      await s.events.append(tx, { messageId: 'q1', type: 'forgot-code', detail: { linkId: 'L1' } });
      await s.events.append(tx, { messageId: 'q1', type: 'downloaded', detail: { linkId: 'L1' } });
      await s.events.append(tx, { messageId: 'q1', type: 'downloaded', detail: { linkId: 'L2' } });
      await s.events.append(tx, { messageId: 'q1', type: 'downloaded', detail: { linkId: 7 } });
    });
    s.clock.advance(5000);
    await s.transaction((tx) => s.events.append(tx, { messageId: 'q1', type: 'downloaded', detail: { linkId: 'L1' } }));
    t.equal(await s.events.countWith('q1', 'downloaded', 'linkId', 'L1'), 2);
    t.equal(await s.events.countWith('q1', 'downloaded', 'linkId', '7'), 0, 'a number in the detail is not the string "7"');
    t.equal(await s.events.countWith('q2', 'downloaded', 'linkId', 'L1'), 0);
    t.equal(await s.events.lastAt('q1', 'downloaded', 'linkId', 'L1'), s.clock.now());
    t.equal(await s.events.lastAt('q1', 'forgot-code', 'linkId', 'L2'), undefined);
    t.equal(await s.events.lastOfType('q1', 'forgot-code'), s.clock.now() - 5000);
    t.equal(await s.events.lastOfType('q1', 'held'), undefined);
    t.notOk(await s.audit.hasCheckpoints());
    t.ok(await s.audit.checkpoint(key, s.clock.now()));
    t.equal(await s.audit.checkpoint(key, s.clock.now()), undefined, 'the head is signed already');
    t.ok(await s.audit.hasCheckpoints());
  });
}
