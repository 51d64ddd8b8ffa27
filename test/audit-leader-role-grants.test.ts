import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { pino } from 'pino';
import t from 'tap';
import { ManualClock, systemClock } from '../src/clock.js';
import type { PgPool } from '../src/store/pg/connect.js';
import { PgEventLog } from '../src/store/pg/events.js';
import { PgTransactor } from '../src/store/pg/tx.js';
import { denied, startRoleDatabase } from './helpers/pg-roles.js';
import { pgAuditWorker } from './helpers/pg-audit-worker.js';
import { tempDir } from './helpers/relay.js';

/*
 * The audit timer's grants: a login in zegel_worker takes the lead (the
 * advisory lock and its session's keep-alive settings need no grant), signs
 * and purges past retention; logins in zegel_smtp and zegel_reader may take
 * the lock but are refused the checkpoint, so the relay runs the timer (and
 * its checkpoint at stop) only on nodes with the worker role (or all).
 */
const db = await startRoleDatabase(t);
const log = pino({ level: 'silent' });
const dir = tempDir(t, 'zegel-audit-roles-');
const keyFile = path.join(dir, 'audit-signing.pem');
fs.writeFileSync(keyFile, crypto.generateKeyPairSync('ed25519').privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600 });

// ten records from two days ago, one from now
const old = new ManualClock(Date.now() - 2 * 86_400_000);
const ownerLog = new PgEventLog(db.owner, old);
const ownerTx = new PgTransactor(db.owner);
for (let i = 0; i < 10; i++) await ownerTx.transaction((tx) => ownerLog.append(tx, { messageId: null, type: 'rules-reloaded', detail: { i } }));
await ownerTx.transaction((tx) => new PgEventLog(db.owner, systemClock).append(tx, { messageId: null, type: 'rules-reloaded', detail: { now: true } }));

function worker(pool: PgPool) {
  const { worker: w, leader } = pgAuditWorker(pool, { signingKeyFile: keyFile, intervalMs: 60_000, retentionMs: 86_400_000, log });
  t.teardown(() => w.stop());
  return { leader, w };
}

t.test('zegel_worker: leads, purges past retention and signs', async (t) => {
  const { leader, w } = worker(await db.login('zegel_worker', 'audit_worker'));
  t.equal(await leader.lead(), true, 'takes the lead');
  await w.run();
  t.same(w.stats, { led: 1, skipped: 0 });
  const [left] = await db.owner.query<{ n: string }>('SELECT count(*) AS n FROM events').then((r) => r.rows);
  t.equal(Number(left!.n), 2, 'the ten old records are gone (the recent one and the audit-purged record stay)');
  const [cps] = await db.owner.query<{ n: string }>('SELECT count(*) AS n FROM audit_checkpoints').then((r) => r.rows);
  t.equal(Number(cps!.n), 3, 'signed: the head before the cut, the anchor, the head after');
  w.stop();
});

t.test('zegel_smtp and zegel_reader: may hold the lock, may not sign', async (t) => {
  for (const role of ['zegel_smtp', 'zegel_reader'] as const) {
    const pool = await db.login(role, `audit_${role.slice(6)}`);
    const { leader, w } = worker(pool);
    t.equal(await leader.lead(), true, `${role}: takes the free lock`);
    t.ok(await denied(w.checkpoint({ force: true })), `${role}: the checkpoint is refused`);
    w.stop();
  }
});
