import nodemailer from 'nodemailer';
import t from 'tap';
import { ManualClock } from '../src/clock.js';
import { startRelay, waitFor } from './helpers/relay.js';
import { startSink } from './helpers/sink.js';
import { storeView } from './helpers/store-view.js';

/*
 * What a secure message costs the store (issue 15): six writes for a message
 * with two external recipients and the sender's receipt: intake, the process
 * job, the secure job (the secure message, its links, the three relay-made
 * mails with their deliver jobs and events, the job's completion: one
 * commit), and one per delivery of the three mails. The count is pinned as
 * test/job-outcome-one-commit.test.ts pins the plain path's three, so an
 * optimisation that adds a write, or one that merges writes by leaving rows
 * out, fails here; every message keeps its whole audit trail.
 */

t.test('a secure message with two recipients and a receipt costs six store writes and keeps its audit trail', async (t) => {
  const sink = await startSink(t);
  const { relay, port } = await startRelay(t, { organisation: { name: 'Voorbeeldzorg', domains: ['zorg.test'] }, delivery: { target: sink.url }, receipts: { sender: true } }, { clock: new ManualClock(Date.now()) });
  const { committer } = relay.sqlite;
  // the audit checkpoint the relay signs at start: let it land first
  let last = -1;
  await waitFor(
    async () => {
      await committer.transaction(() => undefined);
      const now = committer.stats.writes;
      const settled = now === last + 1;
      last = now;
      return settled;
    },
    5_000,
    'start-up writes to settle',
  );
  const before = committer.stats.writes;
  const transport = nodemailer.createTransport({ host: '127.0.0.1', port, secure: false, ignoreTLS: true });
  t.teardown(() => transport.close());
  const ids: string[] = [];
  for (let i = 0; i < 3; i++) {
    const info = await transport.sendMail({
      envelope: { from: 'jan@zorg.test', to: ['a@extern.test', 'b@extern.test'] },
      from: 'Jan de Vries <jan@zorg.test>',
      to: 'a@extern.test, b@extern.test',
      subject: `Dossier ${i}`,
      text: 'Het BSN is 123456782.',
    });
    ids.push(/queued as (\S+)$/.exec(info.response)![1]!);
  }
  await waitFor(() => sink.messages.length === 9, 20_000, 'two notifications and a receipt per message');
  const view = storeView(relay.sqlite);
  await waitFor(() => ids.every((id) => view.getMessage(id)?.state === 'done'), 10_000, 'all three served');
  await relay.backend.queue.idle();
  t.equal(committer.stats.writes - before, 18, 'six writes per secure message: intake, process, secure, three deliveries');

  for (const id of ids) {
    const types = view.events(id).map((e) => e.type);
    t.same(
      types.filter((type) => type !== 'spool-removed'),
      ['received', 'classified', 'decided', 'decided', 'notification-queued', 'notification-queued', 'mail-queued', 'encrypted', 'encrypted'],
      `${id}: received, classified, decided per recipient, two notifications and the receipt queued, encrypted per recipient`,
    );
    t.ok(types.includes('spool-removed'), `${id}: its plaintext spool file removed`);
    const secure = relay.sqlite.db.prepare('SELECT id FROM secure_messages WHERE queue_id = ?').get(id) as { id: string } | undefined;
    t.ok(secure, `${id}: stored as a secure message`);
    t.equal((relay.sqlite.db.prepare('SELECT COUNT(*) AS n FROM secure_links WHERE message_id = ?').get(secure!.id) as { n: number }).n, 2, `${id}: with a link per recipient`);
    for (const mail of [`${id}-n0`, `${id}-n1`, `${id}-receipt`]) {
      t.same(view.events(mail).map((e) => e.type).filter((type) => type !== 'spool-removed'), ['received', 'delivered'], `${mail}: received and delivered`);
    }
  }
});
