import crypto from 'node:crypto';
import t from 'tap';
import { ManualClock } from '../src/clock.js';
import type { IncomingMessage } from '../src/store/messages.js';
import { PgAuditTrail } from '../src/store/pg/audit.js';
import type { PgPool } from '../src/store/pg/connect.js';
import { PgDirectory } from '../src/store/pg/directory.js';
import { PgEventLog } from '../src/store/pg/events.js';
import { PgMessageRepository } from '../src/store/pg/messages.js';
import { PgTransactor } from '../src/store/pg/tx.js';
import { denied, startRoleDatabase, type GroupRole } from './helpers/pg-roles.js';

/**
 * The group roles of migration 001 (docs/cluster.md, "Roles and grants")
 * against what the PostgreSQL repositories actually run: each node role can
 * do its own steps (row locks, the chain trigger's reads, the retention
 * cut), and is refused the steps of another.
 */
const { owner, login: loginAs } = await startRoleDatabase(t);
const clock = new ManualClock(Date.UTC(2026, 0, 5, 9, 0, 0));

interface Node {
  pool: PgPool;
  store: PgTransactor;
  events: PgEventLog;
  messages: PgMessageRepository;
  directory: PgDirectory;
  audit: PgAuditTrail;
}

async function login(role: GroupRole): Promise<Node> {
  const pool = await loginAs(role, `${role}_node`);
  const store = new PgTransactor(pool);
  const events = new PgEventLog(pool, clock);
  return { pool, store, events, messages: new PgMessageRepository(pool, events, clock), directory: new PgDirectory(pool, store, clock), audit: new PgAuditTrail(pool, store, events) };
}

const [smtp, worker, reader] = [await login('zegel_smtp'), await login('zegel_worker'), await login('zegel_reader')];

function message(id: string, overrides: Partial<IncomingMessage> = {}): IncomingMessage {
  return { id, receivedAt: clock.now(), mailFrom: 'jan@org.test', size: 10, origin: 'ingress', messageId: `<${id}@org.test>`, recipients: [{ address: 'a@example.nl' }, { address: 'b@example.nl' }], ...overrides };
}

t.test('the SMTP role takes mail in, and cannot go further', async (t) => {
  await smtp.store.transaction((tx) => smtp.messages.insertReceived(tx, message('q1')));
  t.equal((await smtp.messages.get('q1'))?.state, 'queued', 'intake, its recipients and its chained event');
  t.ok(await denied(smtp.store.transaction((tx) => smtp.messages.recordDecisions(tx, 'q1', [{ idx: 0, address: 'a@example.nl', decision: 'deliver', reason: 'x' }]))), 'no decisions (no row lock on messages)');
  t.ok(await denied(smtp.directory.resolve('a@example.nl', { method: 'email-code', language: 'nl' })), 'no directory');
});

t.test('the reader role makes its own mail and reads the directory, nothing more', async (t) => {
  await reader.store.transaction((tx) => reader.messages.insertReceived(tx, message('n1', { origin: 'notification', messageId: '<n1@relay.test>' })));
  t.equal((await reader.messages.get('n1'))?.origin, 'notification', 'a relay-made message and its relay_mail record');
  await owner.query("INSERT INTO directory (target, method, updated_at) VALUES ('@example.nl', 'none', 1)");
  t.equal((await reader.directory.resolve('a@example.nl', { method: 'email-code', language: 'nl' })).method, 'none');
  t.ok(await denied(reader.directory.set('a@example.nl', { method: 'none' })), 'the directory is the owner’s to write');
  t.ok(await denied(reader.store.transaction((tx) => reader.messages.recordAttempt(tx, 'q1', [{ idx: 0, outcome: 'delivered', reply: '250' }]))), 'no delivery outcomes');
  t.ok(await denied(reader.audit.purge(crypto.generateKeyPairSync('ed25519').privateKey, clock.now() + 1000, 0)), 'no retention cut');
});

t.test('the worker role runs every job step, the checkpoint and the retention cut', async (t) => {
  const decisions = [
    { idx: 0, address: 'a@example.nl', decision: 'deliver' as const, reason: 'no findings' },
    { idx: 1, address: 'b@example.nl', decision: 'deliver' as const, reason: 'no findings' },
  ];
  await worker.store.transaction((tx) => worker.messages.recordDecisions(tx, 'q1', decisions));
  t.equal(await worker.store.transaction((tx) => worker.messages.recordAttempt(tx, 'q1', [{ idx: 0, outcome: 'delivered', reply: '250 ok' }])), 1);
  t.equal(await worker.store.transaction((tx) => worker.messages.giveUp(tx, 'q1', 'deleted by an admin')), true);
  t.equal(await worker.store.transaction((tx) => worker.messages.claimRelayOrigin(tx, 'back1', '<n1@relay.test>', ['a@example.nl', 'b@example.nl'])), true);
  const key = crypto.generateKeyPairSync('ed25519').privateKey;
  t.ok(await worker.audit.checkpoint(key, clock.now()), 'signs the head');
  clock.advance(86_400_000);
  const purged = await worker.audit.purge(key, clock.now(), 1000);
  t.ok(purged.removed >= 4, `cuts the start of the chain (${purged.removed} records)`);
  const result = await worker.audit.verify(crypto.createPublicKey(key));
  t.ok(result.ok, result.problem ?? 'the chain the three roles wrote verifies');
  t.ok(await denied(worker.directory.set('a@example.nl', { method: 'none' })), 'the directory is the owner’s to write');
});
