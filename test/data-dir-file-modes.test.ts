import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { stringify } from 'yaml';
import { cleanEnv, freePort } from './helpers/child-relay.js';
import { tempDir, waitFor } from './helpers/relay.js';
import { swaks } from './helpers/smtp-client.js';
import { repoRoot } from './helpers/repo-root.js';

/*
 * File modes under data.dir, whatever the caller's umask: directories 0700,
 * the database (and its -wal and -shm), spool, blob and key files 0600. The
 * CLI (`zegel recipients set` before the first start, which creates the
 * database) and the relay (`zegel start`, which fills the spool and the blob
 * store) both run as child processes under `umask 022`; every file and
 * directory under data.dir is stat-ed, not asked of the application.
 */

const root = repoRoot;
const zegel = path.join(root, 'bin/zegel');

/**
 * `sh -c 'umask 022; touch PROBE; exec env -u NODE_OPTIONS node bin/zegel ARGS'`: the probe file proves the
 * umask the child ran with (tap puts its loader back into NODE_OPTIONS of every child, hence env -u).
 */
function underUmask022(args: string[], probe: string) {
  const quoted = [process.execPath, zegel, ...args].map((a) => `'${a.replace(/'/g, `'\\''`)}'`).join(' ');
  return spawn('sh', ['-c', `umask 022 && touch '${probe}' && exec env -u NODE_OPTIONS ${quoted}`], { env: cleanEnv(), stdio: ['ignore', 'pipe', 'pipe'] });
}

function modes(dir: string): Array<{ name: string; kind: 'dir' | 'file'; mode: string }> {
  const out: Array<{ name: string; kind: 'dir' | 'file'; mode: string }> = [{ name: '.', kind: 'dir', mode: (fs.statSync(dir).mode & 0o777).toString(8) }];
  for (const entry of fs.readdirSync(dir, { recursive: true, withFileTypes: true })) {
    const file = path.join(entry.parentPath, entry.name);
    const stat = fs.lstatSync(file, { throwIfNoEntry: false });
    if (!stat) continue; // removed since the listing (a delivered spool file)
    out.push({ name: path.relative(dir, file), kind: stat.isDirectory() ? 'dir' : 'file', mode: (stat.mode & 0o777).toString(8) });
  }
  return out;
}

function wrongModes(dir: string): string[] {
  return modes(dir)
    .filter((m) => m.mode !== (m.kind === 'dir' ? '700' : '600'))
    .map((m) => `${m.name} (${m.kind}) ${m.mode}`);
}

t.test('under umask 022: recipients set before the first start, then the relay: dirs 0700, files 0600', async (t) => {
  const dir = tempDir(t, 'zegel-modes-');
  const dataDir = path.join(dir, 'data');
  const smtpPort = await freePort();
  const readerPort = await freePort();
  const config = path.join(dir, 'zegel.yaml');
  fs.writeFileSync(
    config,
    stringify({
      organisation: { name: 'Voorbeeldzorg', domains: ['zorg.test'] },
      smtp: { listen: `127.0.0.1:${smtpPort}` },
      reader: { listen: `127.0.0.1:${readerPort}`, publicUrl: `http://127.0.0.1:${readerPort}` },
      // nothing listens there: the original and the notifications stay in the spool
      delivery: { target: `smtp://127.0.0.1:${await freePort()}` },
      data: { dir: dataDir },
    }),
  );

  // 1. the CLI creates data.dir and the database
  const probe1 = path.join(dir, 'probe-cli');
  const cli = underUmask022(['recipients', 'set', 'piet@extern.test', '--method', 'email-code', '--config', config], probe1);
  let cliErr = '';
  cli.stderr!.on('data', (d) => (cliErr += d));
  const code = await new Promise<number | null>((resolve) => cli.on('close', resolve));
  t.equal(code, 0, cliErr);
  t.equal((fs.statSync(probe1).mode & 0o777).toString(8), '644', 'the child ran under umask 022 (its own new file is 0644)');
  t.ok(fs.existsSync(path.join(dataDir, 'zegel.db')), 'the CLI created the database');
  t.same(wrongModes(dataDir), [], `after recipients set: ${modes(dataDir).map((m) => `${m.name} ${m.mode}`).join(', ')}`);

  // 2. the relay: spool, blobs, keys, the database's -wal and -shm
  const probe2 = path.join(dir, 'probe-relay');
  const relay = underUmask022(['start', '--config', config], probe2);
  let output = '';
  relay.stdout!.on('data', (d) => (output += d));
  relay.stderr!.on('data', (d) => (output += d));
  const exited = new Promise<number | string>((resolve) => relay.on('exit', (c, signal) => resolve(c ?? signal ?? -1)));
  t.teardown(() => {
    if (relay.exitCode === null && relay.signalCode === null) relay.kill('SIGKILL');
    return exited;
  });
  await waitFor(() => output.includes('"relay started"') || relay.exitCode !== null, 20_000, 'the relay to start');
  t.equal(relay.exitCode, null, `running (${output.slice(0, 400)})`);
  t.equal((fs.statSync(probe2).mode & 0o777).toString(8), '644', 'the relay ran under umask 022');

  const sent = await swaks(smtpPort, ['--from', 'jan@zorg.test', '--to', 'piet@extern.test', '--header', 'Subject: Dossier', '--body', 'Het BSN is 123456782.']);
  t.equal(sent.code, 0, sent.stdout);
  const plain = await swaks(smtpPort, ['--from', 'jan@zorg.test', '--to', 'klaas@extern.test', '--header', 'Subject: Agenda', '--body', 'Tot dinsdag.']);
  t.equal(plain.code, 0, plain.stdout);
  // the secure job wrote its blobs and spooled the notification; nothing can be delivered
  await waitFor(() => {
    const all = modes(dataDir);
    const blobs = all.filter((m) => m.name.startsWith('blobs/') && m.name.endsWith('.pgp'));
    const spooled = all.filter((m) => m.name.startsWith('spool/') && m.name.endsWith('.eml'));
    return blobs.length >= 1 && spooled.length >= 2 && !all.some((m) => m.name.endsWith('.tmp'));
  }, 20_000, 'blob and spool files').catch((err: Error) => {
    throw new Error(`${err.message}: ${modes(dataDir).map((m) => m.name).join(', ')}\n${output.slice(-3000)}`);
  });
  const all = modes(dataDir);
  for (const name of ['zegel.db', 'zegel.db-wal', 'zegel.db-shm', 'relay.key', 'spool', 'blobs']) t.ok(all.some((m) => m.name === name), `${name} exists`);
  t.same(wrongModes(dataDir), [], `with the relay running: ${all.map((m) => `${m.name} ${m.mode}`).join(', ')}`);

  relay.kill('SIGTERM');
  t.equal(await exited, 0, 'SIGTERM: exit 0');
  t.same(wrongModes(dataDir), [], 'after the relay stopped');
});
