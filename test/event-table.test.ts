import t from 'tap';
import { storeView } from './helpers/store-view.js';
import nodemailer from 'nodemailer';
import { ManualClock } from '../src/clock.js';
import { canonicalJson } from '../src/store/events.js';
import { startRelay, waitFor } from './helpers/relay.js';
import { startSink } from './helpers/sink.js';

const CANARY_BODY = 'KANARIE-body-5e1f0c2a9d';
const CANARY_SUBJECT = 'KANARIE-subject-77b3e0';
const CANARY_FILE = 'KANARIE-bijlage-4c9d21.txt';

function rawMessage(n: number): string {
  const boundary = 'grens-0123456789';
  return [
    'From: Jan <jan@org.test>',
    'To: <a@example.com>, <b@example.net>',
    `Subject: Vertrouwelijk ${CANARY_SUBJECT}`,
    `Message-ID: <events-${n}@org.test>`,
    'MIME-Version: 1.0',
    `Content-Type: multipart/mixed; boundary="${boundary}"`,
    '',
    `--${boundary}`,
    'Content-Type: text/plain; charset=utf-8',
    '',
    `Het geheime woord is ${CANARY_BODY}.`,
    `--${boundary}`,
    `Content-Type: text/plain; charset=utf-8; name="${CANARY_FILE}"`,
    `Content-Disposition: attachment; filename="${CANARY_FILE}"`,
    'Content-Transfer-Encoding: base64',
    '',
    Buffer.from(`notities ${CANARY_BODY}`).toString('base64'),
    `--${boundary}--`,
    '',
  ].join('\r\n');
}

const CANARIES = [CANARY_BODY, CANARY_SUBJECT, CANARY_FILE, Buffer.from(`%PDF-1.4 ${CANARY_BODY}`).toString('base64')];

t.test('a delivered message leaves received, classified, decided and delivered events, with no content in them', async (t) => {
  const sink = await startSink(t);
  const clock = new ManualClock(Date.now());
  const { relay, port, logs } = await startRelay(t, { delivery: { target: sink.url } }, { clock });
  const transport = nodemailer.createTransport({ host: '127.0.0.1', port, secure: false, ignoreTLS: true });
  t.teardown(() => transport.close());
  const ids: string[] = [];
  for (const n of [1, 2]) {
    const info = await transport.sendMail({ envelope: { from: 'jan@org.test', to: ['a@example.com', 'b@example.net'] }, raw: rawMessage(n) });
    ids.push(/queued as (\S+)$/.exec(info.response)![1]!);
  }
  await waitFor(() => ids.every((id) => storeView(relay.sqlite).getMessage(id)?.state === 'done'), 10_000, 'both messages done');
  t.equal(sink.messages.length, 2);
  t.ok(sink.messages.every((m) => m.raw.toString('latin1').includes(CANARY_BODY)), 'the canary did travel with the message');

  for (const [n, id] of ids.entries()) {
    const events = storeView(relay.sqlite).events(id);
    t.same(
      events.map((e) => [e.type, e.recipient]),
      [
        ['received', undefined],
        ['classified', undefined],
        ['decided', 'a@example.com'],
        ['decided', 'b@example.net'],
        ['delivered', 'a@example.com'],
        ['delivered', 'b@example.net'],
        ['spool-removed', undefined],
      ],
      `${id}: received, classified, decided, delivered, in order`,
    );
    t.ok(events.every((e) => e.messageId === id), 'every event names its message');
    t.ok(events.every((e, i) => i === 0 || e.seq > events[i - 1]!.seq), 'sequence numbers increase');
    t.ok(events.every((e) => e.at === clock.now()), 'every event carries the (manual) clock time');

    const [received, classified, decidedA, , deliveredA] = events;
    t.same(received!.detail, {
      from: 'jan@org.test',
      recipients: 2,
      size: storeView(relay.sqlite).getMessage(id)!.size,
      clientIp: '127.0.0.1',
      origin: 'ingress',
      messageId: `<events-${n + 1}@org.test>`,
    });
    t.same(classified!.detail, { decision: 'deliver', subjectSensitive: false, matches: [] }, 'nothing sensitive found');
    t.same(decidedA!.detail, { decision: 'deliver', reason: 'no-findings' });
    t.match(deliveredA!.detail, { reply: /^250 /, remoteMta: '127.0.0.1', attempt: 1, route: `127.0.0.1:${sink.port}` });

    const rows = relay.sqlite.db.prepare('SELECT * FROM events WHERE message_id = ? ORDER BY seq').all(id) as Array<Record<string, unknown>>;
    t.equal(rows.length, events.length);
    for (const row of rows) {
      const json = JSON.stringify(row);
      for (const canary of CANARIES) t.notOk(json.includes(canary), `event ${row.seq} (${row.type}) holds no message content (${canary.slice(0, 16)}...)`);
      t.equal(row.detail, canonicalJson(JSON.parse(row.detail as string)), 'detail is stored as canonical JSON');
    }
  }

  // nothing of the content anywhere in the database, nor in the log
  for (const table of ['messages', 'recipients', 'events', 'jobs']) {
    const dump = JSON.stringify(relay.sqlite.db.prepare(`SELECT * FROM ${table}`).all());
    for (const canary of CANARIES) t.notOk(dump.includes(canary), `table ${table} holds no message content (${canary.slice(0, 16)}...)`);
  }
  const log = logs();
  t.ok(log.length > 0, 'the relay logged');
  for (const canary of CANARIES) t.notOk(log.includes(canary), `the log holds no message content (${canary.slice(0, 16)}...)`);
});

