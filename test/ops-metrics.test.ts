import fs from 'node:fs';
import path from 'node:path';
import t from 'tap';
import nodemailer from 'nodemailer';
import { shippedRulesDir } from '../src/classify/rules/load.js';
import { startRelay, tempDir, waitFor } from './helpers/relay.js';
import { startSink } from './helpers/sink.js';
import { freePort } from './helpers/child-relay.js';
import { BLOCK_RULE } from './helpers/rules.js';

async function send(port: number, to: string[], subject: string, body: string): Promise<string> {
  const transport = nodemailer.createTransport({ host: '127.0.0.1', port, secure: false, ignoreTLS: true });
  try {
    const info = await transport.sendMail({ envelope: { from: 'jan@org.test', to }, raw: `From: jan@org.test\r\nTo: ${to.join(', ')}\r\nSubject: ${subject}\r\n\r\n${body}\r\n` });
    return /queued as (\S+)$/.exec(info.response)![1]!;
  } finally {
    transport.close();
  }
}

async function scrape(url: string): Promise<string> {
  const res = await fetch(`${url}/metrics`);
  if (res.status !== 200) throw new Error(`/metrics answered ${res.status}`);
  return res.text();
}

/** The value of one sample, `name{a="b",…}` (labels in any order), or undefined. */
function sample(text: string, name: string, labels: Record<string, string> = {}): number | undefined {
  for (const line of text.split('\n')) {
    if (line.startsWith('#')) continue;
    const match = /^([a-zA-Z_:][\w:]*)(?:\{([^}]*)\})? (\S+)$/.exec(line);
    if (!match || match[1] !== name) continue;
    const have = Object.fromEntries([...(match[2] ?? '').matchAll(/(\w+)="([^"]*)"/g)].map((m) => [m[1], m[2]]));
    if (Object.entries(labels).every(([k, v]) => have[k] === v)) return Number(match[3]);
  }
  return undefined;
}

t.test('metrics change as mail flows: received, decisions, rule matches, deliveries, bounces, durations, queue depth', async (t) => {
  const rules = path.join(tempDir(t), 'rules');
  fs.cpSync(shippedRulesDir(), rules, { recursive: true });
  fs.writeFileSync(path.join(rules, 'zwaan.yaml'), BLOCK_RULE);
  const sink = await startSink(t, { rcpt: (address) => (address.startsWith('weg@') ? { code: 550, message: '5.1.1 no such user' } : undefined) });
  const { relay, port } = await startRelay(t, {
    organisation: { domains: ['org.test'] },
    rules: { dir: rules },
    delivery: { target: sink.url },
    receipts: { sender: false },
    metrics: { listen: '127.0.0.1:0' },
  });
  const url = relay.opsUrl!;
  t.match(url, /^http:\/\/127\.0\.0\.1:\d+$/);

  const before = await scrape(url);
  t.equal(sample(before, 'zegel_messages_received_total'), 0, 'nothing received yet');
  t.ok(sample(before, 'process_cpu_user_seconds_total') !== undefined, 'default Node metrics are included');
  t.ok(sample(before, 'nodejs_eventloop_lag_seconds') !== undefined);
  t.ok((sample(before, 'zegel_rules_loaded') ?? 0) > 5, 'the rule count is reported');
  t.equal(sample(before, 'zegel_queue_jobs', { kind: 'deliver', state: 'ready' }), 0, 'known kinds are reported before their first job');

  await send(port, ['klant@example.com'], 'planning', 'Tot morgen.');
  await send(port, ['klant@example.com'], 'planning', 'Over projectzwaan later meer.');
  await send(port, ['klant@example.com'], '[veilig] uitslag', 'Zie bijlage.');
  await send(port, ['weg@example.com'], 'hallo', 'Gewoon een bericht.');
  await waitFor(() => sink.messages.length === 2, 15_000, 'the plain message and the notification');
  await relay.backend.queue.idle();

  const after = await scrape(url);
  t.equal(sample(after, 'zegel_messages_received_total'), 4);
  t.equal(sample(after, 'zegel_decisions_total', { action: 'deliver', reason: 'no-findings' }), 2);
  t.equal(sample(after, 'zegel_decisions_total', { action: 'block', reason: 'rule' }), 1);
  t.equal(sample(after, 'zegel_decisions_total', { action: 'encrypt', reason: 'rules' }), 1);
  t.equal(sample(after, 'zegel_rule_matches_total', { rule: 'project-zwaan', action: 'block' }), 1);
  t.equal(sample(after, 'zegel_rule_matches_total', { rule: 'opt-in-tag', action: 'encrypt' }), 1);
  t.equal(sample(after, 'zegel_delivery_attempts_total', { route: 'target', result: 'delivered' }), 2, 'the plain message and the notification');
  t.equal(sample(after, 'zegel_delivery_attempts_total', { route: 'target', result: 'bounced' }), 1);
  t.equal(sample(after, 'zegel_bounces_total', { route: 'target' }), 1);
  t.equal(sample(after, 'zegel_classify_duration_seconds_count', { result: 'ok' }), 4, 'every ingress message classified once');
  t.equal(sample(after, 'zegel_encrypt_duration_seconds_count'), 1);
  t.equal(sample(after, 'zegel_queue_jobs', { kind: 'deliver', state: 'ready' }), 0);
  t.equal(sample(after, 'zegel_ready'), 1);

  // privacy and cardinality: no addresses, no ids in any label or value
  for (const secret of ['klant@example.com', 'weg@example.com', 'jan@org.test', 'org.test']) t.notOk(after.includes(secret), `${secret} is not in /metrics`);
  t.notOk(/queue_id|message_id|messageId|address=/.test(after), 'no id or address labels');

  // the public reader port does not serve metrics
  const onReader = await fetch(`${relay.readerUrl}/metrics`);
  t.not(onReader.status, 200, 'the reader port does not answer /metrics');
  await onReader.arrayBuffer();
});

