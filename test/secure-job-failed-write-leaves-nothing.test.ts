import fs from 'node:fs';
import path from 'node:path';
import nodemailer from 'nodemailer';
import t from 'tap';
import { ManualClock } from '../src/clock.js';
import { startRelay, waitFor } from './helpers/relay.js';
import { startSink } from './helpers/sink.js';

/*
 * The secure job writes the body blob and every notification and receipt
 * side by side and commits only once all of them are durable (issue 15: the
 * fsyncs overlap instead of queueing). When one of those writes fails, the
 * job commits nothing, leaves no notification spool file (each holds a
 * K_link) and no blob behind, and runs again later with new keys; then the
 * recipients get their notifications. The failure is real: `blobs` under
 * data.dir is a file, so the blob store cannot make its directory.
 */

t.test('a failed blob write while the notifications are written: nothing committed, no K_link left, the retry delivers', async (t) => {
  const sink = await startSink(t);
  const clock = new ManualClock(Date.now());
  const { relay, port, dataDir, logs } = await startRelay(t, { organisation: { name: 'Voorbeeldzorg', domains: ['zorg.test'] }, delivery: { target: sink.url }, receipts: { sender: true } }, { clock });
  const blobs = path.join(dataDir, 'blobs');
  fs.rmSync(blobs, { recursive: true, force: true });
  fs.writeFileSync(blobs, 'not a directory');

  const transport = nodemailer.createTransport({ host: '127.0.0.1', port, secure: false, ignoreTLS: true });
  t.teardown(() => transport.close());
  const info = await transport.sendMail({
    envelope: { from: 'jan@zorg.test', to: ['a@extern.test', 'b@extern.test'] },
    from: 'Jan de Vries <jan@zorg.test>',
    to: 'a@extern.test, b@extern.test',
    subject: 'Dossier',
    text: 'Het BSN is 123456782.',
  });
  const queueId = /queued as (\S+)$/.exec(info.response)![1]!;
  const db = relay.sqlite.db;
  const secureJob = () => db.prepare("SELECT attempts, run_at FROM jobs WHERE id = ?").get(`secure:${queueId}`) as { attempts: number; run_at: number } | undefined;
  await waitFor(() => /job failed unexpectedly/.test(logs()) && secureJob(), 20_000, 'the secure job to fail');
  await relay.backend.queue.idle();

  t.equal((db.prepare('SELECT COUNT(*) AS n FROM secure_messages').get() as { n: number }).n, 0, 'no secure message committed');
  t.equal((db.prepare('SELECT COUNT(*) AS n FROM secure_links').get() as { n: number }).n, 0, 'no link committed');
  t.equal((db.prepare("SELECT COUNT(*) AS n FROM messages WHERE origin = 'notification'").get() as { n: number }).n, 0, 'no notification or receipt recorded');
  const spoolFiles = fs.readdirSync(path.join(dataDir, 'spool'));
  t.same(spoolFiles, [`${queueId}.eml`], 'only the original waits in the spool: every notification and the receipt written meanwhile are gone');
  for (const file of spoolFiles) t.notMatch(fs.readFileSync(path.join(dataDir, 'spool', file), 'latin1'), /\/[ms]\/[A-Za-z0-9_-]{22}#/, `${file}: no link with a key`);
  t.equal(sink.messages.length, 0, 'nothing went out');
  t.ok(secureJob(), 'the secure job waits for its retry');

  // the disk is fine again: the retry stores the message and the three mails go out
  fs.rmSync(blobs);
  clock.advance(10 * 60_000);
  relay.backend.queue.poke();
  await waitFor(() => sink.messages.length === 3, 20_000, 'two notifications and the receipt after the retry');
  await relay.backend.queue.idle();
  t.equal((db.prepare('SELECT COUNT(*) AS n FROM secure_messages WHERE queue_id = ?').get(queueId) as { n: number }).n, 1, 'stored once');
  t.equal((db.prepare('SELECT COUNT(*) AS n FROM secure_links').get() as { n: number }).n, 2, 'two links');
  const secureId = (db.prepare('SELECT id FROM secure_messages WHERE queue_id = ?').get(queueId) as { id: string }).id;
  t.same(fs.readdirSync(blobs), [secureId], 'blobs only for the stored message');
  t.same(fs.readdirSync(path.join(dataDir, 'spool')), [], 'every spool file removed once delivered');
  t.same([...sink.messages.map((m) => m.to.join(','))].sort(), ['a@extern.test', 'b@extern.test', 'jan@zorg.test']);
});