t.test('the event table is append-only: UPDATE and DELETE throw', async (t) => {
  const sink = await startSink(t);
  const { relay, port } = await startRelay(t, { delivery: { target: sink.url } }, { clock: new ManualClock(Date.now()) });
  const transport = nodemailer.createTransport({ host: '127.0.0.1', port, secure: false, ignoreTLS: true });
  t.teardown(() => transport.close());
  const info = await transport.sendMail({ envelope: { from: 'jan@org.test', to: ['a@example.com'] }, raw: rawMessage(3) });
  const id = /queued as (\S+)$/.exec(info.response)![1]!;
  await waitFor(() => storeView(relay.sqlite).getMessage(id)?.state === 'done', 10_000, 'message done');

  const db = relay.sqlite.db;
  const before = db.prepare('SELECT * FROM events ORDER BY seq').all();
  t.ok(before.length >= 4, 'there are events');
  const first = (before[0] as { seq: number }).seq;

  t.throws(() => db.prepare(`UPDATE events SET type = 'bounced' WHERE seq = ?`).run(first), /append-only/, 'UPDATE of one row throws');
  t.throws(() => db.prepare(`UPDATE events SET detail = '{}'`).run(), /append-only/, 'UPDATE of all rows throws');
  t.throws(() => db.prepare('DELETE FROM events WHERE seq = ?').run(first), /append-only/, 'DELETE of one row throws');
  t.throws(() => db.prepare('DELETE FROM events').run(), /append-only/, 'DELETE of all rows throws');
  t.throws(() => db.exec(`UPDATE events SET at = 0; DELETE FROM events;`), /append-only/, 'in a script too');
  t.same(db.prepare('SELECT * FROM events ORDER BY seq').all(), before, 'every row is unchanged');
  t.same(
    storeView(relay.sqlite).events(id).map((e) => e.type),
    ['received', 'classified', 'decided', 'delivered', 'spool-removed'],
  );
});

t.test('no statement rewrites an event row: INSERT OR REPLACE, REPLACE and UPSERT are refused too', async (t) => {
  const sink = await startSink(t);
  const { relay, port } = await startRelay(t, { delivery: { target: sink.url } }, { clock: new ManualClock(Date.now()) });
  const transport = nodemailer.createTransport({ host: '127.0.0.1', port, secure: false, ignoreTLS: true });
  t.teardown(() => transport.close());
  const info = await transport.sendMail({ envelope: { from: 'jan@org.test', to: ['a@example.com'] }, raw: rawMessage(4) });
  const id = /queued as (\S+)$/.exec(info.response)![1]!;
  await waitFor(() => storeView(relay.sqlite).getMessage(id)?.state === 'done', 10_000, 'message done');

  const db = relay.sqlite.db;
  const before = db.prepare('SELECT * FROM events ORDER BY seq').all();
  const first = (before[0] as { seq: number }).seq;
  const rewrite = (sql: string) => () => db.prepare(sql).run(first, id);
  // REPLACE deletes the old row without firing DELETE triggers (SQLite only fires them with recursive_triggers on)
  t.throws(rewrite(`INSERT OR REPLACE INTO events (seq, at, message_id, recipient, type, detail) VALUES (?, 0, ?, NULL, 'bounced', '{}')`), /append-only/, 'INSERT OR REPLACE over an existing event throws');
  t.throws(rewrite(`REPLACE INTO events (seq, at, message_id, recipient, type, detail) VALUES (?, 0, ?, NULL, 'bounced', '{}')`), /append-only/, 'REPLACE INTO over an existing event throws');
  t.throws(
    rewrite(`INSERT INTO events (seq, at, message_id, recipient, type, detail) VALUES (?, 0, ?, NULL, 'bounced', '{}') ON CONFLICT(seq) DO UPDATE SET type = excluded.type, detail = excluded.detail`),
    /append-only/,
    'an UPSERT over an existing event throws',
  );
  t.same(db.prepare('SELECT * FROM events ORDER BY seq').all(), before, 'every row is unchanged');
});
