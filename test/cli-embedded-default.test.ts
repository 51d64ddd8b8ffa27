import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { cleanEnv } from './helpers/child-relay.js';
import { stripFirstReceived, tempDir, waitFor } from './helpers/relay.js';
import { swaks } from './helpers/smtp-client.js';
import { repoRoot } from './helpers/repo-root.js';

const root = repoRoot;

t.test('zegel start with no configuration runs the embedded default: loopback :2525, ./data, ./outbox', async (t) => {
  const cwd = tempDir(t);
  const child = spawn('env', ['-u', 'NODE_OPTIONS', process.execPath, path.join(root, 'bin/zegel'), 'start'], { cwd, env: cleanEnv(), stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout!.on('data', (d) => (output += d));
  child.stderr!.on('data', (d) => (output += d));
  const exited = new Promise<number | string>((resolve) => child.on('exit', (code, signal) => resolve(code ?? signal ?? -1)));
  t.teardown(() => {
    if (child.exitCode === null) child.kill('SIGKILL');
    return exited;
  });
  await waitFor(() => output.includes('"relay started"') || child.exitCode !== null, 20_000, 'the relay to start');
  t.equal(child.exitCode, null, `running (${output.slice(0, 500)})`);
  t.match(output, /no --config given: running the embedded default/, 'it says it runs the embedded default');
  t.match(output, /"smtp":"127\.0\.0\.1:2525"/, 'listening on 127.0.0.1:2525');
  t.ok(output.includes(`"outbox":${JSON.stringify(path.join(fs.realpathSync(cwd), 'outbox'))}`) || output.includes(`"outbox":${JSON.stringify(path.join(cwd, 'outbox'))}`), 'it says where the outbox is: ./outbox, beside ./data');

  const original = 'From: jan@example.org\r\nTo: piet@example.com\r\nSubject: proef\r\nMessage-ID: <embedded-1@example.org>\r\n\r\nHallo Piet.\r\n';
  const eml = path.join(cwd, 'bericht.eml');
  fs.writeFileSync(eml, original);
  const sent = await swaks(2525, ['--from', 'jan@example.org', '--to', 'piet@example.com', '--data', `@${eml}`]);
  t.equal(sent.code, 0, sent.stdout);
  const outbox = path.join(cwd, 'outbox');
  const files = await waitFor(() => {
    const names = fs.existsSync(outbox) ? fs.readdirSync(outbox) : [];
    return names.some((n) => n.endsWith('.eml')) ? names.sort() : undefined;
  }, 10_000, 'the outbox file');
  t.equal(files.filter((n) => n.endsWith('.tmp')).length, 0, 'no temporary file is left');
  const name = files.find((n) => n.endsWith('.eml'))!;
  t.match(name, /^[0-9a-z]+-[0-9a-f]+\.target\.1\.eml$/, '<queue id>.<route>.<attempt>.eml');
  // swaks ends DATA with CRLF . CRLF after the file, so what it sent is the file plus one CRLF
  t.equal(stripFirstReceived(fs.readFileSync(path.join(outbox, name))).toString('latin1'), `${original}\r\n`, 'the outbox holds the sent bytes after one Received:');
  t.same(JSON.parse(fs.readFileSync(path.join(outbox, name.replace(/\.eml$/, '.json')), 'utf8')), { from: 'jan@example.org', to: ['piet@example.com'] });
  t.ok(fs.existsSync(path.join(cwd, 'data', 'zegel.db')), 'SQLite in ./data');
  t.notOk(fs.existsSync(path.join(cwd, 'data', 'outbox')), 'no outbox inside ./data');
  await waitFor(() => fs.readdirSync(path.join(cwd, 'data', 'spool')).length === 0, 10_000, 'the spool to empty');

  child.kill('SIGTERM');
  t.equal(await exited, 0, 'SIGTERM: exit 0');
});
