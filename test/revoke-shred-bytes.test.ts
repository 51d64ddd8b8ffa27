import Database from 'better-sqlite3';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import t, { type Test } from 'tap';
import { stringify } from 'yaml';
import { cleanEnv, runZegel } from './helpers/child-relay.js';
import { tempDir, waitFor } from './helpers/relay.js';
import { sendSecure, setupSecure, type SecureSetup, type Sent } from './helpers/secure-messages.js';

/*
 * Revocation, expiry and purge shred at the byte level: after them, no file
 * under data.dir (the database, its -wal and -shm, anything else) holds the
 * shredded wrap W_r or K_srv_r (nor the sender's W_s and K_srv_s of a purged
 * message) in any encoding, raw, hex, base64 or base64url, while the keys of a
 * recipient that was not revoked are still found (so the scan can find them).
 * Revocation goes through the real paths: `zegel messages revoke` as a child
 * process next to the running relay, and the relay's own revocation API. A
 * reader that holds a read transaction open delays the shred; once it lets go
 * the shred completes without anyone revoking again.
 */

const DAY = 86_400_000;

interface Secret {
  what: string;
  bytes: Buffer;
}

/** Every stored key of a secure message: each link's wrap and K_srv, and the sender's. */
function secretsOf(s: SecureSetup, sent: Sent, only?: string): Secret[] {
  const db = s.relay.relay.sqlite.db;
  const out: Secret[] = [];
  for (const link of sent.links) {
    if (only !== undefined && link.address !== only) continue;
    const row = db.prepare('SELECT wrap, k_srv FROM secure_links WHERE id = ?').get(link.linkId) as { wrap: Buffer | null; k_srv: Buffer | null };
    if (!row.wrap || !row.k_srv) throw new Error(`${link.address}: no keys to read`);
    out.push({ what: `${link.address} wrap`, bytes: row.wrap }, { what: `${link.address} K_srv`, bytes: row.k_srv });
  }
  if (only === undefined) {
    const m = db.prepare('SELECT sender_wrap, sender_k_srv FROM secure_messages WHERE id = ?').get(sent.secureId) as { sender_wrap: Buffer | null; sender_k_srv: Buffer | null };
    if (m.sender_wrap) out.push({ what: 'sender wrap', bytes: m.sender_wrap });
    if (m.sender_k_srv) out.push({ what: 'sender K_srv', bytes: m.sender_k_srv });
  }
  return out;
}

function encodings(bytes: Buffer): Array<[string, Buffer]> {
  const b64 = bytes.toString('base64');
  return [
    ['raw', bytes],
    ['hex', Buffer.from(bytes.toString('hex'))],
    ['HEX', Buffer.from(bytes.toString('hex').toUpperCase())],
    ['base64', Buffer.from(b64)],
    ['base64 unpadded', Buffer.from(b64.replace(/=+$/, ''))],
    ['base64url', Buffer.from(bytes.toString('base64url'))],
  ];
}

/**
 * The scanner runs in a child process: opening and closing the database file
 * in this process would drop the POSIX locks the relay's connection (in this
 * process too) holds on it, and another process could then delete its WAL.
 */
const SCANNER = `
const fs = require('node:fs'), path = require('node:path');
const { dir, needles } = JSON.parse(fs.readFileSync(0, 'utf8'));
const files = fs.readdirSync(dir, { recursive: true, withFileTypes: true }).filter((e) => e.isFile())
  .map((e) => path.join(e.parentPath ?? e.path, e.name)).map((f) => ({ name: path.relative(dir, f), bytes: fs.readFileSync(f) }));
const found = [];
for (const n of needles) for (const f of files) if (f.bytes.includes(Buffer.from(n.hex, 'hex'))) found.push(n.label + ' in ' + f.name);
process.stdout.write(JSON.stringify(found));
`;

/** Where (file and encoding) each secret is found in the raw bytes of every file under data.dir. */
function scan(dataDir: string, secrets: Secret[]): string[] {
  const needles = secrets.flatMap((secret) => encodings(secret.bytes).map(([encoding, needle]) => ({ label: `${secret.what} (${encoding})`, hex: needle.toString('hex') })));
  const out = execFileSync(process.execPath, ['-e', SCANNER], { input: JSON.stringify({ dir: dataDir, needles }), env: cleanEnv() });
  return JSON.parse(out.toString('utf8')) as string[];
}

