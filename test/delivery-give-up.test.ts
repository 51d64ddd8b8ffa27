import fs from 'node:fs';
import { storeView } from './helpers/store-view.js';
import path from 'node:path';
import t, { type Test } from 'tap';
import nodemailer from 'nodemailer';
import { ManualClock } from '../src/clock.js';
import type { Relay } from '../src/relay.js';
import { startRelay, waitFor } from './helpers/relay.js';
import { startSink, type TestSink } from './helpers/sink.js';

type Tap = Test;

const MINUTE = 60_000;
const HOUR = 60 * MINUTE;
const SENDER = 'afzender@org.test';

async function submit(t: Tap, port: number, to: string[]): Promise<string> {
  const transport = nodemailer.createTransport({ host: '127.0.0.1', port, secure: false, ignoreTLS: true });
  t.teardown(() => transport.close());
  const raw = [`From: <${SENDER}>`, `To: <${to[0]}>`, 'Subject: give up', 'Message-ID: <give-up@org.test>', '', 'Body.', ''].join('\r\n');
  const info = await transport.sendMail({ envelope: { from: SENDER, to }, raw });
  const match = /^250 2\.6\.0 Ok: queued as (\S+)$/.exec(info.response);
  if (!match) throw new Error(`unexpected reply ${info.response}`);
  return match[1]!;
}

/** Attempt times (offsets from receipt) the retry schedule promises: the last one exactly at the deadline. */
function expectedAttempts(schedule: number[], giveUpAfter: number): number[] {
  const times = [0];
  for (let k = 0; times[times.length - 1]! < giveUpAfter; k++) {
    const delay = schedule[Math.min(k, schedule.length - 1)]!;
    times.push(Math.min(times[times.length - 1]! + delay, giveUpAfter));
  }
  return times;
}

const attemptEvents = (relay: Relay, id: string) => storeView(relay.sqlite).events(id).filter((e) => e.type === 'deferred' || e.type === 'bounced');

function jobRunAt(relay: Relay, id: string): number | undefined {
  const row = relay.sqlite.db.prepare(`SELECT run_at FROM jobs WHERE id = ?`).get(`deliver:${id}:target`) as { run_at: number } | undefined;
  return row?.run_at;
}

async function deliverRunning(relay: Relay): Promise<number> {
  return (await relay.backend.queue.counts()).find((c) => c.kind === 'deliver')?.running ?? 0;
}

/**
 * Walks the manual clock through the expected attempt times. Before each one it
 * checks that the job is due exactly then and that one millisecond earlier
 * nothing starts; at the time it waits for the attempt.
 */
async function walkSchedule(t: Tap, relay: Relay, clock: ManualClock, id: string, start: number, times: number[], tries: () => number): Promise<void> {
  await waitFor(() => attemptEvents(relay, id).length === 1, 10_000, 'first attempt');
  t.equal(attemptEvents(relay, id)[0]!.at, start, 'first attempt at once');
  for (let i = 1; i < times.length; i++) {
    const due = start + times[i]!;
    // the attempt is recorded by the handler, the new runAt by the queue after it: wait until the job is back in the queue
    await waitFor(async () => attemptEvents(relay, id).length === i && (await deliverRunning(relay)) === 0, 5_000, `attempt ${i} recorded`);
    t.equal(jobRunAt(relay, id), due, `attempt ${i + 1} is scheduled at +${(times[i]! / MINUTE).toFixed(0)} min`);
    const before = tries();
    clock.set(due - 1);
    relay.backend.queue.poke();
    t.equal(await deliverRunning(relay), 0, `attempt ${i + 1} does not start 1 ms early`);
    await new Promise((resolve) => setTimeout(resolve, 30));
    t.equal(tries(), before, `no contact with the next hop before +${(times[i]! / MINUTE).toFixed(0)} min`);
    clock.set(due);
    relay.backend.queue.poke();
    await waitFor(() => attemptEvents(relay, id).length === i + 1, 10_000, `attempt ${i + 1}`);
  }
}

function deliveryStatusPart(raw: string): string {
  const match = /Content-Type: message\/delivery-status\r\n(?:[^\r\n]+\r\n)*\r\n([\s\S]*?)\r\n--/.exec(raw);
  if (!match) throw new Error('no message/delivery-status part');
  return match[1]!;
}

async function checkNoMoreAttempts(t: Tap, relay: Relay, clock: ManualClock, id: string, tries: () => number, dsnSink: TestSink): Promise<void> {
  const attempts = attemptEvents(relay, id).length;
  const contacted = tries();
  for (const step of [MINUTE, HOUR, 24 * HOUR, 7 * 24 * HOUR]) {
    clock.advance(step);
    relay.backend.queue.poke();
    await new Promise((resolve) => setTimeout(resolve, 60));
  }
  t.equal(attemptEvents(relay, id).length, attempts, 'no attempt after giving up');
  t.equal(tries(), contacted, 'the next hop is not contacted again');
  t.equal(jobRunAt(relay, id), undefined, 'the deliver job is gone');
  t.equal(dsnSink.messages.length, 1, 'still exactly one DSN');
}

