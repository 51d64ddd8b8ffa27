import net from 'node:net';
import path from 'node:path';
import t from 'tap';
import nodemailer from 'nodemailer';
import { freePort, startChildRelay } from './helpers/child-relay.js';
import { tempDir, waitFor } from './helpers/relay.js';
import { startSink } from './helpers/sink.js';

t.test('SIGTERM drains: no new connections, running deliveries finish, exit 0', async (t) => {
  // the next hop holds each message for 400 ms, so deliveries are running when SIGTERM comes
  const sink = await startSink(t);
  let inFlight = 0;
  sink.behaviour.data = () => {
    inFlight++;
    return undefined;
  };
  const slow = sink.behaviour;
  const dir = tempDir(t);
  const config = {
    smtp: { listen: `127.0.0.1:${await freePort()}` },
    delivery: { target: sink.url, concurrency: 4 },
    data: { dir: path.join(dir, 'data') },
  };
  const configFile = path.join(dir, 'zegel.yaml');
  const relay = await startChildRelay(t, configFile, config);
  slow.delayMs = 400;
  const transport = nodemailer.createTransport({ host: '127.0.0.1', port: relay.port, secure: false, ignoreTLS: true });
  const ids: string[] = [];
  for (let i = 0; i < 6; i++) {
    const info = await transport.sendMail({ envelope: { from: 'a@org.test', to: [`r${i}@example.com`] }, raw: `Subject: drain ${i}\r\nX-Seq: ${i}\r\n\r\nx\r\n` });
    ids.push(info.response);
  }
  transport.close();
  await waitFor(() => inFlight > 0, 10_000, 'a delivery to be running');
  relay.child.kill('SIGTERM');
  const code = await relay.exited;
  t.equal(code, 0, 'the relay exits 0 after SIGTERM');
  t.match(relay.output(), /"draining"/);
  t.match(relay.output(), /"relay stopped"/);
  // after the drain the port is closed
  const refused = await new Promise<boolean>((resolve) => {
    const socket = net.connect(relay.port, '127.0.0.1');
    socket.once('connect', () => {
      socket.destroy();
      resolve(false);
    });
    socket.once('error', () => resolve(true));
  });
  t.ok(refused, 'no connection is accepted after the drain');
  const deliveredBeforeExit = sink.messages.length;
  t.ok(deliveredBeforeExit >= 1, `deliveries that were running finished (${deliveredBeforeExit} delivered before exit)`);

  // whatever had not started yet is still queued and goes out after a restart
  slow.delayMs = 0;
  await startChildRelay(t, configFile, config);
  await waitFor(() => new Set(sink.messages.map((m) => /X-Seq: (\d+)/.exec(m.raw.toString())?.[1])).size === 6, 20_000, 'all six messages');
  t.equal(sink.messages.length, 6, 'each message delivered exactly once: none was cut off mid-delivery');
});