/** Files under data.dir with their sizes (for a failure's diagnostics; stat opens no file). */
function filesUnder(dir: string): string[] {
  return fs.readdirSync(dir, { recursive: true, withFileTypes: true }).filter((e) => e.isFile()).map((e) => path.join(e.parentPath, e.name));
}

/** True when every secret is found at least once (the scan's positive control). */
function allFound(dataDir: string, secrets: Secret[]): boolean {
  const found = scan(dataDir, secrets);
  return secrets.every((s) => found.some((f) => f.startsWith(`${s.what} (raw)`)));
}

/** The fixture: a relay with a sink, a CLI config for its data.dir, and a message to two recipients. */
async function fixture(t: Test, subject?: string) {
  const s = await setupSecure(t);
  const dir = tempDir(t, 'zegel-shred-');
  const config = path.join(dir, 'zegel.yaml');
  fs.writeFileSync(config, stringify({ data: { dir: s.relay.dataDir } }));
  const sent = await sendSecure(s, ['piet@extern.test', 'klaas@extern.test'], subject ? { subject } : {});
  const cli = (args: string[]) => runZegel([...args, '--config', config], { cwd: dir });
  return { s, sent, cli, dataDir: s.relay.dataDir };
}

t.test('zegel messages revoke for one of two recipients: its wrap and K_srv are in no file under data.dir, the other’s are', async (t) => {
  const { s, sent, cli, dataDir } = await fixture(t);
  const piet = secretsOf(s, sent, 'piet@extern.test');
  const klaas = secretsOf(s, sent, 'klaas@extern.test');
  t.ok(allFound(dataDir, [...piet, ...klaas]), 'before: the scan finds both recipients’ keys');

  const r = await cli(['messages', 'revoke', sent.secureId, '--recipient', 'piet@extern.test', '--json']);
  t.equal(r.code, 0, r.stderr);
  t.equal(r.stderr.replace(/^zegel: data directory .*\n/m, ''), '', 'no shred left waiting (stderr names only the data directory)');
  t.same(scan(dataDir, piet), [], 'piet’s wrap and K_srv: in no file, in no encoding');
  t.ok(allFound(dataDir, klaas), 'klaas’s wrap and K_srv are still found');

  // the relay writes on; nothing brings the old bytes back
  const other = await sendSecure(s, ['kees@extern.test']);
  const otherKeys = secretsOf(s, other);
  t.ok(allFound(dataDir, otherKeys), 'a new message’s keys are found', { found: scan(dataDir, otherKeys), files: filesUnder(dataDir).map((f) => `${f} ${fs.statSync(f).size}`), keys: otherKeys.map((k) => `${k.what} ${k.bytes.toString('hex')}`) });
  t.same(scan(dataDir, piet), [], 'piet’s still in no file');
});

t.test('revoking while another connection holds a read open: the shred completes once the reader lets go', async (t) => {
  const { s, sent, dataDir } = await fixture(t);
  const piet = secretsOf(s, sent, 'piet@extern.test');
  const klaas = secretsOf(s, sent, 'klaas@extern.test');
  t.ok(allFound(dataDir, [...piet, ...klaas]), 'before: both found');

  const reader = new Database(path.join(dataDir, 'zegel.db'));
  t.teardown(() => reader.close());
  reader.exec('BEGIN');
  t.equal((reader.prepare('SELECT COUNT(*) AS n FROM secure_links').get() as { n: number }).n, 2, 'the reader holds a snapshot');

  const result = await s.relay.relay.revocations.revokeLink(sent.links.find((l) => l.address === 'piet@extern.test')!.linkId, 'sender');
  t.equal(result.revoked.length, 1, 'revoked (the commit does not wait for the reader)');
  t.equal(s.relay.relay.sqlite.shredder.pending, true, 'the WAL checkpoint waits for the reader');
  t.ok(allFound(dataDir, piet), 'while the reader holds its snapshot the old page is still on disk');

  reader.exec('COMMIT');
  await waitFor(() => scan(dataDir, piet).length === 0, 60_000, 'the shred to complete after the reader let go');
  t.pass('piet’s keys are gone without another revoke');
  t.equal(s.relay.relay.sqlite.shredder.pending, false, 'no shred waits any more');
  t.ok(allFound(dataDir, klaas), 'klaas’s are still found');
});

