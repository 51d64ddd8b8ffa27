import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { freePort } from './child-relay.js';
import type { Teardown } from './relay.js';

/**
 * A private Postfix instance for tests (Debian's postfix package), next to
 * whatever the host runs, on loopback ports only:
 *
 * - `postfix -c DIR` reads main.cf and master.cf from DIR; run as root it needs
 *   no `alternate_config_directories` entry in /etc/postfix/main.cf.
 * - Its own queue_directory and data_directory (owned by the postfix user),
 *   created by `postfix -c DIR set-permissions`.
 * - Debian's master.cf is copied and its `smtp inet` listener moved to a
 *   loopback port (the "submission" listener the test's mail client talks to);
 *   `extraMaster` lines are appended (content-filter transports, re-injection
 *   listeners). Most daemons run chrooted in the queue directory; that works
 *   because nothing needs /etc there (numeric next hops, `inline:` maps,
 *   no DNS).
 * - `postfix -c DIR start-fg` keeps master in the foreground as our child;
 *   `maillog_file` (allowed by `maillog_file_prefixes`) writes the log via
 *   postlogd into `DIR/maillog` (Node's pipes are sockets, on which
 *   /dev/stdout cannot be opened).
 * - Stopped at teardown with `postfix -c DIR stop`; if master does not exit,
 *   it is killed by its pid file and then the child, so that no Postfix master
 *   of a test is ever left running.
 */

export const POSTFIX = '/usr/sbin/postfix';
export const POSTCONF = '/usr/sbin/postconf';

export function postfixInstalled(): boolean {
  return fs.existsSync(POSTFIX) && fs.existsSync('/etc/postfix/master.cf') && spawnSync('id', ['-u', 'postfix']).status === 0;
}

export interface PostfixOptions {
  /** main.cf lines added after the private instance's own (later lines win). */
  main?: string[];
  /** master.cf lines appended to Debian's master.cf. */
  master?: string[];
  /** The submission listener's port (default: a free one). */
  port?: number;
}

export interface PostfixInstance {
  dir: string;
  conf: string;
  queue: string;
  /** The loopback port of the submission listener (Debian's `smtp inet` line). */
  port: number;
  /** Postfix's log so far. */
  log(): string;
  /** Queue files still in incoming, active, deferred or hold (empty: nothing waits). */
  queued(): string[];
  stop(): Promise<void>;
}

function files(dir: string): string[] {
  if (!fs.existsSync(dir)) return [];
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? files(path.join(dir, e.name)) : [path.join(dir, e.name)]));
}

async function listening(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ host: '127.0.0.1', port });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

/**
 * main.cf lines of the test organisation's mail server (mx.zorg.test): zorg.test is local and goes to
 * the mailbox sink, everything else to the "Internet" sink, and all of it through Zegel's filter first.
 */
export function orgMainCf(ports: { internet: number; mailbox: number; zegel: number }): string[] {
  return [
    'myhostname = mx.zorg.test',
    'mydomain = zorg.test',
    'myorigin = $mydomain',
    'relay_domains = zorg.test',
    `relayhost = [127.0.0.1]:${ports.internet}`,
    `transport_maps = inline:{ zorg.test=smtp:[127.0.0.1]:${ports.mailbox} }`,
    `content_filter = zegel:[127.0.0.1]:${ports.zegel}`,
  ];
}

