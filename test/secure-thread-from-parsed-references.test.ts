import nodemailer from 'nodemailer';
import t from 'tap';
import { ManualClock } from '../src/clock.js';
import { startRelay, waitFor } from './helpers/relay.js';
import { startSink } from './helpers/sink.js';

/*
 * The secure job puts a new secure message in the conversation its
 * In-Reply-To or References name. It reads those header lines from its own
 * parse of the message (issue 15: no second read of the spool file), so
 * they must work as the raw header block did: a folded References line, the
 * newest reference first, In-Reply-To before References, and a message
 * naming nothing known starts its own thread.
 */

t.test('In-Reply-To and folded References from the parse put an answer in its original thread', async (t) => {
  const sink = await startSink(t);
  const { relay, port } = await startRelay(t, { organisation: { name: 'Voorbeeldzorg', domains: ['zorg.test'] }, delivery: { target: sink.url }, receipts: { sender: false } }, { clock: new ManualClock(Date.now()) });
  const transport = nodemailer.createTransport({ host: '127.0.0.1', port, secure: false, ignoreTLS: true });
  t.teardown(() => transport.close());
  const db = relay.sqlite.db;
  const send = async (subject: string, headers: { messageId: string; inReplyTo?: string; references?: string[] }): Promise<{ id: string; thread: string }> => {
    const info = await transport.sendMail({
      envelope: { from: 'jan@zorg.test', to: ['a@extern.test'] },
      from: 'Jan de Vries <jan@zorg.test>',
      to: 'a@extern.test',
      subject,
      text: 'Het BSN is 123456782.',
      ...headers,
    });
    const queueId = /queued as (\S+)$/.exec(info.response)![1]!;
    return waitFor(() => db.prepare('SELECT id, thread_id AS thread FROM secure_messages WHERE queue_id = ?').get(queueId) as { id: string; thread: string } | undefined, 20_000, `${subject} stored`);
  };

  const first = await send('Dossier', { messageId: '<dossier-1@zorg.test>' });
  t.equal(first.thread, first.id, 'the original starts its own thread');
  const other = await send('Ander dossier', { messageId: '<dossier-2@zorg.test>' });
  t.equal(other.thread, other.id, 'an unrelated message starts its own thread');

  // many references, so nodemailer folds the line; the known one is the oldest
  const filler = Array.from({ length: 12 }, (_, i) => `<onbekend-${i}-${'x'.repeat(20)}@elders.test>`);
  const folded = await send('Re: Dossier', { messageId: '<antwoord-1@zorg.test>', references: ['<dossier-1@zorg.test>', ...filler] });
  t.equal(folded.thread, first.thread, 'a folded References line naming the original: its thread');

  const both = await send('Re: beide', { messageId: '<antwoord-2@zorg.test>', inReplyTo: '<dossier-2@zorg.test>', references: ['<dossier-1@zorg.test>'] });
  t.equal(both.thread, other.thread, 'In-Reply-To decides before References');

  const newest = await send('Re: volgorde', { messageId: '<antwoord-3@zorg.test>', references: ['<dossier-1@zorg.test>', '<dossier-2@zorg.test>'] });
  t.equal(newest.thread, other.thread, 'the newest reference (the last) decides first');

  const unknown = await send('Re: onbekend', { messageId: '<antwoord-4@zorg.test>', inReplyTo: '<nergens@elders.test>', references: ['<nergens@elders.test>'] });
  t.equal(unknown.thread, unknown.id, 'references to nothing known: a thread of its own');
  const raw = sink.messages.map((m) => m.raw.toString('latin1')).join('\n');
  t.notMatch(raw, /dossier-1@zorg\.test/, 'the notifications do not carry the original Message-IDs');
});
