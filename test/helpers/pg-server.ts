import { execFile, execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';
import { freePort } from './child-relay.js';

const run = promisify(execFile);

/**
 * A private PostgreSQL server for one test file: `initdb` in a temp dir,
 * superuser `postgres` with a random password (scram-sha-256 for every
 * connection, TCP and unix socket), listening only on 127.0.0.1 on a port
 * from freePort(), its unix socket in the temp dir, fsync=on. Run as the
 * unprivileged `postgres` user through `runuser` when the tests run as root
 * (CI does; PostgreSQL refuses to run as root), as the current user otherwise.
 *
 * initdb runs with --no-sync (the fresh cluster's files are not flushed: a
 * machine crash during a test is no case to survive); the server itself runs
 * with fsync=on and synchronous_commit=on, as in production.
 *
 * The binaries are Debian's (`/usr/lib/postgresql/<version>/bin`, the newest
 * version present); scripts/ensure-test-deps.sh installs the `postgresql`
 * package when none is there. `ZEGEL_TEST_PG_BIN` names another directory.
 */
export interface PgServer {
  /** `postgres://postgres@127.0.0.1:<port>/postgres`: no password in it (use `password` or `passwordFile`). */
  readonly url: string;
  readonly port: number;
  /** The superuser's password. */
  readonly password: string;
  /** A file holding the password and a trailing newline (mode 0600). */
  readonly passwordFile: string;
  readonly dataDir: string;
  /** The directory of the unix socket. */
  readonly socketDir: string;
  /** How long initdb and the first start took, in milliseconds. */
  readonly startupMs: { initdb: number; start: number };
  /** A URL for another database of this server (see createDatabase). */
  urlFor(database: string): string;
  /** Creates a database (owned by the superuser) and resolves to its URL. */
  createDatabase(name: string): Promise<string>;
  /** Runs one statement as the superuser on a database (default `postgres`) and returns its rows. */
  query<R extends pg.QueryResultRow = pg.QueryResultRow>(sql: string, params?: unknown[], database?: string): Promise<R[]>;
  /** Fast shutdown (`pg_ctl -m fast stop`); resolves when the server is down. */
  stop(): Promise<void>;
  /** SIGKILL to the postmaster; resolves when it and its backends are gone. */
  kill(): Promise<void>;
  /** Starts the server again after stop() or kill() (`pg_ctl -w start`, crash recovery after a kill). */
  start(): Promise<void>;
  /** Stops the server if it runs and removes the temp dir. */
  cleanup(): Promise<void>;
}

export interface PgServerOptions {
  /** Extra postgresql.conf settings, e.g. `{ max_connections: '50' }`. */
  settings?: Record<string, string>;
}

/** The newest `/usr/lib/postgresql/<version>/bin` that has initdb (or ZEGEL_TEST_PG_BIN). */
export function postgresBinDir(): string {
  const override = process.env.ZEGEL_TEST_PG_BIN;
  if (override) return override;
  const base = '/usr/lib/postgresql';
  const versions = fs.existsSync(base)
    ? fs
        .readdirSync(base)
        .filter((v) => fs.existsSync(path.join(base, v, 'bin', 'initdb')))
        .sort((a, b) => Number.parseFloat(b) - Number.parseFloat(a))
    : [];
  if (!versions.length) throw new Error(`no PostgreSQL server binaries under ${base}/<version>/bin: run scripts/ensure-test-deps.sh as root (installs Debian's postgresql)`);
  return path.join(base, versions[0]!, 'bin');
}

const asRoot = process.getuid?.() === 0;

/** The uid and gid of the `postgres` user (Debian's package makes it). */
function postgresIds(): { uid: number; gid: number } {
  const id = (flag: string): number => Number(execFileSync('id', [flag, 'postgres'], { encoding: 'utf8' }).trim());
  return { uid: id('-u'), gid: id('-g') };
}

/** Runs a PostgreSQL program, as `postgres` when we are root; the error carries its output. */
async function pgProgram(bin: string, program: string, args: string[]): Promise<void> {
  const file = path.join(bin, program);
  const [cmd, argv] = asRoot ? ['runuser', ['-u', 'postgres', '--', file, ...args]] : [file, args];
  try {
    await run(cmd, argv, { timeout: 60_000 });
  } catch (err) {
    const e = err as { stdout?: string; stderr?: string; message: string };
    throw new Error(`${program} failed: ${e.message}\n${e.stdout ?? ''}${e.stderr ?? ''}`);
  }
}

/** A process that exists and is not a zombie (the postmaster's parent may be a pid 1 that never reaps). */
function alive(pid: number): boolean {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
}

/** The processes whose parent is `pid` (the postmaster's backends and helpers). */
function childrenOf(pid: number): number[] {
  const found: number[] = [];
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = fs.readFileSync(`/proc/${entry}/stat`, 'utf8');
      // pid (comm) state ppid …; comm may hold spaces and parentheses
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid === pid) found.push(Number(entry));
    } catch {
      // gone meanwhile
    }
  }
  return found;
}

