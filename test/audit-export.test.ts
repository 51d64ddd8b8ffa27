import fs from 'node:fs';
import path from 'node:path';
import t, { type Test } from 'tap';
import { amsterdamTime, csvCell } from '../src/audit/export.js';
import { parseMoment } from '../src/cli/audit-commands.js';
import { openDb } from '../src/store/db.js';
import { runZegel } from './helpers/child-relay.js';
import { tempDir } from './helpers/relay.js';

/*
 * `zegel audit` through the built CLI (npm run build first): JSON lines and
 * CSV for a spreadsheet in Dutch locale, with the filters.
 */


const zegel = (args: string[]) => runZegel(args);

// winter (CET, +1) and summer (CEST, +2) moments
const JAN = Date.UTC(2026, 0, 5, 9, 30, 0); // 10:30 in Amsterdam
const JUL = Date.UTC(2026, 6, 1, 22, 15, 0); // 2 July 00:15 in Amsterdam

function fixture(t: Test): { config: string } {
  const dir = tempDir(t, 'zegel-audit-export-');
  const dataDir = path.join(dir, 'data');
  const db = openDb(dataDir);
  const ins = db.prepare('INSERT INTO events (at, message_id, recipient, type, detail) VALUES (?, ?, ?, ?, ?)');
  ins.run(JAN, 'q1', null, 'received', JSON.stringify({ clientIp: '192.0.2.7', from: 'jan@org.test', recipients: 2 }));
  ins.run(JAN + 1000, 'q1', 'piet@extern.test', 'decided', JSON.stringify({ decision: 'encrypt', reason: 'bsn; iban' }));
  ins.run(JAN + 2000, 'q1', 'Klaas@Extern.test', 'decided', JSON.stringify({ decision: 'deliver' }));
  ins.run(JUL, 'q1', 'piet@extern.test', 'opened', JSON.stringify({ linkId: 'L1', clientIp: '198.51.100.9' }));
  ins.run(JUL + 1000, 'q1', 'piet@extern.test', 'revoked', JSON.stringify({ actor: 'sender', linkId: 'L1' }));
  ins.run(JUL + 2000, 'q2', '=HYPERLINK("http://x.test")@evil.test', 'received', JSON.stringify({ from: '+31@org.test' }));
  ins.run(JUL + 3000, 'q2', null, 'admin-action', JSON.stringify({ command: 'messages revoke' }));
  db.prepare(`INSERT INTO messages (id, received_at, mail_from, size, origin, state) VALUES ('q1', 0, '', 0, 'ingress', 'done')`).run();
  db.prepare(`INSERT INTO secure_messages (id, queue_id, sender, created_at, expires_at, state, blobs) VALUES ('S1', 'q1', 'jan@org.test', 0, 0, 'active', '[]')`).run();
  db.close();
  const config = path.join(dir, 'zegel.yaml');
  fs.writeFileSync(config, `data:\n  dir: ${JSON.stringify(dataDir)}\n`);
  return { config };
}

const lines = (text: string) => text.split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>);

t.test('JSON lines: every record, ISO times, actor and client IP lifted from the detail; filters', async (t) => {
  const { config } = fixture(t);
  let run = await zegel(['audit', '--config', config]);
  t.equal(run.code, 0, run.stderr);
  const all = lines(run.stdout);
  t.equal(all.length, 7);
  t.match(all[0], { seq: 1, at: '2026-01-05T09:30:00.000Z', messageId: 'q1', event: 'received', clientIp: '192.0.2.7', detail: { from: 'jan@org.test', recipients: 2 } });
  t.match(all[0]!.hash, /^[0-9a-f]{64}$/);
  t.match(all[4], { event: 'revoked', actor: 'sender', recipient: 'piet@extern.test' });
  t.match(all[6], { event: 'admin-action', actor: 'admin' });

  run = await zegel(['audit', '--config', config, '--recipient', 'KLAAS@extern.test']);
  t.same(lines(run.stdout).map((r) => r.seq), [3], 'recipient, case-insensitive');
  run = await zegel(['audit', '--config', config, '--event', 'decided']);
  t.same(lines(run.stdout).map((r) => r.seq), [2, 3]);
  run = await zegel(['audit', '--config', config, '--message', 'q2']);
  t.same(lines(run.stdout).map((r) => r.seq), [6, 7]);
  run = await zegel(['audit', '--config', config, '--message', 'S1']);
  t.same(lines(run.stdout).map((r) => r.seq), [1, 2, 3, 4, 5], 'a secure message id finds its queue id');
  // dates are midnight in Amsterdam: 2 July starts at 1 July 22:00 UTC
  run = await zegel(['audit', '--config', config, '--since', '2026-07-02']);
  t.same(lines(run.stdout).map((r) => r.seq), [4, 5, 6, 7]);
  run = await zegel(['audit', '--config', config, '--since', '2026-01-05T10:30:01+01:00', '--until', '2026-07-01']);
  t.same(lines(run.stdout).map((r) => r.seq), [2, 3]);
  run = await zegel(['audit', '--config', config, '--since', 'gisteren']);
  t.equal(run.code, 2);
  t.match(run.stderr, /ZEGEL_CLI_INPUT: --since "gisteren"/);
});