t.test('451 at RCPT forever: retried on the default schedule for 48 h, then bounced once with a 4.x.x DSN', async (t) => {
  let rcptCalls = 0;
  const sink = await startSink(t, {
    rcpt: () => {
      rcptCalls++;
      return { code: 451, message: '4.3.0 Temporary lookup failure' };
    },
  });
  const dsnSink = await startSink(t);
  const clock = new ManualClock(Date.now());
  const { relay, port, dataDir } = await startRelay(t, { delivery: { target: sink.url, internalTarget: dsnSink.url } }, { clock });
  t.same(relay.config.delivery.retry, { schedule: [5, 10, 30, 60, 120, 240].map((m) => m * MINUTE), giveUpAfter: 48 * HOUR }, 'the default retry policy');
  const start = clock.now();
  const id = await submit(t, port, ['traag@example.com']);
  const times = expectedAttempts(relay.config.delivery.retry.schedule, relay.config.delivery.retry.giveUpAfter);
  t.same(times.slice(0, 7), [0, 5, 15, 45, 105, 225, 465].map((m) => m * MINUTE), 'schedule 5m, 10m, 30m, 1h, 2h, 4h, 4h, ...');
  t.equal(times[times.length - 1], 48 * HOUR, 'the last attempt is at the deadline');

  await walkSchedule(t, relay, clock, id, start, times, () => rcptCalls);

  const events = attemptEvents(relay, id);
  t.equal(events.length, times.length, `${times.length} attempts in all`);
  t.same(events.map((e) => e.at - start), times, 'each attempt at its scheduled time');
  t.same(events.map((e) => e.type), [...times.slice(1).map(() => 'deferred'), 'bounced'], 'deferred every time, bounced at the deadline');
  t.same(events.map((e) => (e.detail as { attempt: number }).attempt), times.map((_, i) => i + 1), 'attempts count up');
  t.equal(rcptCalls, times.length, 'one RCPT per attempt');
  const [rcpt] = storeView(relay.sqlite).getRecipients(id);
  t.equal(rcpt!.state, 'bounced');
  t.equal(rcpt!.attempts, times.length);
  t.equal(sink.messages.length, 0);

  await waitFor(() => dsnSink.messages.length === 1, 10_000, 'DSN');
  const dsn = dsnSink.messages[0]!;
  t.equal(dsn.from, '', 'DSN from <>');
  t.same(dsn.to, [SENDER], 'DSN to the envelope sender');
  const raw = dsn.raw.toString('latin1');
  const status = deliveryStatusPart(raw);
  t.match(status, /^Final-Recipient: rfc822; traag@example\.com\r?$/m);
  t.match(status, /^Action: failed\r?$/m);
  t.match(status, /^Status: 4\.3\.0\r?$/m, 'a 4.x.x status: the failure was temporary, the time ran out');
  t.match(status, /^Diagnostic-Code: smtp; 451 4\.3\.0 Temporary lookup failure/m);
  t.match(raw, /retries exhausted/, 'the human-readable part says the retries ran out');
  t.equal(storeView(relay.sqlite).events(id).filter((e) => e.type === 'dsn-queued').length, 1, 'one DSN queued');

  await checkNoMoreAttempts(t, relay, clock, id, () => rcptCalls, dsnSink);
  await waitFor(() => fs.readdirSync(path.join(dataDir, 'spool')).length === 0, 5_000, 'spool emptied').catch(() => undefined);
  t.same(fs.readdirSync(path.join(dataDir, 'spool')), [], 'spool empty');
});

t.test('next hop down with a short policy: the final attempt lands exactly at the deadline', async (t) => {
  const sink = await startSink(t);
  await sink.down();
  const dsnSink = await startSink(t);
  const clock = new ManualClock(Date.now());
  const { relay, port } = await startRelay(
    t,
    { delivery: { target: sink.url, internalTarget: dsnSink.url, retry: { schedule: ['1m', '2m'], giveUpAfter: '10m' } } },
    { clock },
  );
  const start = clock.now();
  const id = await submit(t, port, ['weg@example.com']);
  const times = expectedAttempts([MINUTE, 2 * MINUTE], 10 * MINUTE);
  t.same(times, [0, 1, 3, 5, 7, 9, 10].map((m) => m * MINUTE), 'attempts at 0, 1, 3, 5, 7, 9 and 10 minutes');
  // the next hop is down, so the recorded attempts are all there is to count
  const tries = () => attemptEvents(relay, id).length;

  await walkSchedule(t, relay, clock, id, start, times, tries);

  const events = attemptEvents(relay, id);
  t.same(events.map((e) => e.at - start), times, 'each attempt at its time, the last at the deadline');
  t.equal(events[events.length - 1]!.type, 'bounced', 'bounced at the deadline');
  t.equal(events.filter((e) => e.type === 'bounced').length, 1, 'bounced once');
  t.match((events[events.length - 1]!.detail as { reply: string }).reply, /ECONNREFUSED/, 'the reason is the refused connection');

  await waitFor(() => dsnSink.messages.length === 1, 10_000, 'DSN');
  const status = deliveryStatusPart(dsnSink.messages[0]!.raw.toString('latin1'));
  t.match(status, /^Final-Recipient: rfc822; weg@example\.com\r?$/m);
  t.match(status, /^Action: failed\r?$/m);
  t.match(status, /^Status: 4\.4\.7\r?$/m, 'no reply code from the next hop: 4.4.7 (delivery time expired)');
  t.match(status, /^Diagnostic-Code: X-Zegel; .*ECONNREFUSED/m);
  t.notMatch(status, /gave up after 0h/, 'the report does not claim the retries lasted 0 hours');

  await checkNoMoreAttempts(t, relay, clock, id, tries, dsnSink);
});
