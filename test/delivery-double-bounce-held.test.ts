import fs from 'node:fs';
import { storeView } from './helpers/store-view.js';
import path from 'node:path';
import nodemailer from 'nodemailer';
import t, { type Test } from 'tap';
import { stringify } from 'yaml';
import { systemClock } from '../src/clock.js';
import { runZegel } from './helpers/child-relay.js';
import { startRelay, waitFor, type TestRelay } from './helpers/relay.js';
import { startSink, type TestSink } from './helpers/sink.js';

/**
 * No silent loss (issue 13), Postfix's double bounce: a message bounces, its
 * DSN to the sender is refused with 5xx, so a notice goes to the postmaster
 * by the internal route; that is refused too, so the notice is HELD — seen in
 * `zegel queue list`, `zegel messages list|show` (child processes), an error
 * log line, /readyz detail and /metrics — until an admin runs `zegel queue
 * retry` (delivered once the next hop accepts) or `zegel queue delete
 * --force` (given up, on the audit trail). Real SMTP next hops throughout.
 */

const SENDER = 'afzender@org.test';
const POSTMASTER = 'postmaster@org.test';
const refuse = { code: 550, message: '5.7.1 refused by test policy' };

interface Fixture {
  relay: TestRelay;
  target: TestSink;
  internal: TestSink;
  configFile: string;
  /** Whether the internal next hop refuses the postmaster. */
  postmasterRefused: { value: boolean };
}

async function fixture(t: Test): Promise<Fixture> {
  const postmasterRefused = { value: true };
  const target = await startSink(t, { rcpt: (address) => (address === 'onbekend@example.com' ? { code: 550, message: '5.1.1 <onbekend@example.com>: User unknown' } : undefined) });
  const internal = await startSink(t, { rcpt: (address) => (address === SENDER || (address === POSTMASTER && postmasterRefused.value) ? refuse : undefined) });
  const relay = await startRelay(
    t,
    {
      organisation: { domains: ['org.test'] },
      smtp: { hostname: 'zegel.org.test' },
      delivery: { target: target.url, internalTarget: internal.url },
      metrics: { listen: '127.0.0.1:0' },
    },
    // the CLI makes a held job due at the wall clock's now: the relay must run on the same clock
    { clock: systemClock },
  );
  const configFile = path.join(path.dirname(relay.dataDir), 'zegel.yaml');
  fs.writeFileSync(configFile, stringify({ data: { dir: relay.dataDir } }));
  return { relay, target, internal, configFile, postmasterRefused };
}

async function submit(t: Test, port: number, tag: string): Promise<string> {
  const transport = nodemailer.createTransport({ host: '127.0.0.1', port, secure: false, ignoreTLS: true });
  t.teardown(() => transport.close());
  const raw = [`From: <${SENDER}>`, 'To: <onbekend@example.com>', `Subject: double bounce ${tag}`, `Message-ID: <db-${tag}@org.test>`, '', `Body ${tag}`, ''].join('\r\n');
  const info = await transport.sendMail({ envelope: { from: SENDER, to: ['onbekend@example.com'] }, raw });
  return /queued as (\S+)$/.exec(info.response)![1]!;
}

const get = async (url: string): Promise<{ status: number; text: string }> => {
  const res = await fetch(url);
  return { status: res.status, text: await res.text() };
};

