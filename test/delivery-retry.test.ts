import fs from 'node:fs';
import { storeView } from './helpers/store-view.js';
import path from 'node:path';
import t, { type Test } from 'tap';
import nodemailer from 'nodemailer';
import { ManualClock } from '../src/clock.js';
import type { Relay } from '../src/relay.js';
import { startRelay, waitFor } from './helpers/relay.js';
import { startSink } from './helpers/sink.js';

const MINUTE = 60_000;

type Tap = Test;

/** Submits one message to the relay and returns its queue id (from the 250 reply). */
async function submitMany(t: Tap, port: number, messages: Array<{ from: string; to: string[]; raw: string }>): Promise<string[]> {
  const transport = nodemailer.createTransport({ host: '127.0.0.1', port, secure: false, ignoreTLS: true, pool: true, maxConnections: 4 });
  t.teardown(() => transport.close());
  return Promise.all(
    messages.map(async (m) => {
      const info = await transport.sendMail({ envelope: { from: m.from, to: m.to }, raw: m.raw });
      const match = /^250 2\.6\.0 Ok: queued as (\S+)$/.exec(info.response);
      if (!match) throw new Error(`unexpected reply ${info.response}`);
      return match[1]!;
    }),
  );
}

function rawMessage(n: number, to: string): string {
  return [`From: <afzender@org.test>`, `To: <${to}>`, `Subject: retry ${n}`, `Message-ID: <retry-${n}@org.test>`, '', `Body ${n}.`, ''].join('\r\n');
}

const eventsOf = (relay: Relay, id: string, type?: string) => storeView(relay.sqlite).events(id).filter((e) => !type || e.type === type);

/** Lets the workers run for a while (they poll every 25 ms) to show that nothing happens. */
async function settle(relay: Relay, ms = 250): Promise<void> {
  relay.backend.queue.poke();
  await new Promise((resolve) => setTimeout(resolve, ms));
}

function spoolFiles(dataDir: string): string[] {
  return fs.readdirSync(path.join(dataDir, 'spool')).filter((n) => n.endsWith('.eml'));
}

t.test('next hop down for a while, then up: every message is deferred, retried on schedule and delivered', async (t) => {
  const sink = await startSink(t);
  const dsnSink = await startSink(t);
  const clock = new ManualClock(Date.now());
  const { relay, port, dataDir } = await startRelay(t, { delivery: { target: sink.url, internalTarget: dsnSink.url } }, { clock });
  await sink.down();

  const count = 20;
  const messages = Array.from({ length: count }, (_, i) => ({ from: 'afzender@org.test', to: [`ontvanger${i}@example.com`], raw: rawMessage(i, `ontvanger${i}@example.com`) }));
  const ids = await submitMany(t, port, messages);
  t.equal(new Set(ids).size, count, 'all 20 messages were accepted with 250 and distinct queue ids');
  const start = clock.now();

  // first attempt: connection refused, deferred
  await waitFor(() => ids.every((id) => eventsOf(relay, id, 'deferred').length === 1), 15_000, 'first deferral of every message');
  for (const id of ids) {
    const [rcpt] = storeView(relay.sqlite).getRecipients(id);
    t.equal(rcpt!.state, 'pending', `${id}: recipient still pending`);
    t.equal(rcpt!.attempts, 1, `${id}: one attempt recorded`);
    t.equal(eventsOf(relay, id, 'deferred')[0]!.at, start, `${id}: first attempt at once`);
  }
  t.equal(spoolFiles(dataDir).length, count, 'spool files are kept while messages are deferred');

  // not before the first retry delay (5 min)
  clock.advance(5 * MINUTE - 1_000);
  await settle(relay);
  t.ok(ids.every((id) => eventsOf(relay, id, 'deferred').length === 1), 'no retry before 5 minutes');

  // past the first retry delay, the next hop still down: deferred again
  clock.advance(1_000 + 1);
  relay.backend.queue.poke();
  await waitFor(() => ids.every((id) => eventsOf(relay, id, 'deferred').length === 2), 15_000, 'second deferral of every message');
  for (const id of ids) {
    const deferred = eventsOf(relay, id, 'deferred');
    t.equal(deferred[1]!.at, start + 5 * MINUTE + 1, `${id}: second attempt after 5 minutes`);
    t.equal(storeView(relay.sqlite).getRecipients(id)[0]!.state, 'pending');
  }
  t.equal(sink.messages.length, 0, 'nothing delivered while the next hop is down');

  await sink.up();
  // the second retry delay is 10 min: nothing before that even with the hop up
  clock.advance(10 * MINUTE - 1_000);
  await settle(relay);
  t.ok(ids.every((id) => eventsOf(relay, id, 'deferred').length === 2 && !eventsOf(relay, id, 'delivered').length), 'no attempt before the second retry delay');
  t.equal(sink.messages.length, 0);

  clock.advance(1_000);
  relay.backend.queue.poke();
  await waitFor(() => ids.every((id) => eventsOf(relay, id, 'delivered').length === 1), 15_000, 'every message delivered');
  // the spool file goes first, then the message is marked done
  await waitFor(() => spoolFiles(dataDir).length === 0 && ids.every((id) => storeView(relay.sqlite).getMessage(id)!.state === 'done'), 5_000, 'spool emptied');

  t.equal(sink.messages.length, count, 'each message delivered exactly once');
  t.same(
    sink.messages.map((m) => m.to[0]).sort(),
    messages.map((m) => m.to[0]).sort(),
    'every recipient got its message',
  );
  for (const id of ids) {
    const [rcpt] = storeView(relay.sqlite).getRecipients(id);
    t.equal(rcpt!.state, 'delivered');
    t.equal(rcpt!.attempts, 3, `${id}: three attempts`);
    t.same(eventsOf(relay, id, 'bounced'), [], `${id}: not bounced`);
    t.same(eventsOf(relay, id, 'dsn-queued'), [], `${id}: no DSN queued`);
    t.equal(storeView(relay.sqlite).getMessage(id)!.state, 'done');
  }
  await settle(relay, 300);
  t.equal(dsnSink.messages.length, 0, 'no DSN was sent');
  t.equal(sink.messages.filter((m) => m.from === '').length, 0, 'no null-sender mail at the next hop');
  const jobs = relay.sqlite.db.prepare(`SELECT COUNT(*) AS n FROM jobs WHERE kind <> 'purge'`).get() as { n: number };
  t.equal(jobs.n, 0, 'no job left');
});

