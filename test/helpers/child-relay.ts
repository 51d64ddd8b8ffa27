import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { stringify } from 'yaml';
import type { Teardown } from './relay.js';
import { repoRoot } from './repo-root.js';

const root = repoRoot;

/** A free loopback port: one that a listener can take now, outside the ephemeral range. */
export async function freePort(): Promise<number> {
  // Below the kernel's ephemeral range (ip_local_port_range, 32768-60999 by
  // default): a port the kernel hands out for listen(0) can be taken, before
  // the relay binds it, as the source port of any of the many loopback
  // connections that parallel test files open (seen: EADDRINUSE). Ports here
  // are only ever taken by listeners, and a random pick makes two files
  // choosing the same one at once unlikely.
  for (let tries = 0; ; tries++) {
    const port = 20_000 + Math.floor(Math.random() * 12_000);
    const server = net.createServer();
    const free = await new Promise<boolean>((resolve) => {
      server.once('error', () => resolve(false));
      server.listen(port, '127.0.0.1', () => resolve(true));
    });
    if (free) {
      await new Promise<void>((resolve) => server.close(() => resolve()));
      return port;
    }
    if (tries > 100) throw new Error('no free loopback port between 20000 and 31999');
  }
}

/**
 * The environment without the test runner's variables. tap's process tracker
 * puts its loader back into NODE_OPTIONS of every child it sees, so children
 * that must run the built CLI as a user would are started through
 * `env -u NODE_OPTIONS`.
 */
export function cleanEnv(): NodeJS.ProcessEnv {
  const env = { ...process.env };
  delete env.NODE_OPTIONS;
  for (const key of Object.keys(env)) if (key.startsWith('TAP') || key.startsWith('_TAPJS')) delete env[key];
  return env;
}

export interface ChildRelay {
  child: ChildProcess;
  port: number;
  /** stderr so far (pino JSON lines). */
  output(): string;
  /** Resolves with the exit code (or signal name). */
  exited: Promise<number | string>;
}

/**
 * Runs the real CLI, `node bin/zegel ARGS` (a `start`), as a child process
 * (the build in dist/ must be current: `npm test` builds first), and waits
 * until it says it listens ("relay started"); killed at teardown.
 */
export async function spawnRelay(t: Teardown, args: string[], what = 'relay', timeoutMs = 20_000): Promise<Omit<ChildRelay, 'port'>> {
  const child = spawn('env', ['-u', 'NODE_OPTIONS', process.execPath, path.join(root, 'bin/zegel'), ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: cleanEnv() });
  let output = '';
  child.stdout!.on('data', (d) => (output += d));
  child.stderr!.on('data', (d) => (output += d));
  const exited = new Promise<number | string>((resolve) => child.on('exit', (code, signal) => resolve(code ?? signal ?? -1)));
  t.teardown(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    return exited;
  });
  const deadline = Date.now() + timeoutMs;
  while (!output.includes('"relay started"')) {
    if (child.exitCode !== null) throw new Error(`${what} exited early:\n${output}`);
    if (Date.now() > deadline) throw new Error(`${what} did not start:\n${output}`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
  return { child, output: () => output, exited };
}

/** `zegel start --config FILE` with `config` written to FILE (see spawnRelay). */
export async function startChildRelay(t: Teardown, configFile: string, config: Record<string, unknown>): Promise<ChildRelay> {
  // the reader listens too: on a free port, unless the test chose one
  if (!config.reader) config = { ...config, reader: { listen: `127.0.0.1:${await freePort()}` } };
  fs.writeFileSync(configFile, stringify(config));
  const started = await spawnRelay(t, ['start', '--config', configFile]);
  const listen = String((config.smtp as { listen: string }).listen);
  return { ...started, port: Number(listen.slice(listen.lastIndexOf(':') + 1)) };
}

export interface CliRun {
  code: number | null;
  stdout: string;
  stderr: string;
}

/**
 * Runs the built CLI, `node bin/zegel ARGS`, without tap's loader in
 * NODE_OPTIONS, in `cwd` (default: this process's), with `stdin` as its
 * input (default: none); killed after 60 s.
 */
export function runZegel(args: string[], options: { cwd?: string; stdin?: string } = {}): Promise<CliRun> {
  return new Promise((resolve, reject) => {
    const child = spawn('/usr/bin/env', ['-u', 'NODE_OPTIONS', process.execPath, path.join(root, 'bin/zegel'), ...args], {
      cwd: options.cwd,
      env: cleanEnv(),
      stdio: [options.stdin === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout!.on('data', (d) => (stdout += d));
    child.stderr!.on('data', (d) => (stderr += d));
    if (options.stdin !== undefined) child.stdin!.end(options.stdin);
    const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}
