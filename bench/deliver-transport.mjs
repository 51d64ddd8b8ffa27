// Delivery alone: the cost of handing spooled messages to the next hop, without
// the rest of the relay. Sends N spooled 2 KB messages (Buffers, as the spool
// cache holds them) through the built SmtpTransport of each tree given, 20 at a
// time, to a Postfix smtp-sink on loopback, and reports this process's CPU per
// message and the rate; trees alternate round by round, medians at the end.
//
//   npm run build
//   node bench/deliver-transport.mjs [TREE ...]       # default: this checkout
//   N=5000 ROUNDS=5 node bench/deliver-transport.mjs /tmp/wt-before .
//
// Each TREE is a checkout with dist/ built. Loopback only; the sink is stopped at
// the end.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { pathToFileURL, fileURLToPath } from 'node:url';

const N = Number(process.env.N || 5000);
const ROUNDS = Number(process.env.ROUNDS || 3);
const CONCURRENCY = 20;
const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const trees = (process.argv.slice(2).length ? process.argv.slice(2) : [root]).map((dir) => path.resolve(dir));

const transports = [];
for (const dir of trees) {
  const file = path.join(dir, 'dist', 'src', 'deliver', 'transport.js');
  if (!fs.existsSync(file)) throw new Error(`${file} is missing: build that tree first (npm run build)`);
  transports.push({ dir, module: await import(pathToFileURL(file).href) });
}

const port = await new Promise((resolve) => {
  const probe = net.createServer();
  probe.listen(0, '127.0.0.1', () => {
    const { port } = probe.address();
    probe.close(() => resolve(port));
  });
});
const asRoot = process.getuid?.() === 0;
const sink = spawn('/usr/sbin/smtp-sink', [...(asRoot ? ['-u', 'nobody'] : []), `127.0.0.1:${port}`, '256'], { stdio: 'ignore' });
process.on('exit', () => sink.kill());
for (let i = 0; ; i++) {
  const up = await new Promise((resolve) => net.connect(port, '127.0.0.1').on('connect', function () { this.destroy(); resolve(true); }).on('error', () => resolve(false)));
  if (up) break;
  if (i > 100) throw new Error('smtp-sink did not start');
  await new Promise((resolve) => setTimeout(resolve, 50));
}

const message = Buffer.from(
  'From: a@org.test\r\nTo: b@example.com\r\nSubject: bench\r\nMessage-ID: <bench@org.test>\r\n\r\n' +
    'Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod te\r\n'.repeat(26),
);
const envelope = { from: 'a@org.test', to: ['b@example.com'] };

async function round({ module }) {
  const transport = new module.SmtpTransport(`smtp://127.0.0.1:${port}`, { hostname: 'bench.test', maxConnections: CONCURRENCY, timeout: 60_000 });
  // warm-up: sessions open, code paths compiled
  await Promise.all(Array.from({ length: 600 }, () => transport.send(envelope, { bytes: message }, 'warm')));
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  let next = 0;
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      while (next++ < N) await transport.send(envelope, { bytes: message }, 'x');
    }),
  );
  const cpu = process.cpuUsage(cpu0);
  const seconds = (performance.now() - t0) / 1000;
  transport.close();
  return { cpuMs: (cpu.user + cpu.system) / 1000 / N, rate: N / seconds };
}

const load = () => fs.readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');
const results = transports.map(() => []);
for (let r = 1; r <= ROUNDS; r++) {
  for (const [i, tree] of transports.entries()) {
    const result = await round(tree);
    results[i].push(result);
    console.log(`${tree.dir} round ${r}: ${result.cpuMs.toFixed(3)} ms CPU per message, ${result.rate.toFixed(0)} msg/s (load ${load()})`);
  }
}
const median = (values) => values.slice().sort((a, b) => a - b)[Math.floor(values.length / 2)];
for (const [i, tree] of transports.entries()) {
  const cpu = median(results[i].map((r) => r.cpuMs));
  const ratio = i ? ` (${(cpu / median(results[0].map((r) => r.cpuMs))).toFixed(2)}× the first)` : '';
  console.log(`median ${tree.dir}: ${cpu.toFixed(3)} ms CPU per message${ratio}, ${median(results[i].map((r) => r.rate)).toFixed(0)} msg/s`);
}
process.exit(0);