/** Starts a private Postfix under `dir` (a fresh directory the test owns). Stopped at teardown. */
export async function startPostfix(t: Teardown, dir: string, options: PostfixOptions = {}): Promise<PostfixInstance> {
  const conf = path.join(dir, 'conf');
  const queue = path.join(dir, 'queue');
  const data = path.join(dir, 'data');
  for (const d of [conf, queue, data]) fs.mkdirSync(d, { recursive: true });
  // the postfix user must be able to traverse to its queue (mkdtemp makes 0700)
  for (let d = dir; d.startsWith(os.tmpdir() + path.sep); d = path.dirname(d)) fs.chmodSync(d, 0o755);
  const port = options.port ?? (await freePort());
  const logFile = path.join(dir, 'maillog');
  fs.writeFileSync(
    path.join(conf, 'main.cf'),
    [
      '# private test instance (test/helpers/postfix.ts)',
      'compatibility_level = 3.6',
      'inet_interfaces = 127.0.0.1',
      'inet_protocols = ipv4',
      'mydestination =',
      'alias_maps =',
      'alias_database =',
      'local_recipient_maps =',
      'disable_dns_lookups = yes',
      'smtp_host_lookup = native',
      'mynetworks = 127.0.0.0/8',
      'smtpd_relay_restrictions = permit_mynetworks, reject',
      `queue_directory = ${queue}`,
      `data_directory = ${data}`,
      `maillog_file_prefixes = /var, /dev/stdout, ${dir}`,
      `maillog_file = ${logFile}`,
      'smtp_tls_security_level = none',
      'smtpd_tls_security_level = none',
      // quick queue runs and retries: tests wait for mail, not for backoff
      'queue_run_delay = 1s',
      'minimal_backoff_time = 1s',
      'maximal_backoff_time = 2s',
      'in_flow_delay = 0',
      'biff = no',
      ...(options.main ?? []),
      '',
    ].join('\n'),
  );
  const master = fs.readFileSync('/etc/postfix/master.cf', 'utf8');
  const listener = /^smtp(\s+)inet(\s)/m;
  if (!listener.test(master)) throw new Error('/etc/postfix/master.cf has no "smtp inet" line to move to a loopback port');
  fs.writeFileSync(path.join(conf, 'master.cf'), `${master.replace(listener, `127.0.0.1:${port} inet$2`).trimEnd()}\n${(options.master ?? []).join('\n')}\n`);
  const uid = Number(spawnSync('id', ['-u', 'postfix'], { encoding: 'utf8' }).stdout);
  const gid = Number(spawnSync('id', ['-g', 'postfix'], { encoding: 'utf8' }).stdout);
  fs.chownSync(data, uid, gid);
  const perms = spawnSync(POSTFIX, ['-c', conf, 'set-permissions'], { encoding: 'utf8' });
  if (perms.status !== 0) throw new Error(`postfix set-permissions failed:\n${perms.stdout}${perms.stderr}${fs.existsSync(logFile) ? fs.readFileSync(logFile, 'latin1') : ''}`);

  const readLog = () => (fs.existsSync(logFile) ? fs.readFileSync(logFile, 'latin1') : '');
  // maillog_file takes the log; start-fg's own output (rare: fatal start-up errors) goes here
  const out = fs.openSync(path.join(dir, 'start-fg.out'), 'a');
  const child: ChildProcess = spawn(POSTFIX, ['-c', conf, 'start-fg'], { stdio: ['ignore', out, out] });
  fs.closeSync(out);
  const exited = new Promise<void>((resolve) => child.on('exit', () => resolve()));
  const running = () => child.exitCode === null && child.signalCode === null;

  let stopped = false;
  const stop = async () => {
    if (stopped) return;
    stopped = true;
    spawnSync(POSTFIX, ['-c', conf, 'stop'], { encoding: 'utf8', timeout: 30_000 });
    const timer = setTimeout(() => {
      if (!running()) return;
      try {
        const pid = Number(fs.readFileSync(path.join(queue, 'pid', 'master.pid'), 'utf8').trim());
        if (pid > 1) process.kill(pid, 'SIGKILL');
      } catch {
        // gone already
      }
      if (running()) child.kill('SIGKILL');
    }, 15_000);
    if (running()) await exited;
    clearTimeout(timer);
  };
  t.teardown(stop);

  const deadline = Date.now() + 30_000;
  while (!(await listening(port))) {
    if (!running()) throw new Error(`postfix exited before listening on ${port}:\n${fs.readFileSync(path.join(dir, 'start-fg.out'), 'latin1')}${readLog()}`);
    if (Date.now() > deadline) throw new Error(`postfix does not listen on ${port}:\n${readLog()}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return {
    dir,
    conf,
    queue,
    port,
    log: readLog,
    queued: () => ['incoming', 'active', 'deferred', 'hold'].flatMap((q) => files(path.join(queue, q))),
    stop,
  };
}