async function waitFor(what: string, done: () => boolean, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!done()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

export async function startPostgres(options: PgServerOptions = {}): Promise<PgServer> {
  const bin = postgresBinDir();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'zegel-pg-'));
  const dataDir = path.join(dir, 'data');
  const passwordFile = path.join(dir, 'password');
  const logFile = path.join(dir, 'server.log');
  const password = randomBytes(18).toString('base64url');
  fs.writeFileSync(passwordFile, `${password}\n`, { mode: 0o600 });
  if (asRoot) {
    const { uid, gid } = postgresIds();
    fs.chownSync(dir, uid, gid);
    fs.chownSync(passwordFile, uid, gid);
  }
  const port = await freePort();
  const started = Date.now();
  try {
    await pgProgram(bin, 'initdb', ['-D', dataDir, '-U', 'postgres', `--pwfile=${passwordFile}`, '--auth=scram-sha-256', '-E', 'UTF8', '--no-locale', '--no-sync']);
  } catch (err) {
    fs.rmSync(dir, { recursive: true, force: true });
    throw err;
  }
  const initdbMs = Date.now() - started;
  const settings: Record<string, string> = {
    listen_addresses: "'127.0.0.1'",
    port: String(port),
    unix_socket_directories: `'${dir}'`,
    fsync: 'on',
    synchronous_commit: 'on',
    ...options.settings,
  };
  fs.appendFileSync(path.join(dataDir, 'postgresql.conf'), `\n# test/helpers/pg-server.ts\n${Object.entries(settings).map(([k, v]) => `${k} = ${v}`).join('\n')}\n`);

  let running = false;
  const postmasterPid = (): number | undefined => {
    try {
      return Number(fs.readFileSync(path.join(dataDir, 'postmaster.pid'), 'utf8').split('\n')[0]);
    } catch {
      return undefined;
    }
  };
  const logTail = (): string => {
    try {
      return fs.readFileSync(logFile, 'utf8').split('\n').slice(-20).join('\n');
    } catch {
      return '';
    }
  };
  const start = async (): Promise<void> => {
    try {
      await pgProgram(bin, 'pg_ctl', ['-D', dataDir, '-l', logFile, '-w', '-t', '60', 'start']);
    } catch (err) {
      throw new Error(`${(err as Error).message}\nserver log:\n${logTail()}`);
    }
    running = true;
  };
  await start();
  const startMs = Date.now() - started - initdbMs;
  // a test process that dies without its teardown (an uncaught error) takes its server with it
  const onExit = (): void => {
    const pid = running ? postmasterPid() : undefined;
    if (pid !== undefined && alive(pid)) process.kill(pid, 'SIGKILL');
    fs.rmSync(dir, { recursive: true, force: true });
  };
  process.once('exit', onExit);

  const url = `postgres://postgres@127.0.0.1:${port}/postgres`;
  const urlFor = (database: string): string => `postgres://postgres@127.0.0.1:${port}/${encodeURIComponent(database)}`;
  const query = async <R extends pg.QueryResultRow>(sql: string, params: unknown[] = [], database = 'postgres'): Promise<R[]> => {
    const client = new pg.Client({ host: '127.0.0.1', port, user: 'postgres', password, database, connectionTimeoutMillis: 10_000 });
    await client.connect();
    try {
      return (await client.query<R>(sql, params)).rows;
    } finally {
      await client.end();
    }
  };

  const server: PgServer = {
    url,
    port,
    password,
    passwordFile,
    dataDir,
    socketDir: dir,
    startupMs: { initdb: initdbMs, start: startMs },
    urlFor,
    async createDatabase(name) {
      if (!/^[a-z_][a-z0-9_]*$/.test(name)) throw new Error(`database name ${name} is not a plain identifier`);
      await query(`CREATE DATABASE ${name}`);
      return urlFor(name);
    },
    query,
    async stop() {
      if (!running) return;
      await pgProgram(bin, 'pg_ctl', ['-D', dataDir, '-m', 'fast', '-w', '-t', '60', 'stop']);
      running = false;
    },
    async kill() {
      const pid = postmasterPid();
      if (!running || pid === undefined || !alive(pid)) {
        running = false;
        return;
      }
      const children = childrenOf(pid);
      process.kill(pid, 'SIGKILL');
      await waitFor('the postmaster to die', () => !alive(pid));
      // backends leave by themselves once they see the postmaster gone; a new
      // postmaster refuses to start while one still holds the shared memory
      try {
        await waitFor('the backends to leave', () => children.every((c) => !alive(c)), 5_000);
      } catch {
        for (const c of children.filter(alive)) process.kill(c, 'SIGKILL');
        await waitFor('the backends to die', () => children.every((c) => !alive(c)));
      }
      // pg_ctl leaves the postmaster to pid 1; where that does not reap (a
      // container's plain process), the dead postmaster stays a zombie, and a
      // new one would take its pid in the lock files for a live server's
      fs.rmSync(path.join(dataDir, 'postmaster.pid'), { force: true });
      fs.rmSync(path.join(dir, `.s.PGSQL.${port}.lock`), { force: true });
      running = false;
    },
    start,
    async cleanup() {
      try {
        await server.stop();
      } catch {
        await server.kill();
      }
      process.off('exit', onExit);
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
  return server;
}