function sample(text: string, name: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${name} `));
  return line === undefined ? undefined : Number(line.slice(name.length + 1));
}

/** The chain of one bounced message: its DSN, and the postmaster notice about that DSN. */
function chain(relay: TestRelay, id: string): { dsn: string | undefined; notice: string | undefined } {
  const store = storeView(relay.relay.sqlite);
  const dsn = (store.events(id).find((e) => e.type === 'dsn-queued')?.detail as { dsn?: string } | undefined)?.dsn;
  const notice = dsn ? (store.events(dsn).find((e) => e.type === 'postmaster-queued')?.detail as { copy?: string } | undefined)?.copy : undefined;
  return { dsn, notice };
}

async function heldChain(t: Test, f: Fixture, tag: string): Promise<{ id: string; dsn: string; notice: string; job: string }> {
  const id = await submit(t, f.relay.port, tag);
  const queue = f.relay.relay.sqlite.queue;
  await waitFor(() => queue.heldSync().some((j) => j.messageId === chain(f.relay, id).notice), 15_000, `the postmaster notice of ${tag} held (chain so far: ${JSON.stringify(chain(f.relay, id))})`).catch((err: Error) => {
    throw new Error(`${err.message}; chain: ${JSON.stringify(chain(f.relay, id))}`);
  });
  const { dsn, notice } = chain(f.relay, id);
  return { id, dsn: dsn!, notice: notice!, job: queue.heldSync().find((j) => j.messageId === notice)!.id };
}

t.test('bounce, DSN refused, postmaster notice refused: held and visible; queue retry delivers it once the next hop accepts', async (t) => {
  const f = await fixture(t);
  const { relay } = f;
  const store = storeView(relay.relay.sqlite);
  const { id, dsn, notice, job } = await heldChain(t, f, 'retry');

  t.equal(store.getRecipients(id)[0]!.state, 'bounced', 'the original recipient bounced');
  t.equal(store.getRecipients(dsn)[0]!.state, 'bounced', 'the DSN to the sender was refused');
  t.match(store.getRecipients(dsn)[0]!.lastReply, /^550 /);
  const noticeMsg = store.getMessage(notice)!;
  t.equal(noticeMsg.origin, 'postmaster');
  t.equal(noticeMsg.mailFrom, '', 'the notice goes with MAIL FROM:<>');
  t.same(store.getRecipients(notice).map((r) => [r.address, r.state]), [[POSTMASTER, 'pending']], 'the notice to the postmaster is still pending (held), not bounced');
  t.ok(fs.existsSync(path.join(relay.dataDir, 'spool', `${notice}.eml`)), 'its spool file is kept');
  t.ok(store.events(notice).some((e) => e.type === 'held'), 'a held event on the audit trail');
  t.notOk(store.events(notice).some((e) => e.type === 'dsn-queued' || e.type === 'postmaster-queued'), 'never a loop: the failed notice is not bounced again');
  t.equal(f.internal.messages.length, 0, 'nothing reached the internal next hop so far');
  const errorLine = relay.logs().split('\n').find((l) => l.includes('"level":50') && l.includes(notice));
  t.ok(errorLine, 'an error log line names the held mail');
  t.notMatch(errorLine ?? '', /Body retry/, 'the log line carries no content');

  const ready = await get(`${relay.relay.opsUrl}/readyz`);
  t.equal(ready.status, 200, 'readiness stays up: held mail does not stop other mail');
  const readiness = JSON.parse(ready.text) as { status: string; details?: { held?: { messages: number; jobs: string[] } } };
  t.equal(readiness.status, 'degraded');
  t.equal(readiness.details?.held?.messages, 1, '/readyz names the held count');
  t.same(readiness.details?.held?.jobs, [job]);
  const metrics = (await get(`${relay.relay.opsUrl}/metrics`)).text;
  t.equal(sample(metrics, 'zegel_held_messages'), 1, 'zegel_held_messages gauge');
  t.equal(sample(metrics, 'zegel_held_total'), 1, 'zegel_held_total counter');
  t.equal(sample(metrics, 'zegel_postmaster_notices_total'), 1, 'zegel_postmaster_notices_total counter');

  const list = await runZegel(['queue', 'list', '--config', f.configFile]);
  t.equal(list.code, 0, list.stderr);
  t.match(list.stdout, new RegExp(`deliver\\s+${job.replace(/[.$]/g, '\\$&')}\\s+held\\b`), 'zegel queue list shows the job as held');
  t.match(list.stdout, /1 held/);
  const listJson = JSON.parse((await runZegel(['queue', 'list', '--json', '--config', f.configFile])).stdout) as Array<{ id: string; state: string; reason: string | null }>;
  t.match(listJson.find((j) => j.id === job), { state: 'held', reason: /^550 / });
  const messages = await runZegel(['messages', 'list', '--config', f.configFile]);
  t.equal(messages.code, 0, messages.stderr);
  t.match(messages.stdout, new RegExp(`${notice}\\s+state held`), 'zegel messages list shows the held message');
  const show = await runZegel(['messages', 'show', notice, '--json', '--config', f.configFile]);
  t.equal(show.code, 0, show.stderr);
  t.match(JSON.parse(show.stdout), { state: 'held', queueId: notice, job, origin: 'postmaster', recipients: [{ address: POSTMASTER }] }, 'zegel messages show: state held');

  // the admin fixes the next hop and retries
  f.postmasterRefused.value = false;
  const retry = await runZegel(['queue', 'retry', job, '--config', f.configFile]);
  t.equal(retry.code, 0, retry.stderr);
  await waitFor(() => f.internal.messages.length === 1, 15_000, 'the postmaster notice delivered after queue retry');
  const got = f.internal.messages[0]!;
  t.same(got.to, [POSTMASTER]);
  t.equal(got.from, '');
  const text = got.raw.toString('latin1');
  t.match(text, /Subject: Zegel: eigen bericht niet afgeleverd/);
  t.match(text, /Final-Recipient: rfc822; afzender@org\.test/, 'the notice names the refused DSN recipient');
  t.notMatch(text, /Body retry/, 'never the original content');
  await waitFor(() => store.getRecipients(notice)[0]!.state === 'delivered', 5_000, 'notice recorded delivered');
  t.equal(relay.relay.sqlite.queue.heldSync().length, 0, 'nothing held any more');
  t.ok(store.events(notice).some((e) => e.type === 'admin-action' && (e.detail as { held?: boolean }).held === true), 'the retry is an admin-action event');
  t.equal(JSON.parse((await get(`${relay.relay.opsUrl}/readyz`)).text).status, 'ready');
  t.equal(sample((await get(`${relay.relay.opsUrl}/metrics`)).text, 'zegel_held_messages'), 0);
});

t.test('a held notice given up with zegel queue delete --force: refused without --force, then ended on the audit trail', async (t) => {
  const f = await fixture(t);
  const { relay } = f;
  const store = storeView(relay.relay.sqlite);
  const { notice, job } = await heldChain(t, f, 'delete');

  const refused = await runZegel(['queue', 'delete', job, '--config', f.configFile]);
  t.equal(refused.code, 1, 'deleting held mail needs --force');
  t.equal(relay.relay.sqlite.queue.heldSync().length, 1, 'still held');
  const deleted = await runZegel(['queue', 'delete', job, '--force', '--config', f.configFile]);
  t.equal(deleted.code, 0, deleted.stderr);
  t.match(deleted.stdout, /deleted held job/);
  t.equal(relay.relay.sqlite.queue.heldSync().length, 0, 'no longer held');
  const [rcpt] = store.getRecipients(notice);
  t.equal(rcpt!.state, 'bounced');
  t.match(rcpt!.lastReply, /deleted by an admin/);
  t.notOk(fs.existsSync(path.join(relay.dataDir, 'spool', `${notice}.eml`)), 'its spool file is removed');
  t.ok(store.events(notice).some((e) => e.type === 'admin-action' && (e.detail as { command?: string; held?: boolean }).command === 'queue delete' && (e.detail as { held?: boolean }).held === true), 'admin-action event');
  const list = await runZegel(['messages', 'list', '--held', '--json', '--config', f.configFile]);
  t.same(JSON.parse(list.stdout), [], 'zegel messages list --held is empty');
  t.equal(sample((await get(`${relay.relay.opsUrl}/metrics`)).text, 'zegel_held_messages'), 0);
  t.equal(f.internal.messages.length, 0);
});
