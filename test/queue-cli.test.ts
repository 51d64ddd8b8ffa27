import path from 'node:path';
import fs from 'node:fs';
import t from 'tap';
import nodemailer from 'nodemailer';
import Database from 'better-sqlite3';
import { stringify } from 'yaml';
import { startRelay, tempDir, waitFor } from './helpers/relay.js';
import { freePort, runZegel } from './helpers/child-relay.js';



const zegel = (args: string[]) => runZegel(args);

interface ListedJob {
  kind: string;
  id: string;
  state: string;
  attempts: number;
  runAt: string;
  createdAt: string;
  ageSeconds: number;
  messageId: string | null;
}

t.test('zegel queue list, retry and delete as an operator runs them', async (t) => {
  const dir = tempDir(t);
  const dataDir = path.join(dir, 'data');
  const closed = await freePort();
  // a relay whose next hop is down: the message waits as a delayed deliver job
  const { relay, port, logs } = await startRelay(t, { delivery: { target: `smtp://127.0.0.1:${closed}` }, receipts: { sender: false } }, { dataDir });
  const transport = nodemailer.createTransport({ host: '127.0.0.1', port, secure: false, ignoreTLS: true });
  const info = await transport.sendMail({ envelope: { from: 'jan@org.test', to: ['klant@example.com'] }, raw: 'From: jan@org.test\r\nSubject: x\r\n\r\nhallo\r\n' });
  transport.close();
  const queueId = /queued as (\S+)$/.exec(info.response)![1]!;
  await waitFor(() => logs().includes('"result":"deferred"'), 15_000, 'a deferred attempt');
  await relay.backend.queue.idle();
  await relay.stop(1_000);
  const configFile = path.join(dir, 'zegel.yaml');
  fs.writeFileSync(configFile, stringify({ data: { dir: dataDir } }));

  const listed = await zegel(['queue', 'list', '--json', '--config', configFile]);
  t.equal(listed.code, 0, listed.stderr);
  const jobs = JSON.parse(listed.stdout) as ListedJob[];
  const deliver = jobs.find((j) => j.kind === 'deliver')!;
  t.ok(deliver, 'the deliver job is listed');
  t.equal(deliver.id, `deliver:${queueId}:target`);
  t.equal(deliver.messageId, queueId);
  t.equal(deliver.state, 'delayed');
  t.equal(deliver.attempts, 1);
  t.ok(Date.parse(deliver.runAt) > Date.now(), 'runs later');
  t.ok(jobs.some((j) => j.kind === 'purge'), 'the periodic purge job is listed');

  const table = await zegel(['queue', 'list', '--config', configFile]);
  t.equal(table.code, 0);
  t.match(table.stdout, /^KIND\s+ID\s+STATE\s+ATTEMPTS\s+RUN AT \(UTC\)\s+AGE$/m);
  t.match(table.stdout, new RegExp(`^deliver\\s+deliver:${queueId}:target\\s+delayed\\s+1\\s+\\d{4}-\\d\\d-\\d\\d \\d\\d:\\d\\d:\\d\\d\\s+\\d+s$`, 'm'));

  const unknown = await zegel(['queue', 'retry', 'deliver:nope:target', '--config', configFile]);
  t.equal(unknown.code, 1);
  t.match(unknown.stderr, new RegExp(`^zegel: data directory ${dataDir} \\(data\\.dir of ${configFile}\\)\nzegel: ZEGEL_UNKNOWN_JOB: no queued job deliver:nope:target`), 'which data directory, then the error');

  const retried = await zegel(['queue', 'retry', deliver.id, '--config', configFile]);
  t.equal(retried.code, 0, retried.stderr);
  t.match(retried.stdout, `job ${deliver.id} is due now`);
  const afterRetry = JSON.parse((await zegel(['queue', 'list', '--json', '--config', configFile])).stdout) as ListedJob[];
  t.equal(afterRetry.find((j) => j.id === deliver.id)!.state, 'due');

  const refused = await zegel(['queue', 'delete', deliver.id, '--config', configFile]);
  t.equal(refused.code, 1, 'a deliver job is not deleted without --force');
  t.match(refused.stderr, /ZEGEL_QUEUE_DELETE_REFUSED: .*deliver job of message .* \(1 recipient\(s\) pending\).*--force/);

  const forced = await zegel(['queue', 'delete', deliver.id, '--force', '--config', configFile]);
  t.equal(forced.code, 0, forced.stderr);
  t.match(forced.stderr, /warning: deleted deliver job .* 1 recipient\(s\) left pending/);
  t.match(forced.stdout, `deleted job ${deliver.id}`);

  const purge = jobs.find((j) => j.kind === 'purge')!;
  const purged = await zegel(['queue', 'delete', purge.id, '--config', configFile]);
  t.equal(purged.code, 0, 'a purge job needs no --force');
  t.match(purged.stderr, /scheduled again at the next start/);

  const left = JSON.parse((await zegel(['queue', 'list', '--json', '--config', configFile])).stdout) as ListedJob[];
  t.notOk(left.some((j) => j.id === deliver.id || j.id === purge.id), 'both deleted jobs are gone');
  for (const job of left) t.equal((await zegel(['queue', 'delete', job.id, '--config', configFile])).code, 0, `${job.kind} jobs (no mail) need no --force`);
  const empty = await zegel(['queue', 'list', '--config', configFile]);
  t.equal(empty.stdout, 'no queued jobs\n');

  const usage = await zegel(['queue', 'delete']);
  t.equal(usage.code, 2, 'a usage error exits 2');

  const db = new Database(path.join(dataDir, 'zegel.db'), { readonly: true });
  t.teardown(() => db.close());
  const events = db.prepare("SELECT message_id, detail FROM events WHERE type = 'admin-action' ORDER BY seq").all() as Array<{ message_id: string | null; detail: string }>;
  t.same(
    events.map((e) => [e.message_id, JSON.parse(e.detail).command, JSON.parse(e.detail).force]),
    [
      [queueId, 'queue retry', undefined],
      [queueId, 'queue delete', true],
      [null, 'queue delete', false],
      ...left.map(() => [null, 'queue delete', false]),
    ],
    'retry and deletes are recorded as admin actions; the refused delete is not',
  );
});
