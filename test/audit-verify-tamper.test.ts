import crypto from 'node:crypto';
import { storeView } from './helpers/store-view.js';
import fs from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import nodemailer from 'nodemailer';
import t, { type Test } from 'tap';
import { GENESIS_HASH, chainHash, type ChainFields } from '../src/audit/chain.js';
import { createCheckpoint, loadSigningKey, publicKeyPem } from '../src/audit/checkpoint.js';
import type { AuditPurgeResult } from '../src/audit/retention.js';
import { AuditTrail } from '../src/audit/trail.js';
import { verifyChain } from '../src/audit/verify.js';
import { ManualClock } from '../src/clock.js';
import { openDb, type Db } from '../src/store/db.js';
import { EventLog } from '../src/store/events.js';
import { GroupCommitter } from '../src/store/group-commit.js';
import { runZegel } from './helpers/child-relay.js';
import { startRelay, tempDir, waitFor } from './helpers/relay.js';
import { startSink } from './helpers/sink.js';

/*
 * The audit chain against an attacker with write access to the SQLite file:
 * a separate connection drops the append-only triggers and edits, deletes,
 * reorders, truncates or rewrites records; `verifyChain` (and `zegel audit
 * verify`) names the first bad record.
 */


interface Fixture {
  dataDir: string;
  file: string;
  key: crypto.KeyObject;
  pub: crypto.KeyObject;
  open(): Db;
  attacker(): Database.Database;
}

/** Six events, a signed checkpoint over all of them. */
function fixture(t: Test, options: { checkpoint?: boolean } = {}): Fixture {
  const dataDir = path.join(tempDir(t, 'zegel-audit-'), 'data');
  const db = openDb(dataDir);
  const ins = db.prepare('INSERT INTO events (at, message_id, recipient, type, detail) VALUES (?, ?, ?, ?, ?)');
  const base = Date.UTC(2026, 0, 5, 9, 0, 0);
  db.transaction(() => {
    ins.run(base, 'q1', null, 'received', JSON.stringify({ clientIp: '192.0.2.7', from: 'jan@org.test' }));
    ins.run(base + 1000, 'q1', 'piet@extern.test', 'decided', JSON.stringify({ decision: 'encrypt' }));
    ins.run(base + 2000, 'q1', 'piet@extern.test', 'encrypted', '{}');
  })();
  ins.run(base + 3000, 'q1', 'piet@extern.test', 'opened', JSON.stringify({ linkId: 'L1', clientIp: '198.51.100.9' }));
  ins.run(base + 4000, 'q1', 'piet@extern.test', 'revoked', JSON.stringify({ actor: 'sender', linkId: 'L1' }));
  ins.run(base + 5000, 'q1', null, 'admin-action', JSON.stringify({ command: 'messages revoke' }));
  const { key } = loadSigningKey({ dataDir, create: true });
  if (options.checkpoint ?? true) createCheckpoint(db, key, base + 6000);
  db.close();
  const file = path.join(dataDir, 'zegel.db');
  return {
    dataDir,
    file,
    key,
    pub: crypto.createPublicKey(key),
    open: () => {
      const d = openDb(dataDir);
      t.teardown(() => d.close());
      return d;
    },
    attacker: () => {
      const d = new Database(file);
      t.teardown(() => d.close());
      for (const trigger of ['events_no_update', 'events_no_delete', 'events_no_replace', 'events_chain', 'audit_checkpoints_no_update', 'audit_checkpoints_no_delete']) {
        d.exec(`DROP TRIGGER IF EXISTS ${trigger}`);
      }
      return d;
    },
  };
}

const zegel = (args: string[]) => runZegel(args);

/** One retention purge on the fixture's database, in its own group commit, with `now` as the time of what it writes. */
async function purgeAudit(db: Db, key: crypto.KeyObject, now: number, retentionMs: number): Promise<AuditPurgeResult> {
  const committer = new GroupCommitter(db);
  try {
    return await new AuditTrail(db, committer, new EventLog(db, { now: () => now })).purge(key, now, retentionMs);
  } finally {
    await committer.close();
  }
}

function configFile(t: Test, dataDir: string): string {
  const file = path.join(path.dirname(dataDir), 'zegel.yaml');
  fs.writeFileSync(file, `data:\n  dir: ${JSON.stringify(dataDir)}\n`);
  return file;
}

