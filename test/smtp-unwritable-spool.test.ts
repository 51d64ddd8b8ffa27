import { execFile, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import t from 'tap';
import { startRelay, waitFor, type Teardown, type TestRelay } from './helpers/relay.js';
import { startSink, type TestSink } from './helpers/sink.js';
import { RawSmtp } from './helpers/smtp-client.js';

/**
 * `250` means "stored durably". When the spool or the database cannot take a
 * message, the client must get `451 4.3.0` (and try again later), never `250`,
 * and nothing half-written may stay behind. These tests break the storage for
 * real with mounts, so they need root on Linux.
 */

const SENDER = 'jan@org.test';
const RCPT = 'klant@example.com';

/** Runs a command (stdin closed); resolves with its exit code and output, never rejects. */
function sh(command: string, args: string[]): Promise<{ code: number; stderr: string }> {
  return new Promise((resolve) => {
    const child = execFile(command, args, { timeout: 10_000 }, (err, _stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stderr: String(stderr || (err ? err.message : '')) });
    });
    child.stdin?.end();
  });
}

/** Why these tests cannot run here, or undefined: Linux, root, and a probe tmpfs mount that works. */
function cannotMount(): string | undefined {
  if (process.platform !== 'linux') return 'needs Linux';
  if (process.getuid?.() !== 0) return 'needs root (mount)';
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'zegel-mount-probe-'));
  try {
    const probe = spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=64k', 'tmpfs', dir], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
    if (probe.error) return `mount cannot run: ${probe.error.message}`;
    if (probe.status !== 0) return `mount is not permitted here (${probe.stderr.trim() || `exit ${probe.status}`})`;
    spawnSync('umount', [dir], { stdio: 'ignore' });
    return undefined;
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

const skip = cannotMount();

/** Mount points made by one test, unmounted (lazily if need be) in reverse order at teardown. */
class Mounts {
  readonly #points: string[] = [];

  /** Runs mount(8) with `args` and then `target`; the target is unmounted at teardown. */
  async mount(args: string[], target: string): Promise<void> {
    const result = await sh('mount', [...args, target]);
    if (result.code !== 0) throw new Error(`mount ${args.join(' ')} ${target}: ${result.stderr.trim() || `exit ${result.code}`}`);
    if (!this.#points.includes(target)) this.#points.push(target);
  }

  async umount(target: string): Promise<void> {
    const index = this.#points.lastIndexOf(target);
    if (index === -1) return;
    const result = await sh('umount', [target]);
    if (result.code !== 0) {
      const lazy = await sh('umount', ['-l', target]);
      if (lazy.code !== 0) throw new Error(`umount ${target}: ${result.stderr.trim()} / ${lazy.stderr.trim()}`);
    }
    this.#points.splice(index, 1);
  }

  async all(): Promise<void> {
    for (const target of [...this.#points].reverse()) await this.umount(target).catch(() => undefined);
  }
}

interface World {
  root: string;
  dataDir: string;
  spool: string;
  mounts: Mounts;
  sink: TestSink;
  /** Set once the relay runs. */
  relay?: TestRelay;
}

/**
 * A root directory of our own (not helpers' tempDir: the relay must stop and
 * the mounts go before anything is removed). Its teardown is registered first,
 * so it runs last (tap runs teardowns last-in first-out): relay.stop (again;
 * it is idempotent), unmount everything (umount -l as fallback), remove the
 * directory. Nothing in it throws, so a failing step cannot leave a mount behind.
 */
async function world(t: Teardown): Promise<World> {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'zegel-unwritable-'));
  const dataDir = path.join(root, 'data');
  const w: World = { root, dataDir, spool: path.join(dataDir, 'spool'), mounts: new Mounts(), sink: undefined as unknown as TestSink };
  t.teardown(async () => {
    await w.relay?.relay.stop(2_000).catch(() => undefined);
    await w.mounts.all();
    fs.rmSync(root, { recursive: true, force: true });
  });
  w.sink = await startSink(t);
  return w;
}

async function start(t: Teardown, w: World): Promise<TestRelay> {
  w.relay = await startRelay(t, { delivery: { target: w.sink.url } }, { dataDir: w.dataDir });
  return w.relay;
}

/** One SMTP transaction over a raw socket; returns the reply to the end of DATA. */
async function submit(port: number, body: string | Buffer, subject = 'test'): Promise<string> {
  const client = await RawSmtp.connect(port);
  try {
    await client.envelope(SENDER, [RCPT]);
    const go = await client.command('DATA');
    if (!go.startsWith('354')) return go;
    client.write(`From: <${SENDER}>\r\nTo: <${RCPT}>\r\nSubject: ${subject}\r\nMessage-ID: <${subject}-${Date.now()}@org.test>\r\n\r\n`);
    client.write(body);
    client.write('.\r\n');
    return await client.reply(30_000);
  } finally {
    client.close();
  }
}

/** About `bytes` of body in 78-character lines, CRLF-terminated, no line starting with a dot. */
function bigBody(bytes: number): string {
  const line = `${'0123456789abcdef'.repeat(5).slice(0, 76)}\r\n`;
  return line.repeat(Math.ceil(bytes / line.length));
}

const storedMessages = (relay: TestRelay['relay']) => (relay.sqlite.db.prepare('SELECT count(*) AS n FROM messages').get() as { n: number }).n;
const spoolFiles = (spool: string) => fs.readdirSync(spool);
const settle = (ms = 300) => new Promise((resolve) => setTimeout(resolve, ms));

/** Fills the filesystem holding `file` until it has no free block left (ENOSPC). */
function fill(file: string): number {
  const fd = fs.openSync(file, 'w');
  let written = 0;
  try {
    for (const size of [1024 * 1024, 64 * 1024, 4096, 512, 1]) {
      const chunk = Buffer.alloc(size, 0x5a);
      for (;;) {
        try {
          const n = fs.writeSync(fd, chunk);
          written += n;
          if (n < size) break;
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code === 'ENOSPC') break;
          throw err;
        }
      }
    }
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
  return written;
}

t.test('spool made read-only under a running relay: 451 4.3.0, then 250 once writable again', { skip }, async (t) => {
  const w = await world(t);
  const { port, logs, relay } = await start(t, w);
  await w.mounts.mount(['--bind', w.spool], w.spool);
  await w.mounts.mount(['-o', 'remount,ro,bind'], w.spool);
  t.throws(() => fs.writeFileSync(path.join(w.spool, 'probe'), 'x'), { code: 'EROFS' }, 'the spool really is read-only');

  for (let i = 0; i < 3; i++) {
    const reply = await submit(port, `attempt ${i}\r\n`, `readonly-${i}`);
    t.match(reply, /^451 4\.3\.0 /, `attempt ${i}: temporary failure`);
    t.notMatch(reply, /^250/);
  }
  t.match(logs(), /"cause":"EROFS"[^\n]*"msg":"message refused"/, 'the refusal is logged with its cause');
  t.equal(storedMessages(relay), 0, 'nothing recorded as accepted');

  await w.mounts.umount(w.spool);
  const reply = await submit(port, 'after the remount\r\n', 'writable-again');
  t.match(reply, /^250 2\.6\.0 Ok: queued as \S+$/, 'accepted once the spool is writable');
  await waitFor(() => w.sink.messages.length === 1, 10_000, 'the delivery');
  t.match(w.sink.messages[0]!.raw.toString('latin1'), /Subject: writable-again\r\n/, 'the accepted message, and only that one, was delivered');
  await settle();
  t.equal(w.sink.messages.length, 1);
});

t.test('spool disk full: a 1 MB message on a 256 KiB tmpfs gets 451 4.3.0 and leaves no partial file', { skip }, async (t) => {
  const w = await world(t);
  fs.mkdirSync(w.spool, { recursive: true, mode: 0o700 });
  await w.mounts.mount(['-t', 'tmpfs', '-o', 'size=256k,mode=0700', 'tmpfs'], w.spool);
  const { port, logs, relay } = await start(t, w);
  const free = () => {
    const s = fs.statfsSync(w.spool);
    return { free: s.bfree * s.bsize, total: s.blocks * s.bsize };
  };
  const empty = free();
  t.ok(empty.total <= 256 * 1024, `the spool holds at most 256 KiB (${empty.total})`);

  const reply = await submit(port, bigBody(1024 * 1024), 'too-big-for-the-disk');
  t.match(reply, /^451 4\.3\.0 /, 'temporary failure');
  t.match(logs(), /"cause":"ENOSPC"[^\n]*"msg":"message refused"/, 'refused because the disk is full');
  await settle();
  t.same(spoolFiles(w.spool), [], 'no partial spool file stays behind');
  t.equal(free().free, empty.free, 'all the space is free again');
  t.equal(storedMessages(relay), 0, 'nothing recorded as accepted');
  t.equal(w.sink.messages.length, 0, 'nothing delivered');

  const small = await submit(port, 'a small one fits\r\n', 'small-fits');
  t.match(small, /^250 /, 'a message that fits is accepted');
  await waitFor(() => w.sink.messages.length === 1, 10_000, 'the delivery');
  t.match(w.sink.messages[0]!.raw.toString('latin1'), /Subject: small-fits\r\n/);
});

t.test('database cannot commit: 451 4.3.0 and the spool file of the refused message is removed', { skip }, async (t) => {
  // The whole data directory (zegel.db, zegel.db-wal, zegel.db-shm, the relay secret)
  // lives on a small tmpfs. After the relay has started, the spool directory gets a
  // roomy tmpfs of its own, and the data tmpfs is filled to the last block. Writing a
  // spool file still works, but SQLite cannot append the transaction's frames to
  // zegel.db-wal: COMMIT fails with SQLITE_FULL (ENOSPC underneath), exactly what a
  // full disk does to the store, while the spool write before it succeeds.
  // (A read-only bind mount over the data directory would not do: SQLite keeps writing
  // through the descriptors it opened before the mount, and the spool, opened anew for
  // every message, would be the thing that fails.)
  const w = await world(t);
  fs.mkdirSync(w.dataDir, { recursive: true, mode: 0o700 });
  await w.mounts.mount(['-t', 'tmpfs', '-o', 'size=4m,mode=0700', 'tmpfs'], w.dataDir);
  const { port, logs, relay } = await start(t, w);
  t.ok(fs.existsSync(path.join(w.dataDir, 'zegel.db-wal')), 'the database is in WAL mode on the data tmpfs');
  await w.mounts.mount(['-t', 'tmpfs', '-o', 'size=16m,mode=0700', 'tmpfs'], w.spool);
  const filler = path.join(w.dataDir, 'filler');
  // registered after startRelay's teardown, so it runs before the relay stops (and checkpoints)
  t.teardown(() => fs.rmSync(filler, { force: true }));
  const filled = fill(filler);
  t.ok(filled > 0, `filled the data tmpfs with ${filled} bytes`);
  t.throws(() => fs.writeFileSync(path.join(w.dataDir, 'probe'), Buffer.alloc(8192)), { code: 'ENOSPC' }, 'the data tmpfs is full');
  fs.rmSync(path.join(w.dataDir, 'probe'), { force: true });

  const reply = await submit(port, 'the store cannot take this\r\n', 'db-full');
  t.match(reply, /^451 4\.3\.0 /, 'temporary failure');
  t.match(logs(), /"cause":"ZEGEL_STORE_WRITE"[^\n]*"msg":"message refused"/, 'refused because the store could not commit');
  await settle();
  t.same(spoolFiles(w.spool), [], 'the spool file of the refused message is removed');
  t.equal(storedMessages(relay), 0, 'nothing recorded as accepted');
  t.equal(w.sink.messages.length, 0, 'nothing delivered');

  fs.rmSync(filler);
  const again = await submit(port, 'room again\r\n', 'db-room-again');
  t.match(again, /^250 /, 'accepted once the disk has room again');
  await waitFor(() => w.sink.messages.length === 1, 10_000, 'the delivery');
  t.match(w.sink.messages[0]!.raw.toString('latin1'), /Subject: db-room-again\r\n/);
  t.equal(storedMessages(relay), 1);
});
