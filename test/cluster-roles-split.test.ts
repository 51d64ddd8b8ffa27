import { simpleParser } from 'mailparser';
import nodemailer from 'nodemailer';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import t from 'tap';
import { openPgPool } from '../src/store/pg/connect.js';
import { migrate } from '../src/store/pg/migrate.js';
import { receivedTags, startCluster, submit, type ClusterNode } from './helpers/cluster.js';
import { waitFor } from './helpers/relay.js';

/*
 * Issue 17: `zegel start --role smtp|worker|reader`, each node logged in as
 * a member of the database group role of its part (docs/cluster.md, "Roles
 * and grants"): the SMTP node takes mail in, the worker classifies,
 * encrypts and delivers, the reader serves the recipient, and none of them
 * has more than its grants. The owner migrates first (`zegel db migrate`);
 * nodes that are not the owner find the schema current and change nothing.
 * A plain message and a secure one go the whole way through the three.
 */

const cluster = await startCluster(t, { config: { organisation: { name: 'Voorbeeldzorg' }, verification: { default: 'email-code' } } });
const owner = await openPgPool({ url: cluster.url, passwordFile: cluster.pg.passwordFile, applicationName: 'zegel-test-owner' });
t.teardown(() => owner.close());
await migrate(owner);

/** A login role in `group` with the server's test password, and the store URL a node logs in with. */
async function login(name: string, group: string): Promise<string> {
  await owner.query(`CREATE ROLE ${name} LOGIN PASSWORD '${cluster.pg.password}' IN ROLE ${group}`);
  return cluster.url.replace('postgres@', `${name}@`);
}

const smtp = await cluster.startNode('smtp', { role: 'smtp', config: { store: { url: await login('node_smtp', 'zegel_smtp') } } });
const worker = await cluster.startNode('worker', { role: 'worker', config: { store: { url: await login('node_worker', 'zegel_worker') } } });
// what a crash while a reply was composed leaves: a plaintext draft in the node's own data.dir
const leftDraft = path.join(cluster.base, 'reader', 'drafts', 'R1.eml');
fs.mkdirSync(path.dirname(leftDraft), { recursive: true, mode: 0o700 });
fs.writeFileSync(leftDraft, 'Subject: antwoord\r\n\r\nplaintext van een half geschreven antwoord\r\n');
const reader = await cluster.startNode('reader', { role: 'reader', config: { store: { url: await login('node_reader', 'zegel_reader') } } });

/** Whether something accepts TCP connections on a loopback port. */
function listening(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1');
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

async function post(node: ClusterNode, path: string, cookie: string | undefined, body?: unknown): Promise<{ status: number; cookie: string | undefined }> {
  const res = await fetch(`${node.readerUrl}${path}`, {
    method: 'POST',
    headers: { 'X-Zegel-Reader': '1', ...(body === undefined ? {} : { 'content-type': 'application/json' }), ...(cookie ? { cookie } : {}) },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  await res.arrayBuffer();
  return { status: res.status, cookie: res.headers.get('set-cookie')?.split(';')[0] ?? cookie };
}

t.test('each role runs only its part', async (t) => {
  t.ok(await listening(smtp.smtpPort), 'the SMTP node listens for mail');
  t.notOk(await listening(Number(new URL(smtp.readerUrl).port)), 'and serves no reader');
  t.notOk(await listening(reader.smtpPort), 'the reader node takes no mail');
  t.ok(await listening(Number(new URL(reader.readerUrl).port)), 'and serves the reader');
  t.notOk(await listening(worker.smtpPort), 'the worker takes no mail');
  t.notOk(await listening(Number(new URL(worker.readerUrl).port)), 'and serves no reader');
  t.match(smtp.output(), /"role":"smtp","store":"postgres"/, 'the start line names role and store');
  t.notOk(fs.existsSync(leftDraft), 'the reader node removed the draft a crash left at its start');
});

t.test('a plain message: taken in by the SMTP node, delivered by the worker', async (t) => {
  const sent = await submit(smtp, 'split-plain');
  t.equal(sent.code, 250, sent.response);
  await waitFor(() => receivedTags(cluster.sink).get('split-plain'), 30_000, 'delivered');
  t.pass('delivered');
});

t.test('a secure message: encrypted by the worker, read through the reader node with a code it sends', async (t) => {
  const to = 'marie@extern.test';
  const transport = nodemailer.createTransport({ host: '127.0.0.1', port: smtp.smtpPort, secure: false, ignoreTLS: true });
  await transport.sendMail({ from: 'jan@zorg.test', to, subject: 'Dossier', text: 'Het BSN is 123456782.' }).finally(() => transport.close());
  const linkId = await waitFor(async () => {
    for (const m of cluster.sink.messages) {
      if (!m.to.includes(to)) continue;
      const match = /\/m\/([A-Za-z0-9_-]{22})#/.exec((await simpleParser(m.raw)).text ?? '');
      if (match) return match[1];
    }
    return undefined;
  }, 30_000, 'the notification');
  const opened = await post(reader, `/api/links/${linkId}/open`, undefined);
  t.equal(opened.status, 200, 'the reader node opens the link');
  const before = cluster.sink.messages.length;
  const asked = await post(reader, `/api/links/${linkId}/code`, opened.cookie);
  t.equal(asked.status, 200, 'the reader node queues a code mail (it may add to the spool, not read it)');
  const code = await waitFor(async () => {
    for (const m of cluster.sink.messages.slice(before)) {
      const match = m.to.includes(to) ? /: (\d{6}),/.exec((await simpleParser(m.raw)).text ?? '') : null;
      if (match) return match[1];
    }
    return undefined;
  }, 30_000, 'the code mail, delivered by the worker');
  const verified = await post(reader, `/api/links/${linkId}/verify`, asked.cookie, { code });
  t.equal(verified.status, 200, 'the code verifies');
  for (const node of [smtp, worker, reader]) {
    t.notMatch(node.output(), /permission denied|insufficient_privilege|42501/, `node ${node.name} never ran into its grants`);
  }
});