t.test('queue depth and age: a deferred delivery shows as a delayed deliver job, collected from the queue on scrape', async (t) => {
  const closed = await freePort();
  const { relay, port, clock } = await startRelay(t, {
    delivery: { target: `smtp://127.0.0.1:${closed}` },
    receipts: { sender: false },
    metrics: { listen: '127.0.0.1:0' },
  });
  await send(port, ['klant@example.com'], 'planning', 'Tot morgen.');
  await waitFor(async () => sample(await scrape(relay.opsUrl!), 'zegel_delivery_attempts_total', { route: 'target', result: 'deferred' }) === 1, 15_000, 'a deferred attempt');
  await relay.backend.queue.idle();
  (clock as { advance?: (ms: number) => void }).advance?.(90_000);
  const text = await scrape(relay.opsUrl!);
  t.equal(sample(text, 'zegel_queue_jobs', { kind: 'deliver', state: 'delayed' }), 1);
  t.equal(sample(text, 'zegel_queue_jobs', { kind: 'process', state: 'ready' }), 0);
  const age = sample(text, 'zegel_queue_oldest_job_age_seconds', { kind: 'deliver' }) ?? 0;
  t.ok(age >= 90, `the oldest deliver job is ${age}s old (clock moved 90 s)`);
});

t.test('reader events: opens, check failures and lockouts are counted from the event stream; other events are not', async (t) => {
  const { Metrics } = await import('../src/ops/metrics.js');
  const metrics = new Metrics({ defaultMetrics: false });
  for (const type of ['opened', 'opened', 'downloaded', 'check-failed', 'check-failed', 'check-failed', 'locked', 'check-passed', 'code-sent', 'received', 'forgot-code']) metrics.readerEvent(type);
  const { body } = await metrics.scrape();
  t.equal(sample(body, 'zegel_reader_events_total', { event: 'opens' }), 2);
  t.equal(sample(body, 'zegel_reader_events_total', { event: 'downloads' }), 1);
  t.equal(sample(body, 'zegel_reader_events_total', { event: 'check_failures' }), 3);
  t.equal(sample(body, 'zegel_reader_events_total', { event: 'lockouts' }), 1);
  t.equal(sample(body, 'zegel_reader_events_total', { event: 'checks_passed' }), 1);
  t.equal(sample(body, 'zegel_reader_events_total', { event: 'codes_sent' }), 1);
  t.notOk(/event="(received|forgot-code)"/.test(body));
  t.notOk(/process_cpu/.test(body), 'default metrics can be left out (component tests)');
});
