import { simpleParser } from 'mailparser';
import nodemailer from 'nodemailer';
import t from 'tap';
import { statusToken } from '../src/secure/status-keys.js';
import { startCluster, type ClusterNode } from './helpers/cluster.js';
import { waitFor } from './helpers/relay.js';

/*
 * Issue 17: a recipient's journey does not care which node answers. A link
 * minted on node A opens on node C; a code sent through node A verifies on
 * node B; five wrong codes spread over three nodes lock the link (the count
 * is one row, under a row lock, in PostgreSQL); a session begun on one node
 * is valid on every other (the cookie is signed with the shared relay key).
 * The recipient's nodes answer over plain HTTP here, as a load balancer
 * without stickiness would send them.
 */

const cluster = await startCluster(t, { config: { organisation: { name: 'Voorbeeldzorg' }, verification: { default: 'email-code' } } });
const [a, b, c] = [await cluster.startNode('a'), await cluster.startNode('b'), await cluster.startNode('c')];

interface Link {
  address: string;
  linkId: string;
}

/** Sends a sensitive message through `node` and resolves to the recipient's link from the notification at the sink. */
async function sendSecure(node: ClusterNode, to: string): Promise<Link> {
  const transport = nodemailer.createTransport({ host: '127.0.0.1', port: node.smtpPort, secure: false, ignoreTLS: true });
  try {
    await transport.sendMail({ from: 'jan@zorg.test', to, subject: 'Dossier', text: 'Het BSN is 123456782.' });
  } finally {
    transport.close();
  }
  return waitFor(async () => {
    for (const m of cluster.sink.messages) {
      if (!m.to.includes(to)) continue;
      const match = /\/m\/([A-Za-z0-9_-]{22})#[A-Za-z0-9_-]{43}/.exec((await simpleParser(m.raw)).text ?? '');
      if (match) return { address: to, linkId: match[1]! };
    }
    return undefined;
  }, 30_000, `the notification to ${to}`);
}

/** A recipient's browser: one cookie jar, any node. */
class Visitor {
  cookie: string | undefined;

  async post(node: ClusterNode, path: string, body?: unknown): Promise<{ status: number; json: Record<string, unknown> }> {
    const res = await fetch(`${node.readerUrl}${path}`, {
      method: 'POST',
      headers: { 'X-Zegel-Reader': '1', ...(body === undefined ? {} : { 'content-type': 'application/json' }), ...(this.cookie ? { cookie: this.cookie } : {}) },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const set = res.headers.get('set-cookie')?.split(';')[0];
    if (set) this.cookie = set;
    return { status: res.status, json: (await res.json()) as Record<string, unknown> };
  }
}

/** The six-digit code of the newest code mail to `address` after `since` sink messages. */
function codeMail(address: string, since: number): Promise<string> {
  return waitFor(async () => {
    for (const m of cluster.sink.messages.slice(since)) {
      if (!m.to.includes(address)) continue;
      const match = /: (\d{6}),/.exec((await simpleParser(m.raw)).text ?? '');
      if (match) return match[1];
    }
    return undefined;
  }, 30_000, `the code mail to ${address}`);
}

t.test('a link minted on A opens on C; a code sent through A verifies on B; the session holds on every node', async (t) => {
  const link = await sendSecure(a, 'piet@extern.test');
  const visitor = new Visitor();
  const opened = await visitor.post(c, `/api/links/${link.linkId}/open`);
  t.equal(opened.status, 200, 'node C opens the link node A minted');
  const before = cluster.sink.messages.length;
  t.equal((await visitor.post(a, `/api/links/${link.linkId}/code`)).status, 200, 'node A sends a code');
  const code = await codeMail(link.address, before);
  const verified = await visitor.post(b, `/api/links/${link.linkId}/verify`, { code });
  t.equal(verified.status, 200, 'node B verifies the code node A sent');
  // the verified session (its cookie rotated at the check) is the same on every node
  for (const node of [a, b, c]) {
    const again = await visitor.post(node, `/api/links/${link.linkId}/open`);
    t.equal(again.status, 200, `node ${node.name} opens it`);
    t.equal(again.json.state, 'verified', `node ${node.name} sees the verified session`);
  }
});

t.test('five wrong codes spread over three nodes lock the link', async (t) => {
  const link = await sendSecure(b, 'klaas@extern.test');
  const owner = new Visitor();
  await owner.post(a, `/api/links/${link.linkId}/open`);
  const before = cluster.sink.messages.length;
  await owner.post(a, `/api/links/${link.linkId}/code`);
  const code = await codeMail(link.address, before);
  const wrong = code === '000000' ? '111111' : '000000';
  const nodes = [a, b, c, a, b];
  const answers: number[] = [];
  // five attackers at once, one per request, each on its own session and node: no node can count them alone
  const tries = await Promise.all(
    nodes.map(async (node) => {
      const attacker = new Visitor();
      await attacker.post(node, `/api/links/${link.linkId}/open`);
      return attacker.post(node, `/api/links/${link.linkId}/verify`, { code: wrong });
    }),
  );
  for (const r of tries) answers.push(r.status);
  t.same(
    answers.slice().sort(),
    [401, 401, 401, 401, 423],
    'four wrong-code answers and one lock, however the tries interleave',
  );
  const right = await owner.post(c, `/api/links/${link.linkId}/verify`, { code });
  t.equal(right.status, 423, 'locked everywhere: even the right code on node C is refused');
  const rows = await cluster.query<{ locked_until: string | null }>('SELECT locked_until FROM secure_links WHERE id = $1', [link.linkId]);
  t.ok(Number(rows[0]?.locked_until) > Date.now(), 'the lock is one row in PostgreSQL');
});

t.test('revoke on node B, from the sender’s status page, is seen on every node', async (t) => {
  const link = await sendSecure(c, 'anna@extern.test');
  // the sender's receipt (from node C's worker) carries the status link with its key in the fragment
  const status = await waitFor(async () => {
    for (const m of cluster.sink.messages) {
      if (!m.to.includes('jan@zorg.test')) continue;
      const text = (await simpleParser(m.raw)).text ?? '';
      const match = text.includes('anna@extern.test') ? /\/s\/([A-Za-z0-9_-]{22})#([A-Za-z0-9_-]{43})/.exec(text) : null;
      if (match) return { id: match[1]!, token: statusToken(Buffer.from(match[2]!, 'base64url'), match[1]!).toString('base64url') };
    }
    return undefined;
  }, 30_000, 'the sender’s receipt');
  const visitor = new Visitor();
  t.equal((await visitor.post(a, `/api/links/${link.linkId}/open`)).status, 200, 'the link opens before');
  const revoked = await fetch(`${b.readerUrl}/api/status/${status.id}/revoke`, {
    method: 'POST',
    headers: { 'X-Zegel-Reader': '1', 'x-zegel-status': status.token, 'content-type': 'application/json' },
    body: JSON.stringify({ linkId: link.linkId }),
  });
  t.equal(revoked.status, 200, 'node B revokes the link');
  for (const node of [a, b, c]) {
    const after = await visitor.post(node, `/api/links/${link.linkId}/open`);
    t.equal(after.status, 410, `node ${node.name} answers 410`);
    t.same(after.json, { error: 'revoked' }, `node ${node.name}: revoked`);
  }
  const rows = await cluster.query<{ wrap: Buffer | null; k_srv: Buffer | null }>('SELECT wrap, k_srv FROM secure_links WHERE id = $1', [link.linkId]);
  t.same([rows[0]?.wrap, rows[0]?.k_srv], [null, null], 'its wrap and K_srv are gone from PostgreSQL');
});
