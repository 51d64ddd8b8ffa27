import type { ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import nodemailer from 'nodemailer';
import type { Test } from 'tap';
import { stringify } from 'yaml';
import { generateKeys } from '../../src/cli/keys-commands.js';
import { freePort, spawnRelay } from './child-relay.js';
import { startPostgres, type PgServer } from './pg-server.js';
import { startRedis, type RedisServer } from './redis-server.js';
import { merge, tempDir } from './relay.js';
import { startSink, type TestSink } from './sink.js';

/**
 * A Zegel cluster on loopback for one test file: a private PostgreSQL and
 * redis-server (each its own process, so a test can kill and restart it),
 * one key directory every node reads (`zegel keys generate`), a test sink as
 * the next hop, and nodes started as the real CLI (`node bin/zegel start
 * --role R --config FILE`) in child processes, so a test can SIGKILL one.
 */
export interface ClusterNode {
  readonly name: string;
  readonly role: string;
  readonly child: ChildProcess;
  /** The SMTP port (undefined for a role without SMTP). */
  readonly smtpPort: number;
  /** The reader's base URL, http://127.0.0.1:port. */
  readonly readerUrl: string;
  readonly configFile: string;
  /** stdout and stderr so far (pino JSON lines). */
  output(): string;
  /** Resolves with the exit code or signal name. */
  readonly exited: Promise<number | string>;
  /** SIGKILL: the node dies mid-work, as a crashed machine would. */
  kill(): Promise<void>;
  /** SIGTERM: the node drains and exits. */
  stop(): Promise<number | string>;
}

export interface Cluster {
  readonly pg: PgServer;
  readonly redis: RedisServer;
  readonly sink: TestSink;
  /** postgres://… of the cluster's database (as the superuser; its password in pg.passwordFile). */
  readonly url: string;
  readonly base: string;
  readonly nodes: ClusterNode[];
  /** Starts one node; resolves once it logged "relay started". */
  startNode(name: string, options?: { role?: string; config?: Record<string, unknown> }): Promise<ClusterNode>;
  /** One statement on the cluster's database as the superuser. */
  query<R extends Record<string, unknown>>(sql: string, params?: unknown[]): Promise<R[]>;
}

export interface ClusterOptions {
  /** Settings every node gets on top of the cluster's own (deep-merged). */
  config?: Record<string, unknown>;
}

const CLUSTER_RULES = `rules:
  - id: bsn
    description:
      nl: Geldig burgerservicenummer (BSN, voldoet aan de elfproef)
      en: Valid Dutch citizen service number (BSN, passes the 11-check)
    detector: { kind: bsn }
    scopes: [subject, body, filename, attachment]
    action: encrypt
`;

export async function startCluster(t: Test, options: ClusterOptions = {}): Promise<Cluster> {
  const base = tempDir(t, 'zegel-cluster-');
  const [pg, redis, sink] = await Promise.all([startPostgres(), startRedis(), startSink(t)]);
  t.teardown(() => redis.cleanup());
  t.teardown(() => pg.cleanup());
  const url = await pg.createDatabase('zegel');
  const keyDir = path.join(base, 'keys');
  fs.mkdirSync(keyDir, { mode: 0o700 });
  generateKeys(keyDir);
  // The cluster's rules: the BSN rule alone, which the secure-message tests use. The shipped set
  // (28 rules, word lists of thousands of terms) takes each node 2 s of CPU to load at start, three
  // nodes per file, with other files loading theirs at once on a 2-core machine; what a node does
  // with its rules is the same either way, and tested elsewhere.
  const rulesDir = path.join(base, 'rules');
  fs.mkdirSync(rulesDir);
  fs.writeFileSync(path.join(rulesDir, 'cluster.yaml'), CLUSTER_RULES);
  const nodes: ClusterNode[] = [];
  const common = merge(
    {
      store: { driver: 'postgres', url, passwordFile: pg.passwordFile, keyFile: path.join(keyDir, 'storage.key') },
      queue: { driver: 'bullmq', url: redis.url },
      data: { relayKeyFile: path.join(keyDir, 'relay.key') },
      audit: { signingKeyFile: path.join(keyDir, 'audit-signing.pem') },
      organisation: { domains: ['zorg.test'] },
      smtp: { hostname: 'zegel.zorg.test' },
      delivery: { target: sink.url, postmaster: 'postmaster@zorg.test' },
      log: { level: 'info' },
      rules: { dir: rulesDir },
    },
    options.config ?? {},
  );

  async function startNode(name: string, nodeOptions: { role?: string; config?: Record<string, unknown> } = {}): Promise<ClusterNode> {
    const role = nodeOptions.role ?? 'all';
    const [smtpPort, readerPort] = [await freePort(), await freePort()];
    const config = merge(
      merge(common, {
        data: { dir: path.join(base, name) },
        smtp: { listen: `127.0.0.1:${smtpPort}` },
        reader: { listen: `127.0.0.1:${readerPort}`, publicUrl: `http://127.0.0.1:${readerPort}` },
      }),
      nodeOptions.config ?? {},
    );
    const configFile = path.join(base, `${name}.yaml`);
    fs.writeFileSync(configFile, stringify(config));
    const { child, output, exited } = await spawnRelay(t, ['start', '--role', role, '--config', configFile], `node ${name}`, 60_000);
    const node: ClusterNode = {
      name,
      role,
      child,
      smtpPort,
      readerUrl: `http://127.0.0.1:${readerPort}`,
      configFile,
      output,
      exited,
      kill: async () => {
        child.kill('SIGKILL');
        await exited;
      },
      stop: () => {
        child.kill('SIGTERM');
        return exited;
      },
    };
    nodes.push(node);
    return node;
  }

  return {
    pg,
    redis,
    sink,
    url,
    base,
    nodes,
    startNode,
    query: (sql, params) => pg.query(sql, params, 'zegel'),
  };
}

/** What one SMTP submission got: the reply code and, when accepted, the queue id. */
export interface Submission {
  tag: string;
  node: string;
  code: number;
  queueId?: string;
  response: string;
}

/**
 * Sends one plain message to a node over SMTP (nodemailer, one connection,
 * no retry of its own) and reports the reply: accepted (250 and the queue id)
 * or refused (the code; 0 when the connection itself failed).
 */
export async function submit(node: Pick<ClusterNode, 'name' | 'smtpPort'>, tag: string, to = 'ontvanger@extern.test'): Promise<Submission> {
  const transport = nodemailer.createTransport({ host: '127.0.0.1', port: node.smtpPort, secure: false, ignoreTLS: true, connectionTimeout: 10_000, greetingTimeout: 10_000, socketTimeout: 30_000 });
  try {
    const info = await transport.sendMail({
      from: 'afzender@zorg.test',
      to,
      subject: `cluster ${tag}`,
      text: `Bericht ${tag}: een gewone mail zonder gevoelige inhoud.\r\n`,
      headers: { 'X-Test-Tag': tag },
    });
    return { tag, node: node.name, code: 250, queueId: /queued as (\S+)/.exec(info.response)?.[1], response: info.response };
  } catch (err) {
    const e = err as { responseCode?: number; response?: string; message: string };
    return { tag, node: node.name, code: e.responseCode ?? 0, response: e.response ?? e.message };
  } finally {
    transport.close();
  }
}

/** The X-Test-Tag of each message the sink received, with how often it arrived. */
export function receivedTags(sink: TestSink): Map<string, number> {
  const seen = new Map<string, number>();
  for (const message of sink.messages) {
    const tag = /^X-Test-Tag: (\S+)/im.exec(message.raw.toString('latin1'))?.[1];
    if (tag) seen.set(tag, (seen.get(tag) ?? 0) + 1);
  }
  return seen;
}

/**
 * Waits (up to `timeoutMs`) until the sink received every submission in
 * `expected`, and resolves to what it received by tag either way: the
 * caller asserts on what is missing, so a loss is reported, not a timeout.
 */
export async function deliveredTags(sink: TestSink, expected: readonly Pick<Submission, 'tag'>[], timeoutMs = 60_000): Promise<Map<string, number>> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const tags = receivedTags(sink);
    if (expected.every((s) => tags.has(s.tag)) || Date.now() > deadline) return tags;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}
