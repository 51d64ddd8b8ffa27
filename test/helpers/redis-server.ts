import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { freePort } from './child-relay.js';

/**
 * A private redis-server for one test file: Debian's /usr/bin/redis-server
 * (scripts/ensure-test-deps.sh installs it) on 127.0.0.1 and a port from
 * freePort(), no persistence (`--save "" --appendonly no`: a restart comes
 * back empty, as a lost Redis does), `maxmemory-policy noeviction` (BullMQ's
 * production requirement), its working directory a temp dir.
 *
 * `kill()` is SIGKILL; `start()` starts it again on the same port, empty.
 * A test process that exits without its teardown takes the server with it.
 */
export interface RedisServer {
  /** `redis://127.0.0.1:<port>` */
  readonly url: string;
  readonly port: number;
  /** SIGKILL; resolves once the process is gone. */
  kill(): Promise<void>;
  /** SIGTERM; resolves once the process is gone. */
  stop(): Promise<void>;
  /** Starts the server again (after kill or stop) on the same port, with no data. */
  start(): Promise<void>;
  /** Stops the server if it runs and removes the temp dir. */
  cleanup(): Promise<void>;
}

const REDIS_SERVER = process.env.ZEGEL_TEST_REDIS_SERVER ?? '/usr/bin/redis-server';

/** Resolves once something accepts TCP connections on the port and answers PING. */
async function waitForPing(port: number, child: ChildProcess, output: () => string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (child.exitCode !== null || child.signalCode !== null) throw new Error(`redis-server exited early:\n${output()}`);
    const pong = await new Promise<boolean>((resolve) => {
      const socket = net.connect(port, '127.0.0.1');
      let data = '';
      socket.setTimeout(1_000, () => socket.destroy());
      socket.on('connect', () => socket.write('PING\r\n'));
      socket.on('data', (d) => {
        data += d.toString();
        if (data.includes('\r\n')) {
          socket.destroy();
          resolve(data.startsWith('+PONG'));
        }
      });
      socket.on('error', () => resolve(false));
      socket.on('close', () => resolve(false));
    });
    if (pong) return;
    if (Date.now() > deadline) throw new Error(`redis-server did not answer PING on ${port}:\n${output()}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

export async function startRedis(): Promise<RedisServer> {
  if (!fs.existsSync(REDIS_SERVER)) throw new Error(`${REDIS_SERVER} is missing: run scripts/ensure-test-deps.sh as root (installs Debian's redis-server)`);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'zegel-redis-'));
  const port = await freePort();
  let child: ChildProcess | undefined;
  let output = '';
  const gone = (c: ChildProcess): Promise<void> =>
    c.exitCode !== null || c.signalCode !== null ? Promise.resolve() : new Promise((resolve) => c.once('exit', () => resolve()));

  const start = async (): Promise<void> => {
    if (child && child.exitCode === null && child.signalCode === null) throw new Error('redis-server is already running');
    output = '';
    const c = spawn(
      REDIS_SERVER,
      ['--bind', '127.0.0.1', '--port', String(port), '--save', '', '--appendonly', 'no', '--maxmemory-policy', 'noeviction', '--dir', dir, '--daemonize', 'no', '--protected-mode', 'yes', '--loglevel', 'warning'],
      { stdio: ['ignore', 'pipe', 'pipe'], cwd: dir },
    );
    c.stdout!.on('data', (d) => (output += d));
    c.stderr!.on('data', (d) => (output += d));
    child = c;
    await waitForPing(port, c, () => output);
  };
  await start();

  const onExit = (): void => {
    if (child && child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    fs.rmSync(dir, { recursive: true, force: true });
  };
  process.once('exit', onExit);

  const signal = async (sig: NodeJS.Signals): Promise<void> => {
    const c = child;
    if (!c || c.exitCode !== null || c.signalCode !== null) return;
    const exited = gone(c);
    c.kill(sig);
    await exited;
  };
  return {
    url: `redis://127.0.0.1:${port}`,
    port,
    kill: () => signal('SIGKILL'),
    stop: () => signal('SIGTERM'),
    start,
    async cleanup() {
      await signal('SIGKILL');
      process.off('exit', onExit);
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}
