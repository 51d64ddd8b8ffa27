import fs from 'node:fs';
import path from 'node:path';
import t from 'tap';
import nodemailer from 'nodemailer';
import { freePort, startChildRelay } from './helpers/child-relay.js';
import { tempDir, waitFor } from './helpers/relay.js';
import { startSink } from './helpers/sink.js';

const TOTAL = 400;

t.test('kill -9 during a concurrent load: every message that got 250 is delivered after restart', async (t) => {
  // a next hop that takes a little time per message, so deliveries are in flight when the relay dies
  const sink = await startSink(t, {});
  sink.behaviour.data = () => undefined;
  const dir = tempDir(t);
  const config = {
    smtp: { listen: `127.0.0.1:${await freePort()}` },
    delivery: { target: sink.url, concurrency: 10 },
    data: { dir: path.join(dir, 'data') },
    log: { level: 'info' },
  };
  const configFile = path.join(dir, 'zegel.yaml');
  let relay = await startChildRelay(t, configFile, config);

  const accepted = new Map<string, string>(); // seq -> queue id
  let refused = 0;
  let killed = false;
  const transport = nodemailer.createTransport({ host: '127.0.0.1', port: relay.port, secure: false, ignoreTLS: true, pool: true, maxConnections: 20, maxMessages: Infinity });
  const sends = Array.from({ length: TOTAL }, (_, seq) =>
    transport
      .sendMail({
        envelope: { from: 'load@org.test', to: [`r${seq}@example.com`] },
        raw: `From: load@org.test\r\nTo: r${seq}@example.com\r\nSubject: load ${seq}\r\nX-Seq: ${seq}\r\n\r\nbody ${seq}\r\n`,
      })
      .then((info) => {
        const match = /queued as (\S+)/.exec(info.response);
        accepted.set(String(seq), match ? match[1]! : '?');
        if (!killed && accepted.size >= 250) {
          killed = true;
          relay.child.kill('SIGKILL');
        }
      })
      .catch(() => {
        refused++;
      }),
  );
  await Promise.all(sends);
  transport.close();
  t.ok(killed, 'the relay was killed with SIGKILL mid-load');
  t.equal(await relay.exited, 'SIGKILL');
  t.ok(accepted.size >= 250, `${accepted.size} accepted before the kill, ${refused} cut off`);
  const deliveredBeforeRestart = sink.messages.length;

  relay = await startChildRelay(t, configFile, config);
  const seqOf = (raw: Buffer) => /\r\nX-Seq: (\d+)\r\n/.exec(raw.toString('latin1'))?.[1];
  await waitFor(
    () => {
      const seen = new Set(sink.messages.map((m) => seqOf(m.raw)));
      return [...accepted.keys()].every((seq) => seen.has(seq));
    },
    60_000,
    'every accepted message to arrive',
  );
  const counts = new Map<string, number>();
  for (const message of sink.messages) {
    const seq = seqOf(message.raw)!;
    counts.set(seq, (counts.get(seq) ?? 0) + 1);
  }
  const duplicates = [...counts.values()].reduce((sum, n) => sum + (n - 1), 0);
  const lost = [...accepted.keys()].filter((seq) => !counts.has(seq));
  t.same(lost, [], 'no accepted message is lost');
  t.comment(`accepted ${accepted.size}, delivered before kill ${deliveredBeforeRestart}, delivered in all ${sink.messages.length}, duplicates ${duplicates}, cut-off sends delivered anyway ${[...counts.keys()].filter((s) => !accepted.has(s)).length}`);
  t.ok(duplicates <= 10 + 2 * 20, `duplicates (${duplicates}) stay within what was in flight`);
  await waitFor(() => fs.readdirSync(path.join(dir, 'data', 'spool')).length === 0, 20_000, 'the spool to empty');
});