t.test('CSV for a Dutch spreadsheet: BOM, semicolons, CRLF, Amsterdam times, quotes, formula guard', async (t) => {
  const { config } = fixture(t);
  const run = await zegel(['audit', '--config', config, '--format', 'csv']);
  t.equal(run.code, 0, run.stderr);
  t.ok(run.stdout.startsWith('\uFEFF'), 'UTF-8 BOM');
  t.notOk(/[^\r]\n/.test(run.stdout), 'every line ends in CRLF');
  const rows = run.stdout.slice(1).split('\r\n');
  t.equal(rows.pop(), '', 'a final CRLF');
  t.equal(rows.length, 8);
  t.equal(rows[0], 'seq;tijd (Europe/Amsterdam);bericht;ontvanger;gebeurtenis;actor;client-ip;details;hash');
  t.match(rows[1], /^1;2026-01-05 10:30:00;q1;;received;;192\.0\.2\.7;"\{""clientIp"":""192\.0\.2\.7"",""from"":""jan@org\.test"",""recipients"":2\}";[0-9a-f]{64}$/);
  t.match(rows[2], /^2;2026-01-05 10:30:01;q1;piet@extern\.test;decided;;;"\{""decision"":""encrypt"",""reason"":""bsn; iban""\}";/, 'a semicolon inside a cell is quoted');
  t.match(rows[4], /^4;2026-07-02 00:15:00;q1;piet@extern\.test;opened;;198\.51\.100\.9;/, 'summer time');
  t.match(rows[5], /^5;2026-07-02 00:15:01;q1;piet@extern\.test;revoked;sender;;/);
  t.match(rows[6], /^6;2026-07-02 00:15:02;q2;"'=HYPERLINK\(""http:\/\/x\.test""\)@evil\.test";received;;;/, 'formula guard and quotes');

  const filtered = await zegel(['audit', '--config', config, '--format', 'csv', '--event', 'revoked']);
  t.equal(filtered.stdout.slice(1).split('\r\n').length, 3, 'header, one record, final CRLF');
});

t.test('cells, times and moments', async (t) => {
  t.equal(csvCell('=1+1'), "'=1+1");
  t.equal(csvCell('+31 6 1234'), "'+31 6 1234");
  t.equal(csvCell('-2'), "'-2");
  t.equal(csvCell('@SUM(A1)'), "'@SUM(A1)");
  t.equal(csvCell('a;b'), '"a;b"');
  t.equal(csvCell('zei "hoi"'), '"zei ""hoi"""');
  t.equal(csvCell('regel\nregel'), '"regel\nregel"');
  t.equal(csvCell(undefined), '');
  t.equal(csvCell(12), '12');
  t.equal(amsterdamTime(Date.UTC(2026, 2, 29, 0, 59, 59)), '2026-03-29 01:59:59', 'before the spring change');
  t.equal(amsterdamTime(Date.UTC(2026, 2, 29, 1, 0, 0)), '2026-03-29 03:00:00', 'after it');
  t.equal(parseMoment('2026-03-29', '--since'), Date.UTC(2026, 2, 28, 23, 0, 0));
  t.equal(parseMoment('2026-10-25', '--since'), Date.UTC(2026, 9, 24, 22, 0, 0), 'the day summer time ends starts in summer time');
  t.equal(parseMoment('2026-10-26', '--since'), Date.UTC(2026, 9, 25, 23, 0, 0));
  t.equal(parseMoment('7d', '--since', 1_000_000_000_000), 1_000_000_000_000 - 7 * 86400e3);
  t.throws(() => parseMoment('morgen', '--until'), { code: 'ZEGEL_CLI_INPUT' });
});