t.test('an intact chain verifies; every record carries the previous hash', async (t) => {
  const f = fixture(t);
  const db = f.open();
  const rows = db.prepare('SELECT * FROM events ORDER BY seq').all() as Array<ChainFields & { prev_hash: string; hash: string }>;
  t.equal(rows.length, 6);
  t.equal(rows[0]!.prev_hash, GENESIS_HASH);
  for (let i = 1; i < rows.length; i++) t.equal(rows[i]!.prev_hash, rows[i - 1]!.hash, `record ${rows[i]!.seq} links to ${rows[i - 1]!.seq}`);
  for (const r of rows) t.equal(chainHash(r.prev_hash, r), r.hash);
  const result = verifyChain(db, f.pub);
  t.ok(result.ok, result.problem ?? "intact");
  t.equal(result.records, 6);
  t.equal(result.checkpoints, 1);
  t.equal(result.unsigned, 0);
  // the triggers still refuse edits through a normal connection
  t.throws(() => db.prepare(`UPDATE events SET detail = '{}' WHERE seq = 2`).run(), /append-only/);
  t.throws(() => db.prepare(`UPDATE events SET hash = ? WHERE seq = 2`).run(GENESIS_HASH), /append-only/);
  t.throws(() => db.prepare('DELETE FROM events WHERE seq = 6').run(), /append-only/);
  t.throws(() => db.prepare('DELETE FROM audit_checkpoints').run(), /append-only/);

  const cfg = configFile(t, f.dataDir);
  const pubFile = path.join(path.dirname(f.dataDir), 'audit.pub');
  fs.writeFileSync(pubFile, publicKeyPem(f.key));
  const run = await zegel(['audit', 'verify', '--public-key', pubFile, '--config', cfg]);
  t.equal(run.code, 0, run.stderr);
  t.match(run.stdout, /^audit chain intact: 6 records, 1 checkpoints, last checkpoint at 2026-01-05T09:00:06\.000Z \(record 6\)\n$/);
  const key = await zegel(['audit', 'public-key', '--config', cfg]);
  t.equal(key.stdout, publicKeyPem(f.key));
});

t.test('an edited detail is named', async (t) => {
  const f = fixture(t);
  f.attacker().prepare(`UPDATE events SET detail = ? WHERE seq = 4`).run(JSON.stringify({ linkId: 'L1', clientIp: '203.0.113.1' }));
  const result = verifyChain(f.open(), f.pub);
  t.notOk(result.ok);
  t.equal(result.problem, 'record 4: hash mismatch (edited?)');
  t.equal(result.badSeq, 4);

  const run = await zegel(['audit', 'verify', '--config', configFile(t, f.dataDir)]);
  t.equal(run.code, 1);
  t.equal(run.stdout, 'audit chain broken: record 4: hash mismatch (edited?)\n');
});

t.test('a deleted record is named', async (t) => {
  const f = fixture(t);
  f.attacker().prepare('DELETE FROM events WHERE seq = 3').run();
  const result = verifyChain(f.open(), f.pub);
  t.equal(result.problem, 'missing record between 2 and 4 (deleted?)');
  t.equal(result.badSeq, 4);
});

t.test('a deleted first record is named', async (t) => {
  const f = fixture(t);
  f.attacker().prepare('DELETE FROM events WHERE seq = 1').run();
  t.equal(verifyChain(f.open(), f.pub).problem, 'missing record between 0 and 2 (deleted?)');
});

t.test('reordered records (contents swapped, with or without their hashes) are named', async (t) => {
  for (const columns of [['at', 'message_id', 'recipient', 'type', 'detail', 'prev_hash', 'hash'], ['at', 'message_id', 'recipient', 'type', 'detail']]) {
    const f = fixture(t);
    const a = f.attacker();
    const get = a.prepare('SELECT * FROM events WHERE seq = ?');
    const r3 = get.get(3) as Record<string, unknown>;
    const r4 = get.get(4) as Record<string, unknown>;
    const set = a.prepare(`UPDATE events SET ${columns.map((c) => `${c} = @${c}`).join(', ')} WHERE seq = @seq`);
    a.transaction(() => {
      set.run({ ...r4, seq: 3 });
      set.run({ ...r3, seq: 4 });
    })();
    const result = verifyChain(f.open(), f.pub);
    t.equal(result.problem, 'order broken at record 3: its contents belong at record 4 (reordered?)', columns.join(','));
  }
});

t.test('a truncated tail is detected through the last signed checkpoint', async (t) => {
  const f = fixture(t);
  f.attacker().prepare('DELETE FROM events WHERE seq >= 5').run();
  const result = verifyChain(f.open(), f.pub);
  t.equal(result.problem, 'chain ends at record 4 but checkpoint 1 (2026-01-05T09:00:06.000Z) names record 6 (truncated?)');
  const run = await zegel(['audit', 'verify', '--config', configFile(t, f.dataDir)]);
  t.equal(run.code, 1);
  t.match(run.stdout, /truncated/);
});