t.test('the CLI revokes while a reader is open: the relay’s purge job finishes the shred', async (t) => {
  const { s, sent, cli, dataDir } = await fixture(t);
  const piet = secretsOf(s, sent, 'piet@extern.test');
  const klaas = secretsOf(s, sent, 'klaas@extern.test');

  const reader = new Database(path.join(dataDir, 'zegel.db'));
  t.teardown(() => reader.close());
  // an iterator left mid-way holds the read snapshot, as a streaming export does
  const rows = reader.prepare('SELECT id FROM secure_links').iterate();
  t.notOk(rows.next().done, 'the reader is mid-way');

  const r = await cli(['messages', 'revoke', sent.secureId, '--recipient', 'piet@extern.test']);
  t.equal(r.code, 0, r.stderr);
  t.match(r.stderr, /finishes erasing the revoked keys/, 'the CLI says the relay finishes it');
  const db = s.relay.relay.sqlite.db;
  t.ok(db.prepare(`SELECT 1 FROM jobs WHERE kind = 'purge' AND id LIKE 'purge-at:%'`).get(), 'a one-off purge job is queued');
  t.ok(allFound(dataDir, piet), 'the old page is still on disk while the reader is mid-way');

  // the relay runs the job (its clock moves on to the CLI's time); the reader still holds, so its shredder keeps trying
  s.clock.advance(60_000);
  s.relay.relay.backend.queue.poke();
  await waitFor(() => !db.prepare(`SELECT 1 FROM jobs WHERE id LIKE 'purge-at:%'`).get(), 20_000, 'the one-off purge job to run');
  rows.return?.();
  await waitFor(() => scan(dataDir, piet).length === 0, 60_000, 'the shred to complete');
  t.pass('piet’s keys are gone');
  t.ok(allFound(dataDir, klaas), 'klaas’s are still found');
});

t.test('expiry and purge: no key of the expired or revoked message is left in any file; the other message’s are', async (t) => {
  const { s, sent: expiring, cli, dataDir } = await fixture(t, 'Uitslag [verloopt:1d]');
  const revoked = await sendSecure(s, ['jet@extern.test', 'kees@extern.test'], { subject: 'Verwijzing [verloopt:7d]' });
  const kept = await sendSecure(s, ['wim@extern.test'], { subject: 'Verslag [verloopt:7d]' });
  const expiringKeys = secretsOf(s, expiring);
  const revokedKeys = secretsOf(s, revoked);
  const keptKeys = secretsOf(s, kept);
  t.ok(expiringKeys.some((k) => k.what === 'sender K_srv'), 'the sender’s status keys are among them');
  t.ok(allFound(dataDir, [...expiringKeys, ...revokedKeys, ...keptKeys]), 'before: every key found');

  // expiry: the relay's purge job after a day
  s.clock.advance(DAY + 60_000);
  s.relay.relay.backend.queue.poke();
  await waitFor(() => (s.relay.relay.sqlite.db.prepare('SELECT state FROM secure_messages WHERE id = ?').get(expiring.secureId) as { state: string }).state === 'expired', 20_000, 'expiry');
  await s.relay.relay.backend.queue.idle();
  await waitFor(() => scan(dataDir, expiringKeys).length === 0, 20_000, 'the expired message’s keys to be gone');
  t.pass('expired: both wraps, both K_srv and the sender’s keys are in no file');

  // purge: revoking every recipient purges the message
  const r = await cli(['messages', 'revoke', revoked.secureId, '--json']);
  t.equal(r.code, 0, r.stderr);
  t.equal((JSON.parse(r.stdout) as { purged: boolean }).purged, true, 'purged');
  t.same(scan(dataDir, revokedKeys), [], 'purged: every key of it is in no file');
  t.ok(allFound(dataDir, keptKeys), 'the other message’s keys are still found');
});
