import fs from 'node:fs';
import path from 'node:path';
import t, { type Test } from 'tap';
import { stringify } from 'yaml';
import { ManualClock } from '../src/clock.js';
import { type CliRun, runZegel } from './helpers/child-relay.js';
import { openLink, sendSecure, setupSecure, type Sent } from './helpers/secure-messages.js';
import { tempDir } from './helpers/relay.js';

/*
 * `zegel messages list|show|revoke` through the built CLI (npm run build
 * first), as a child process on a data directory that a relay filled over
 * SMTP and was then stopped. Never content, never keys; unknown ids and
 * recipients are one named line on stderr with exit 1. Each command first
 * says on stderr which data directory it reads (checked here on every run, then
 * left out of stderr for the other checks).
 */

let expectedDataDirLine = '';

const zegel = async (args: string[], cwd: string): Promise<CliRun> => {
  const r = await runZegel(args, { cwd });
  const line = /^zegel: data directory .*\n/.exec(r.stderr)?.[0];
  if (line && line !== expectedDataDirLine) throw new Error(`unexpected data directory line: ${line}`);
  return line ? { ...r, stderr: r.stderr.slice(line.length) } : r;
};

interface Fixture {
  dataDir: string;
  cli: (args: string[]) => Promise<CliRun>;
  first: Sent;
  second: Sent;
}

/** Two secure messages from two senders, one opened by its first recipient; the relay is stopped afterwards. */
async function fixture(t: Test): Promise<Fixture> {
  const dir = tempDir(t, 'zegel-messages-');
  const dataDir = path.join(dir, 'state');
  const clock = new ManualClock(Date.now());
  const s = await setupSecure(t, {}, { dataDir, clock });
  const first = await sendSecure(s, ['piet@extern.test', 'klaas@extern.test']);
  const second = await sendSecure(s, ['kees@extern.test'], { from: 'marie@zorg.test', subject: 'Verwijzing [verloopt:7d]' });
  const link = first.links[0]!;
  // piet opens the link page; the open times a passed check would set are written directly
  await openLink(s, link.linkId);
  s.relay.relay.sqlite.db.prepare('UPDATE secure_links SET first_opened_at = ?, last_opened_at = ? WHERE id = ?').run(clock.now(), clock.now() + 60_000, link.linkId);
  await s.relay.relay.stop(2_000);
  const config = path.join(dir, 'zegel.yaml');
  fs.writeFileSync(config, stringify({ data: { dir: 'state' } }));
  expectedDataDirLine = `zegel: data directory ${dataDir} (data.dir of ${config})\n`;
  const cwd = path.join(dir, 'elsewhere');
  fs.mkdirSync(cwd);
  return { dataDir, first, second, cli: (args) => zegel([...args, '--config', config], cwd) };
}

