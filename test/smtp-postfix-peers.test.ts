import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { freePort } from './helpers/child-relay.js';
import { startRelay, tempDir, waitFor } from './helpers/relay.js';
import { run, swaks } from './helpers/smtp-client.js';

/** Postfix's smtp-sink as the next hop, dumping every transaction into `dir`. */
async function startSmtpSink(t: Parameters<typeof tempDir>[0], dir: string): Promise<number> {
  fs.chmodSync(dir, 0o777); // smtp-sink drops to `nobody` before it writes dumps
  // another test may take the free port between our look and smtp-sink's bind: try again then
  for (let attempt = 0; ; attempt++) {
    const port = await freePort();
    const child = spawn('smtp-sink', ['-u', 'nobody', '-d', `${dir}/%Y%m%d%H%M%S.`, `127.0.0.1:${port}`, '100'], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr!.on('data', (d) => (stderr += d));
    const exited = new Promise((resolve) => child.on('exit', resolve));
    t.teardown(() => {
      child.kill('SIGTERM');
      return exited;
    });
    const up = await waitFor(async () => child.exitCode !== null || (await run('swaks', ['--server', `127.0.0.1:${port}`, '--quit-after', 'EHLO'], { timeoutMs: 5_000 })).code === 0, 15_000, 'smtp-sink to listen');
    if (up && child.exitCode === null) return port;
    if (attempt === 2) throw new Error(`smtp-sink did not start: ${stderr}`);
  }
}

/** A dump: smtp-sink's X-* envelope lines, then the message as it arrived (LF line endings). */
function readDump(file: string): { from: string; to: string[]; message: string } {
  const text = fs.readFileSync(file, 'latin1');
  const lines = text.split('\n');
  let i = 0;
  const from: string[] = [];
  const to: string[] = [];
  for (; i < lines.length && /^X-(Client-Addr|Client-Proto|Helo-Args|Mail-Args|Rcpt-Args):/.test(lines[i]!); i++) {
    const [, name, value] = /^X-([\w-]+): (.*)$/.exec(lines[i]!)!;
    if (name === 'Mail-Args') from.push(value!);
    if (name === 'Rcpt-Args') to.push(value!);
  }
  // smtp-sink's own Received: field (three lines) comes next
  const rest = lines.slice(i).join('\n');
  const own = /^Received: from [^\n]*\n\tby smtp-sink [^\n]*\n\t[^\n]*\n/.exec(rest);
  if (!own) throw new Error(`no smtp-sink Received: in ${file}`);
  return { from: from[0] ?? '', to, message: rest.slice(own[0].length) };
}

t.test('smtp-source into the relay, smtp-sink behind it: every message arrives with its envelope', async (t) => {
  const dumps = tempDir(t);
  const sinkPort = await startSmtpSink(t, dumps);
  const { port } = await startRelay(t, { delivery: { target: `smtp://127.0.0.1:${sinkPort}` } });
  const source = await run('smtp-source', ['-s', '5', '-m', '60', '-l', '2048', '-f', 'bron@org.test', '-t', 'doel@example.com', `127.0.0.1:${port}`], { timeoutMs: 60_000 });
  t.equal(source.code, 0, `smtp-source succeeded ${source.stderr}`);
  // smtp-sink creates a dump file before it has written it: wait until all 60 read whole
  const complete = (name: string) => {
    try {
      return readDump(path.join(dumps, name));
    } catch {
      return undefined;
    }
  };
  await waitFor(() => {
    const names = fs.readdirSync(dumps);
    return names.length >= 60 && names.every((name) => complete(name));
  }, 20_000, '60 complete dumps');
  const files = fs.readdirSync(dumps);
  t.equal(files.length, 60, 'exactly 60 messages reached smtp-sink');
  for (const name of files) {
    const dump = readDump(path.join(dumps, name));
    t.equal(dump.from, '<bron@org.test>');
    t.same(dump.to, ['<doel@example.com>']);
    t.equal(dump.message.match(/^Received: /gm)?.length, 1, 'exactly one Received: before smtp-sink, the relay\'s');
    t.match(dump.message, /^Received: from \S+ \(\S* ?\[127\.0\.0\.1\]\)\n\tby \S+ \(Zegel\) with E?SMTP id \S+\n\tfor <doel@example\.com>;/);
  }
});

t.test('swaks into the relay, smtp-sink behind it: the message is unchanged but for one Received:', async (t) => {
  const dumps = tempDir(t);
  const sinkPort = await startSmtpSink(t, dumps);
  const { port } = await startRelay(t, { delivery: { target: `smtp://127.0.0.1:${sinkPort}` } });
  const original = [
    'From: Jan <jan@org.test>',
    'To: Piet <piet@example.com>',
    'Subject: =?utf-8?q?Verslag_overleg?=',
    'Message-ID: <peer-test-1@org.test>',
    'MIME-Version: 1.0',
    'Content-Type: text/plain; charset=utf-8',
    'Content-Transfer-Encoding: 8bit',
    '',
    'Beste Piet,',
    '',
    '.een regel die met een punt begint',
    'Groet, Jan',
    '',
  ].join('\r\n');
  const emlFile = path.join(dumps, '..', 'original.eml');
  fs.writeFileSync(emlFile, original);
  const result = await swaks(port, ['--from', 'jan@org.test', '--to', 'piet@example.com', '--data', `@${emlFile}`]);
  t.equal(result.code, 0, result.stdout);
  await waitFor(() => {
    const names = fs.readdirSync(dumps);
    if (names.length !== 1) return false;
    try {
      return readDump(path.join(dumps, names[0]!)).message.endsWith('\n\n');
    } catch {
      return false;
    }
  }, 10_000, 'the complete dump');
  const dump = readDump(path.join(dumps, fs.readdirSync(dumps)[0]!));
  const withoutOurs = dump.message.replace(/^Received: [^\n]*\n(?:\t[^\n]*\n)*/, '');
  const expected = original.replace(/\r\n/g, '\n');
  // smtp-sink writes LF line endings and closes each dump with blank lines of its own
  t.equal(withoutOurs.slice(0, expected.length), expected, 'headers and body byte-identical');
  t.match(withoutOurs.slice(expected.length), /^\n*$/, 'nothing but smtp-sink\'s trailing blank lines after it');
});