/** Edits record 2 and recomputes every hash after it, as someone who knows the scheme would. */
function rewrite(a: Database.Database): void {
  a.prepare(`UPDATE events SET detail = ? WHERE seq = 2`).run(JSON.stringify({ decision: 'deliver' }));
  const rows = a.prepare('SELECT * FROM events ORDER BY seq').all() as Array<ChainFields & { prev_hash: string; hash: string }>;
  let prev = GENESIS_HASH;
  const set = a.prepare('UPDATE events SET prev_hash = ?, hash = ? WHERE seq = ?');
  for (const r of rows) {
    const hash = chainHash(prev, r);
    set.run(prev, hash, r.seq);
    prev = hash;
  }
}

t.test('a chain rewritten with recomputed hashes is detected through the checkpoint', async (t) => {
  const f = fixture(t);
  const a = f.attacker();
  rewrite(a);
  t.equal(verifyChain(f.open(), f.pub).problem, 'checkpoint 1 (2026-01-05T09:00:06.000Z): record 6 does not have the hash it signed (chain rewritten?)');
  // the attacker also moves the checkpoint to the new head hash: its signature no longer fits
  const head = a.prepare('SELECT hash FROM events WHERE seq = 6').get() as { hash: string };
  a.prepare('UPDATE audit_checkpoints SET hash = ? WHERE id = 1').run(head.hash);
  t.equal(verifyChain(f.open(), f.pub).problem, 'checkpoint 1 (record 6, 2026-01-05T09:00:06.000Z): signature invalid (rewritten, or signed with another key?)');
  // and re-signs with a key of their own: the public key kept elsewhere does not verify it
  const { privateKey } = crypto.generateKeyPairSync('ed25519');
  const own = path.join(path.dirname(f.dataDir), 'attacker.pem');
  fs.writeFileSync(own, privateKey.export({ type: 'pkcs8', format: 'pem' }));
  a.prepare('DELETE FROM audit_checkpoints').run();
  a.close();
  const db = openDb(f.dataDir);
  createCheckpoint(db, privateKey, Date.UTC(2026, 0, 5, 9, 0, 6));
  db.close();
  t.match(verifyChain(f.open(), f.pub).problem, /^checkpoint 2 \(record 6, .*\): signature invalid/);
  const pubFile = path.join(path.dirname(f.dataDir), 'audit.pub');
  fs.writeFileSync(pubFile, publicKeyPem(f.key));
  const run = await zegel(['audit', 'verify', '--public-key', pubFile, '--config', configFile(t, f.dataDir)]);
  t.equal(run.code, 1);
  t.match(run.stdout, /^audit chain broken: checkpoint 2 \(record 6, .*\): signature invalid/);
});

t.test('records after the last checkpoint are counted as unsigned; a new checkpoint covers them', async (t) => {
  const f = fixture(t);
  const db = f.open();
  db.prepare('INSERT INTO events (at, message_id, recipient, type, detail) VALUES (?, ?, ?, ?, ?)').run(Date.now(), 'q2', null, 'received', '{}');
  let result = verifyChain(db, f.pub);
  t.ok(result.ok);
  t.equal(result.unsigned, 1);
  t.equal(createCheckpoint(db, f.key, Date.now())?.seq, 7);
  t.equal(createCheckpoint(db, f.key, Date.now()), undefined, 'nothing new to sign');
  result = verifyChain(db, f.pub);
  t.equal(result.unsigned, 0);
  t.equal(result.checkpoints, 2);
});

t.test('events from before the audit migration are chained by it, deterministically', async (t) => {
  const dataDirs = [0, 1].map(() => path.join(tempDir(t, 'zegel-audit-old-'), 'data'));
  const hashes: string[][] = [];
  for (const dataDir of dataDirs) {
    fs.mkdirSync(dataDir, { recursive: true });
    // a database as the release before the audit trail left it: the events table of migration 1, user_version 7
    const old = new Database(path.join(dataDir, 'zegel.db'));
    old.exec(`
      CREATE TABLE events (seq INTEGER PRIMARY KEY AUTOINCREMENT, at INTEGER NOT NULL, message_id TEXT, recipient TEXT, type TEXT NOT NULL, detail TEXT NOT NULL);
      CREATE TRIGGER events_no_update BEFORE UPDATE ON events BEGIN SELECT RAISE(ABORT, 'events are append-only'); END;
      CREATE TRIGGER events_no_delete BEFORE DELETE ON events BEGIN SELECT RAISE(ABORT, 'events are append-only'); END;
      INSERT INTO events (at, message_id, recipient, type, detail) VALUES (1000, 'q1', NULL, 'received', '{"clientIp":"192.0.2.1"}');
      INSERT INTO events (at, message_id, recipient, type, detail) VALUES (2000, 'q1', 'a@b.nl', 'delivered', '{}');
    `);
    old.pragma('user_version = 7');
    old.close();
    const db = openDb(dataDir);
    db.prepare('INSERT INTO events (at, message_id, recipient, type, detail) VALUES (?, ?, ?, ?, ?)').run(3000, 'q2', null, 'received', '{}');
    const { key } = loadSigningKey({ dataDir, create: true });
    t.ok(verifyChain(db, crypto.createPublicKey(key)).ok);
    hashes.push((db.prepare('SELECT hash FROM events ORDER BY seq').all() as Array<{ hash: string }>).map((r) => r.hash));
    db.close();
  }
  t.equal(hashes[0]!.length, 3);
  t.same(hashes[0], hashes[1]);
});