t.test('list, show and revoke, human and --json', async (t) => {
  const f = await fixture(t);

  let r = await f.cli(['messages', 'list', '--json']);
  t.equal(r.code, 0, r.stderr);
  const list = JSON.parse(r.stdout) as Array<Record<string, unknown>>;
  t.equal(list.length, 2);
  t.same(Object.keys(list[0]!), ['id', 'queueId', 'createdAt', 'sender', 'state', 'recipients', 'expiresAt', 'revokeAt', 'purgedAt'], 'stable keys');
  const first = list.find((m) => m.id === f.first.secureId)!;
  t.match(first, { queueId: f.first.queueId, sender: 'jan@zorg.test', state: 'active', recipients: 2, revokeAt: null, purgedAt: null });
  t.match(first.createdAt, /^\d{4}-\d\d-\d\dT/);

  r = await f.cli(['messages', 'list', '--json', '--sender', 'Marie@zorg.test']);
  t.same((JSON.parse(r.stdout) as Array<{ id: string }>).map((m) => m.id), [f.second.secureId], '--sender filters, case-insensitive');
  r = await f.cli(['messages', 'list', '--json', '--since', '1h']);
  t.equal((JSON.parse(r.stdout) as unknown[]).length, 2, '--since 1h');
  r = await f.cli(['messages', 'list', '--json', '--since', '2999-01-01']);
  t.same(JSON.parse(r.stdout), [], '--since a future date: none');
  r = await f.cli(['messages', 'list', '--since', 'gisteren']);
  t.equal(r.code, 1);
  t.match(r.stderr, /^zegel: ZEGEL_CLI_INPUT: --since "gisteren"/);

  r = await f.cli(['messages', 'list']);
  t.equal(r.code, 0, r.stderr);
  t.match(r.stdout, /^ID\s+CREATED \(UTC\)\s+SENDER\s+STATE\s+RCPT\s+EXPIRES \(UTC\)\n/);
  t.match(r.stdout, new RegExp(`${f.first.secureId}\\s+\\S+ \\S+\\s+jan@zorg.test\\s+active\\s+2\\s`));

  r = await f.cli(['messages', 'show', f.first.queueId, '--json']);
  t.equal(r.code, 0, r.stderr);
  const show = JSON.parse(r.stdout) as { id: string; blobs: number; recipients: Array<Record<string, unknown>> };
  t.equal(show.id, f.first.secureId, 'found by queue id');
  t.same(Object.keys(show), ['id', 'queueId', 'createdAt', 'sender', 'state', 'expiresAt', 'revokeAt', 'purgedAt', 'threadId', 'blobs', 'recipients']);
  t.equal(show.blobs, 2, 'body and attachment');
  t.equal(show.recipients.length, 2);
  const [piet, klaas] = show.recipients;
  t.same(Object.keys(piet!), ['address', 'method', 'linkId', 'linkState', 'revokeAt', 'notification', 'firstOpenedAt', 'lastOpenedAt', 'downloads', 'replies']);
  t.match(piet, { address: 'piet@extern.test', method: 'email-code', linkId: f.first.links[0]!.linkId, linkState: 'active', downloads: 0, replies: 0 });
  t.match(piet!.notification, { id: `${f.first.queueId}-n0`, state: 'delivered' });
  t.match(piet!.firstOpenedAt, /^\d{4}-/);
  t.match(klaas, { address: 'klaas@extern.test', firstOpenedAt: null, lastOpenedAt: null });
  for (const secret of ['wrap', 'kSrv', 'k_srv', '123456782', 'BSN', 'verslag']) t.notOk(r.stdout.includes(secret), `show does not print ${secret}`);

  r = await f.cli(['messages', 'show', f.first.secureId]);
  t.equal(r.code, 0, r.stderr);
  t.match(r.stdout, /^message\s+\S+ \(queue id \S+\)\nsender\s+jan@zorg.test\n/);
  t.match(r.stdout, /piet@extern.test\s+email-code\s+link active\s+notification delivered\s+opened/);
  t.match(r.stdout, /klaas@extern.test\s+email-code\s+link active\s+notification delivered\s+not opened\s+0 downloads/);

  // errors: one named line, exit 1
  for (const args of [
    ['messages', 'show', 'nope'],
    ['messages', 'revoke', 'nope'],
  ]) {
    r = await f.cli(args);
    t.equal(r.code, 1, args.join(' '));
    t.match(r.stderr, /^zegel: ZEGEL_MESSAGE_NOT_FOUND: no secure message (and no queued message )?nope\n$/);
    t.equal(r.stdout, '');
  }
  r = await f.cli(['messages', 'revoke', f.first.secureId, '--recipient', 'jan@elders.test']);
  t.equal(r.code, 1);
  t.equal(r.stderr, `zegel: ZEGEL_RECIPIENT_NOT_FOUND: jan@elders.test is not a recipient of ${f.first.secureId}\n`);
  r = await f.cli(['messages', 'revoke']);
  t.equal(r.code, 2, 'a missing argument is a usage error');

  // revoke one recipient, then the rest
  r = await f.cli(['messages', 'revoke', f.first.secureId, '--recipient', 'Piet@Extern.test']);
  t.equal(r.code, 0, r.stderr);
  t.equal(r.stdout, `revoked ${f.first.secureId} for piet@extern.test\n`);
  const blobDir = path.join(f.dataDir, 'blobs', f.first.secureId);
  t.ok(fs.existsSync(blobDir), 'ciphertext stays while klaas can read');
  r = await f.cli(['messages', 'revoke', f.first.queueId, '--json']);
  t.equal(r.code, 0, r.stderr);
  t.same(JSON.parse(r.stdout), { id: f.first.secureId, queueId: f.first.queueId, revoked: [{ linkId: f.first.links[1]!.linkId, address: 'klaas@extern.test' }], state: 'revoked', purged: true });
  t.notOk(fs.existsSync(blobDir), 'no blob files left for the message');
  t.ok(fs.existsSync(path.join(f.dataDir, 'blobs', f.second.secureId)), 'the other message is untouched');
  r = await f.cli(['messages', 'revoke', f.first.secureId]);
  t.equal(r.code, 0);
  t.equal(r.stdout, `nothing to revoke: ${f.first.secureId} is already revoked\nno recipient can open it any more: keys and ciphertext are deleted\n`);

  r = await f.cli(['messages', 'show', f.first.secureId, '--json']);
  const after = JSON.parse(r.stdout) as { state: string; purgedAt: string | null; blobs: number; recipients: Array<{ linkState: string }> };
  t.equal(after.state, 'revoked');
  t.match(after.purgedAt, /^\d{4}-/);
  t.equal(after.blobs, 0);
  t.same(after.recipients.map((x) => x.linkState), ['revoked', 'revoked']);

  // the audit trail: revoked by admin, and the operator's action
  const Database = (await import('better-sqlite3')).default;
  const db = new Database(path.join(f.dataDir, 'zegel.db'), { readonly: true });
  t.teardown(() => db.close());
  const events = db.prepare(`SELECT type, recipient, detail FROM events WHERE message_id = ? AND type IN ('revoked', 'purged', 'admin-action') ORDER BY seq`).all(f.first.queueId) as Array<{ type: string; recipient: string | null; detail: string }>;
  t.same(
    events.map((e) => [e.type, e.recipient, JSON.parse(e.detail).actor ?? JSON.parse(e.detail).command ?? JSON.parse(e.detail).reason]),
    [
      ['revoked', 'piet@extern.test', 'admin'],
      ['admin-action', 'piet@extern.test', 'messages revoke'],
      ['revoked', 'klaas@extern.test', 'admin'],
      ['purged', null, 'revoked'],
      ['admin-action', null, 'messages revoke'],
      ['admin-action', null, 'messages revoke'],
    ],
  );
  const keys = db.prepare('SELECT wrap, k_srv FROM secure_links WHERE message_id = ?').all(f.first.secureId);
  t.same(keys, [{ wrap: null, k_srv: null }, { wrap: null, k_srv: null }], 'keys shredded');
});

t.test('help documents the --json shapes', async (t) => {
  const dir = tempDir(t);
  for (const [command, needle] of [
    ['list', '"recipients": number'],
    ['show', '"linkState"'],
    ['revoke', '"purged": boolean'],
  ] as const) {
    const r = await zegel(['messages', command, '--help'], dir);
    t.equal(r.code, 0);
    t.ok(r.stdout.includes(needle), `${command} --help shows ${needle}`);
  }
});