t.test('4xx at RCPT for one of two recipients: the other is delivered at once, the refused one later', async (t) => {
  let refuse = true;
  const rcptCalls: string[] = [];
  const sink = await startSink(t, {
    rcpt: (address) => {
      rcptCalls.push(address);
      return refuse && address === 'later@example.com' ? { code: 451, message: '4.2.1 Mailbox busy, try later' } : undefined;
    },
  });
  const dsnSink = await startSink(t);
  const clock = new ManualClock(Date.now());
  const { relay, port, dataDir } = await startRelay(t, { delivery: { target: sink.url, internalTarget: dsnSink.url } }, { clock });
  const [id] = await submitMany(t, port, [{ from: 'afzender@org.test', to: ['now@example.com', 'later@example.com'], raw: rawMessage(1, 'now@example.com') }]);

  await waitFor(() => sink.messages.length === 1 && eventsOf(relay, id!, 'deferred').length === 1, 10_000, 'first attempt');
  t.same(sink.messages[0]!.to, ['now@example.com'], 'the accepted recipient is delivered at once, alone');
  const recipients = storeView(relay.sqlite).getRecipients(id!);
  t.equal(recipients.find((r) => r.address === 'now@example.com')!.state, 'delivered');
  const later = recipients.find((r) => r.address === 'later@example.com')!;
  t.equal(later.state, 'pending', 'the 4xx recipient stays pending');
  t.match(later.lastReply, /^451/, 'its last reply is the 451');
  const deferred = eventsOf(relay, id!, 'deferred');
  t.equal(deferred[0]!.recipient, 'later@example.com');
  t.match(JSON.stringify(deferred[0]!.detail), /451/);
  t.equal(spoolFiles(dataDir).length, 1, 'the spool file is kept for the pending recipient');

  refuse = false;
  clock.advance(5 * MINUTE - 1);
  await settle(relay);
  t.equal(sink.messages.length, 1, 'no retry before the first retry delay');

  clock.advance(1);
  relay.backend.queue.poke();
  await waitFor(() => sink.messages.length === 2, 10_000, 'retry delivered');
  t.same(sink.messages[1]!.to, ['later@example.com'], 'the retry goes to the deferred recipient only');
  t.equal(rcptCalls.filter((a) => a === 'now@example.com').length, 1, 'the delivered recipient is not sent again');
  await waitFor(() => storeView(relay.sqlite).getRecipients(id!).every((r) => r.state === 'delivered'), 5_000, 'both delivered');
  await waitFor(() => spoolFiles(dataDir).length === 0, 5_000, 'spool emptied');
  t.same(eventsOf(relay, id!, 'bounced'), []);
  t.same(
    eventsOf(relay, id!, 'delivered').map((e) => e.recipient),
    ['now@example.com', 'later@example.com'],
    'delivered events in order',
  );
  t.equal(dsnSink.messages.length, 0, 'no DSN');
});

t.test('4xx at the end of DATA is retried, not bounced', async (t) => {
  let refuse = true;
  let dataCalls = 0;
  const sink = await startSink(t, {
    data: () => {
      dataCalls++;
      return refuse ? { code: 451, message: '4.3.0 Temporary local problem' } : undefined;
    },
  });
  const dsnSink = await startSink(t);
  const clock = new ManualClock(Date.now());
  const { relay, port, dataDir } = await startRelay(t, { delivery: { target: sink.url, internalTarget: dsnSink.url } }, { clock });
  const [id] = await submitMany(t, port, [{ from: 'afzender@org.test', to: ['a@example.com', 'b@example.com'], raw: rawMessage(2, 'a@example.com') }]);

  await waitFor(() => eventsOf(relay, id!, 'deferred').length === 2, 10_000, 'both recipients deferred');
  t.equal(dataCalls, 1, 'one transaction reached the end of DATA');
  t.equal(sink.messages.length, 0);
  t.ok(storeView(relay.sqlite).getRecipients(id!).every((r) => r.state === 'pending' && /^451/.test(r.lastReply ?? '')), 'both pending with the 451 reply');

  refuse = false;
  clock.advance(5 * MINUTE);
  relay.backend.queue.poke();
  await waitFor(() => sink.messages.length === 1, 10_000, 'retry delivered');
  t.same(sink.messages[0]!.to.sort(), ['a@example.com', 'b@example.com'], 'one transaction for both recipients');
  await waitFor(() => storeView(relay.sqlite).getRecipients(id!).every((r) => r.state === 'delivered'), 5_000, 'both delivered');
  await waitFor(() => spoolFiles(dataDir).length === 0, 5_000, 'spool emptied');
  t.equal(dataCalls, 2);
  t.same(eventsOf(relay, id!, 'bounced'), []);
  t.equal(dsnSink.messages.length, 0, 'no DSN');
});