t.test('events from a real relay run over SMTP are chained, and the relay signs checkpoints', async (t) => {
  const sink = await startSink(t);
  const clock = new ManualClock(Date.now());
  const { relay, port, dataDir } = await startRelay(t, { delivery: { target: sink.url } }, { clock });
  const transport = nodemailer.createTransport({ host: '127.0.0.1', port, secure: false, ignoreTLS: true });
  t.teardown(() => transport.close());
  const info = await transport.sendMail({ envelope: { from: 'jan@org.test', to: ['a@example.com'] }, raw: 'From: jan@org.test\r\nTo: a@example.com\r\nSubject: hallo\r\nMessage-ID: <audit-1@org.test>\r\n\r\nGewoon een bericht.\r\n' });
  const id = /queued as (\S+)$/.exec(info.response)![1]!;
  await waitFor(() => storeView(relay.sqlite).getMessage(id)?.state === 'done', 10_000, 'message done');
  const db = relay.sqlite.db;
  const rows = db.prepare('SELECT * FROM events WHERE message_id = ? ORDER BY seq').all(id) as Array<ChainFields & { prev_hash: string | null; hash: string | null }>;
  t.ok(rows.length >= 3);
  t.ok(rows.every((r) => r.hash && r.prev_hash), 'every event carries its hashes');
  t.match(JSON.parse(rows[0]!.detail), { clientIp: '127.0.0.1' }, 'the received event names the client IP');
  t.ok(fs.statSync(path.join(dataDir, 'audit-signing.pem')).mode % 0o1000 === 0o600, 'the signing key made at first start is 0600');
  const cp = await relay.audit!.checkpoint({ force: true });
  t.ok(cp);
  const { key } = loadSigningKey({ dataDir, create: false });
  const result = verifyChain(db, crypto.createPublicKey(key));
  t.ok(result.ok, result.problem ?? "intact");
  t.ok(result.checkpoints >= 1);
  // a stopping relay signs the head: nothing it wrote is left unsigned
  await relay.stop(2_000);
  const after = openDb(dataDir);
  t.teardown(() => after.close());
  const final = verifyChain(after, crypto.createPublicKey(key));
  t.ok(final.ok, final.problem ?? 'intact');
  t.equal(final.unsigned, 0);
});

t.test('retention: records past retention.audit go from the start of the chain, signed first; a hand-made cut is detected', async (t) => {
  const f = fixture(t);
  const db = f.open();
  const base = Date.UTC(2026, 0, 5, 9, 0, 0);
  // records 1-3 are older than 2.5 s before base + 5.5 s
  const result = await purgeAudit(db, f.key, base + 5500, 3000);
  t.same(result, { removed: 3, anchor: { seq: 3, hash: (result.anchor?.hash ?? '') } });
  t.same((db.prepare('SELECT seq FROM events ORDER BY seq').all() as Array<{ seq: number }>).map((r) => r.seq), [4, 5, 6, 7]);
  t.match(db.prepare('SELECT type, detail FROM events WHERE seq = 7').get(), { type: 'audit-purged', detail: /"through":3/ });
  t.throws(() => db.prepare('DELETE FROM events WHERE seq = 4').run(), /append-only/, 'the delete trigger is back');
  let verified = verifyChain(db, f.pub);
  t.ok(verified.ok, verified.problem ?? 'intact');
  t.equal(verified.records, 4);
  t.same(await purgeAudit(db, f.key, base + 5500, 3000), { removed: 0 }, 'nothing more past retention');

  // an attacker cuts record 4 as well and moves the anchor to it: no signed checkpoint names it
  const a = f.attacker();
  const r4 = a.prepare('SELECT seq, hash FROM events WHERE seq = 4').get() as { seq: number; hash: string };
  a.prepare('DELETE FROM events WHERE seq = 4').run();
  a.prepare('UPDATE audit_anchor SET seq = ?, hash = ? WHERE id = 1').run(r4.seq, r4.hash);
  verified = verifyChain(f.open(), f.pub);
  t.equal(verified.problem, 'the chain starts after record 4, but no signed checkpoint names that record (records removed from the start?)');
  // or removes the anchor: the chain no longer starts at the genesis
  a.prepare('DELETE FROM audit_anchor').run();
  t.equal(verifyChain(f.open(), f.pub).problem, 'missing record between 0 and 5 (deleted?)');
});
