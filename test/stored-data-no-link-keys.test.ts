import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { simpleParser } from 'mailparser';
import nodemailer from 'nodemailer';
import { pino } from 'pino';
import t from 'tap';
import { parseConfig } from '../src/config/load.js';
import { Relay } from '../src/relay.js';
import { tempDir, waitFor } from './helpers/relay.js';

// The promise: stored relay data alone reveals nothing. The link keys (K_link
// of every recipient, K_link_s of the sender's status link) exist only in the
// delivered notifications and receipts, and delivered mail is not relay state.
// On the embedded default (outbox delivery) a copy of data.dir alone (database,
// WAL, shm, spool, blobs, keys) must not hold any of them in any encoding.

/** Every regular file below `dir`. */
function filesBelow(dir: string): string[] {
  return fs.readdirSync(dir, { withFileTypes: true, recursive: true }).filter((e) => e.isFile()).map((e) => path.join(e.parentPath, e.name));
}

/** The forms a 32-byte key can take on disk: raw, hex, base64 (also mid-stream, at each of the 3 alignments), base64url. */
function encodings(key: Buffer): Array<[string, Buffer]> {
  const forms: Array<[string, Buffer]> = [
    ['raw', key],
    ['hex', Buffer.from(key.toString('hex'))],
    ['HEX', Buffer.from(key.toString('hex').toUpperCase())],
    ['base64', Buffer.from(key.toString('base64').replace(/=+$/, ''))],
    ['base64url', Buffer.from(key.toString('base64url'))],
  ];
  for (const offset of [1, 2]) {
    // inside a longer base64 stream: the characters that depend on key bits only
    const text = Buffer.concat([Buffer.alloc(offset), key]).toString('base64');
    const first = Math.ceil((8 * offset) / 6);
    const last = Math.floor((8 * (offset + key.length)) / 6);
    forms.push([`base64+${offset}`, Buffer.from(text.slice(first, last))]);
    forms.push([`base64url+${offset}`, Buffer.from(text.slice(first, last).replace(/\+/g, '-').replace(/\//g, '_'))]);
  }
  return forms;
}

/** Where any of the keys occurs below `dir`: "file: key n as form" (also after undoing quoted-printable soft line breaks). */
function findKeys(dir: string, keys: Buffer[]): string[] {
  const hits: string[] = [];
  for (const file of filesBelow(dir)) {
    const bytes = fs.readFileSync(file);
    const unwrapped = Buffer.from(bytes.toString('latin1').replace(/=\r?\n/g, ''), 'latin1');
    keys.forEach((key, n) => {
      for (const [form, needle] of encodings(key)) {
        if (bytes.includes(needle) || unwrapped.includes(needle)) hits.push(`${path.relative(dir, file)}: key ${n} as ${form}`);
      }
    });
  }
  return hits;
}

t.test('a copy of data.dir holds none of the delivered link keys (embedded default, outbox delivery)', async (t) => {
  process.umask(0o022);
  const cwd = tempDir(t);
  // the embedded default resolved in a fresh working directory; only the ports are free ones
  const config = parseConfig({ smtp: { listen: '127.0.0.1:0' }, reader: { listen: '127.0.0.1:0' } }, cwd, 'embedded default');
  t.equal(config.data.dir, path.join(cwd, 'data'));
  t.equal(config.delivery.target, 'outbox');
  t.equal(config.delivery.outboxDir, path.join(cwd, 'outbox'), 'the default outbox: ./outbox beside ./data');
  t.equal(config.verification.default, 'email-code');
  const log = pino({ level: 'info' }, pino.destination({ dest: path.join(cwd, 'relay.log'), sync: true }));
  const relay = await Relay.start({ config, log, pollMs: 25, closeTimeoutMs: 1_000 });
  let stopped = false;
  t.teardown(() => (stopped ? undefined : relay.stop(2_000)));

  const recipients = ['anna@extern.test', 'bert@ander.test'];
  const transport = nodemailer.createTransport({ host: '127.0.0.1', port: relay.smtpAddress.port, secure: false, ignoreTLS: true });
  try {
    await transport.sendMail({
      envelope: { from: 'jan@zorg.test', to: recipients },
      from: 'Jan de Vries <jan@zorg.test>',
      to: recipients.join(', '),
      subject: 'Dossier',
      text: 'Het BSN is 123456782.',
      attachments: [{ filename: 'verslag.txt', content: Buffer.from('Verslag van het consult.\n') }],
    });
  } finally {
    transport.close();
  }

  // the two notifications and the sender's receipt, as delivered into the outbox
  const outbox = config.delivery.outboxDir!;
  const links = await waitFor(async () => {
    const found: Array<{ kind: string; id: string; key: Buffer; to: string }> = [];
    const names = fs.existsSync(outbox) ? fs.readdirSync(outbox).filter((n) => n.endsWith('.eml')) : [];
    for (const name of names) {
      const mail = await simpleParser(fs.readFileSync(path.join(outbox, name)));
      const text = `${mail.text ?? ''}\n${typeof mail.html === 'string' ? mail.html : ''}`;
      for (const [, kind, id, fragment] of text.matchAll(/\/(m|s)\/([A-Za-z0-9_-]{16,})#([A-Za-z0-9_-]{43})/g)) {
        if (!found.some((f) => f.id === id)) found.push({ kind: kind!, id: id!, key: Buffer.from(fragment!, 'base64url'), to: name });
      }
    }
    return found.filter((f) => f.kind === 'm').length === 2 && found.some((f) => f.kind === 's') ? found : undefined;
  }, 30_000, 'two notifications and the receipt in the outbox');
  const keys = links.map((l) => l.key);
  t.equal(keys.length, 3, 'two recipient links and one status link');
  t.ok(keys.every((k) => k.length === 32), 'each key is 32 bytes');
  // delivered means gone from the spool: nothing of these mails is still relay state
  const spool = path.join(config.data.dir, 'spool');
  await waitFor(() => fs.readdirSync(spool).length === 0, 20_000, 'the spool to empty');
  await relay.backend.queue.idle();

  t.ok(findKeys(outbox, keys).length >= keys.length, 'the search finds the keys where they are: the outbox');
  t.equal(fs.statSync(outbox).mode & 0o777, 0o700, 'outbox folder 0700 under umask 022');
  for (const file of filesBelow(outbox)) t.equal(fs.statSync(file).mode & 0o777, 0o600, `${path.basename(file)} 0600`);

  // a copy of data.dir as it is while the relay runs (database with its WAL and shm), made by
  // another process as an attacker would: closing a descriptor of the database in this process
  // would drop the relay's own SQLite (POSIX) locks
  const live = path.join(tempDir(t, 'zegel-copy-'), 'data');
  execFileSync('cp', ['-a', config.data.dir, live]);
  const liveFiles = filesBelow(live).map((f) => path.relative(live, f));
  t.ok(liveFiles.includes('zegel.db') && liveFiles.includes('zegel.db-wal'), `the copy has the database and its WAL (${liveFiles.length} files)`);
  t.ok(liveFiles.some((f) => f.startsWith(`blobs${path.sep}`)), 'and the ciphertext blobs');
  t.same(findKeys(live, keys), [], 'no link key anywhere in the copy of the running relay');

  // and once it stopped (WAL checkpointed into the database)
  await relay.stop(2_000);
  stopped = true;
  const after = path.join(tempDir(t, 'zegel-copy-'), 'data');
  fs.cpSync(config.data.dir, after, { recursive: true });
  t.same(findKeys(after, keys), [], 'no link key anywhere in the copy of the stopped relay');
});
