import fs from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { startRelay, stripFirstReceived, waitFor, type Teardown, type TestRelay } from './helpers/relay.js';
import { RawSmtp } from './helpers/smtp-client.js';
import { startWireSink, type WireSink } from './helpers/wire-sink.js';

/**
 * Odd end-of-data sequences and NUL bytes inside a body, checked at both
 * ends: what the relay answers on the way in (the sequence never ends DATA:
 * the client gets exactly one reply for the message and then QUIT's 221), and
 * the exact bytes the next hop receives on the wire (WireSink keeps the DATA
 * bytes with their dot-stuffing). Lenient next hops treat bare CR or LF as a
 * line end, and some drop NUL before looking for CRLF.CRLF; so nothing of the
 * sequence may reach the next hop as it was sent:
 *
 * - normalise mode: every bare CR and bare LF becomes CRLF, and the dot then
 *   stands at the start of a line, where it is dot-stuffed on the wire;
 * - reject mode: the message is refused with 554 5.6.0;
 * - a NUL byte is refused with 554 5.6.0 in both modes (Zegel offers no BINARYMIME).
 */

const SENDER = 'sender@org.test';
const RCPT = 'rcpt@example.com';
const session = (port: number, payload: Buffer) => RawSmtp.transaction(port, SENDER, [RCPT], payload);
const BEFORE = 'before the sequence';
const AFTER = 'after: the rest of the message still arrives\r\n';

/**
 * Each sequence with the body lines (CRLF-joined, after BEFORE) that the next
 * hop must see in normalise mode, written out by hand; null: refused in both modes.
 */
const SEQUENCES: Array<[string, string | null]> = [
  ['\n.\n', '\r\n.\r\n'],
  ['\n.\r', '\r\n.\r\n'],
  ['\r.\n', '\r\n.\r\n'],
  ['\r.\r', '\r\n.\r\n'],
  ['\n.\r\n', '\r\n.\r\n'],
  ['\r.\r\n', '\r\n.\r\n'],
  ['\r\n.\r\r\n', '\r\n.\r\n\r\n'],
  ['\r\r\n.\r\r\n', '\r\n\r\n.\r\n\r\n'],
  ['\r\n\0.\r\n', null],
];

const show = (s: string) => JSON.stringify(s);

function header(id: string): string {
  return `From: <${SENDER}>\r\nTo: <${RCPT}>\r\nSubject: odd end of data\r\nMessage-ID: <${id}@org.test>\r\n\r\n`;
}

/** SMTP dot-stuffing (RFC 5321 4.5.2) of CRLF-only text, with the end-of-data line. */
function stuffed(text: string): string {
  return text.replace(/(^|\r\n)\./g, '$1..') + '.\r\n';
}

/**
 * Reads the wire as a strict receiver would: lines split on CRLF only. Says
 * what is wrong with it: bare CR or LF, NUL, an unstuffed dot line, or a
 * terminator anywhere but at the end.
 */
function wireFaults(wire: Buffer): string[] {
  const faults: string[] = [];
  for (let i = 0; i < wire.length; i++) {
    if (wire[i] === 0x00) faults.push(`NUL at ${i}`);
    if (wire[i] === 0x0a && wire[i - 1] !== 0x0d) faults.push(`bare LF at ${i}`);
    if (wire[i] === 0x0d && wire[i + 1] !== 0x0a) faults.push(`bare CR at ${i}`);
  }
  const lines = wire.toString('latin1').split('\r\n');
  if (lines.pop() !== '') faults.push('does not end with CRLF');
  if (lines.pop() !== '.') faults.push('does not end with the end-of-data line');
  lines.forEach((line, n) => {
    if (line === '.') faults.push(`end-of-data line before the end, at line ${n}`);
    else if (line.startsWith('.') && !line.startsWith('..')) faults.push(`dot line not stuffed, at line ${n}`);
  });
  return faults;
}


function storedMessageIds(relay: TestRelay): string[] {
  return (relay.relay.sqlite.db.prepare('SELECT id FROM messages').all() as Array<{ id: string }>).map((r) => r.id);
}

const spoolFiles = (relay: TestRelay) => {
  const dir = path.join(relay.dataDir, 'spool');
  return fs.existsSync(dir) ? fs.readdirSync(dir) : [];
};

async function setup(t: Teardown, mode: 'normalise' | 'reject'): Promise<{ sink: WireSink; relay: TestRelay }> {
  const sink = await startWireSink(t);
  const relay = await startRelay(t, { delivery: { target: sink.url }, smtp: { bareLineEndings: mode } });
  return { sink, relay };
}

for (const mode of ['normalise', 'reject'] as const) {
  t.test(`${mode} mode: no sequence ends DATA, none reaches the next hop as sent`, async (t) => {
    const { sink, relay } = await setup(t, mode);
    const accepted: Array<{ id: string; seq: string; expectedWire: string; sent: Buffer }> = [];

    for (const [i, [seq, normalised]] of SEQUENCES.entries()) {
      const id = `${mode}-${i}`;
      const content = header(id) + BEFORE + seq + AFTER;
      const sent = Buffer.from(content, 'latin1');
      const { dataReply, replies } = await session(relay.port, Buffer.concat([sent, Buffer.from('.\r\n')]));
      t.match(dataReply, /^354/, `${show(seq)}: DATA`);
      // exactly one reply for the message, then QUIT's: had the sequence ended DATA, the
      // rest of the body would have been read as commands and answered (500 ...)
      t.equal(replies.length, 2, `${show(seq)}: one reply for the message, one for QUIT (${show(replies.join(' | '))})`);
      t.match(replies[1], /^221 /, `${show(seq)}: QUIT`);
      const refused = normalised === null || mode === 'reject';
      if (refused) {
        const text = seq.includes('\0') ? /^554 5\.6\.0 Message contains NUL bytes; Zegel offers no BINARYMIME$/ : /^554 5\.6\.0 Message contains bare CR or LF line endings/;
        t.match(replies[0], text, `${show(seq)}: refused with 554 5.6.0`);
      } else {
        t.match(replies[0], /^250 2\.6\.0 Ok: queued as \S+$/, `${show(seq)}: accepted as one message`);
        accepted.push({ id, seq, expectedWire: stuffed(header(id) + BEFORE + normalised + AFTER), sent });
      }
    }

    // a clean message last: once it has arrived, everything accepted before it was handed on too
    const clean = `${header(`${mode}-clean`)}.leading dot\r\nend\r\n`;
    const last = await session(relay.port, Buffer.from(`${clean.replace('\r\n.leading', '\r\n..leading')}.\r\n`, 'latin1'));
    t.match(last.replies[0], /^250 /, 'a clean message is accepted');
    accepted.push({ id: `${mode}-clean`, seq: 'clean', expectedWire: stuffed(clean), sent: Buffer.from(clean, 'latin1') });

    await waitFor(() => sink.messages.length >= accepted.length, 15_000, 'the deliveries');
    await waitFor(() => spoolFiles(relay).length === 0, 15_000, 'an empty spool');
    t.equal(sink.messages.length, accepted.length, 'the next hop got exactly the accepted messages');
    t.equal(storedMessageIds(relay).length, accepted.length, 'the relay recorded exactly the accepted messages');
    t.equal(mode === 'reject' ? accepted.length : accepted.length - 1, mode === 'reject' ? 1 : SEQUENCES.length - 1, 'accepted: the clean message, and in normalise mode every sequence but NUL');

    for (const { id, seq, expectedWire, sent } of accepted) {
      const message = sink.messages.find((m) => m.wire.includes(`<${id}@org.test>`));
      t.ok(message, `${show(seq)}: delivered`);
      if (!message) continue;
      t.same(message.to, [RCPT], `${show(seq)}: one transaction, for the original recipient`);
      t.same(wireFaults(message.wire), [], `${show(seq)}: CRLF only, no NUL, dots stuffed, one end-of-data line`);
      const wire = stripFirstReceived(message.wire).toString('latin1');
      t.equal(wire, expectedWire, `${show(seq)}: the next hop's bytes, byte for byte`);
      // (the content, without the end-of-data line that ends the wire)
      if (seq !== 'clean') t.notOk(message.wire.subarray(0, -3).includes(Buffer.from(seq, 'latin1')), `${show(seq)}: the sequence itself is not on the wire`);
      t.notOk(message.wire.includes(sent), `${show(seq)}: the body did not go out as it was sent`);
    }
    for (const [i, [seq]] of SEQUENCES.entries()) {
      if (mode === 'reject' || seq.includes('\0')) {
        t.notOk(sink.messages.some((m) => m.wire.includes(`<${mode}-${i}@org.test>`)), `${show(seq)}: refused, never reached the next hop`);
      }
    }
    t.notOk(sink.messages.some((m) => m.wire.includes(0)), 'no NUL byte ever reached the next hop');

    const logs = relay.logs();
    t.match(logs, /"cause":"ZEGEL_NUL_BYTE"[^\n]*"msg":"message refused"/, 'the NUL refusal is logged with its cause');
    if (mode === 'reject') t.match(logs, /"cause":"ZEGEL_BARE_LINE_ENDING"[^\n]*"msg":"message refused"/);
  });
}

t.test('a NUL anywhere is refused, also in the header, at a chunk edge or alone', async (t) => {
  const { sink, relay } = await setup(t, 'normalise');
  const cases: Array<[string, Buffer[]]> = [
    ['in a header field', [Buffer.from(`From: <${SENDER}>\r\nSubject: a\0b\r\nMessage-ID: <nul-h@org.test>\r\n\r\nbody\r\n`, 'latin1')]],
    ['a lone NUL line', [Buffer.from(`${header('nul-line')}one\r\n\0\r\ntwo\r\n`, 'latin1')]],
    ['last byte of the first write', [Buffer.from(`${header('nul-edge')}one\0`, 'latin1'), Buffer.from('\r\ntwo\r\n')]],
  ];
  for (const [name, parts] of cases) {
    const client = await RawSmtp.connect(relay.port);
    try {
      await client.envelope(SENDER, [RCPT]);
      t.match(await client.command('DATA'), /^354/);
      for (const part of parts) await client.send(part);
      client.write('.\r\n');
      t.match(await client.reply(), /^554 5\.6\.0 Message contains NUL bytes/, `${name}: refused`);
      t.match(await client.command('NOOP'), /^250 /, `${name}: the session goes on`);
    } finally {
      client.close();
    }
  }
  t.same(storedMessageIds(relay), [], 'nothing recorded');
  t.same(spoolFiles(relay), [], 'no spool file remains');
  t.same(sink.messages, [], 'nothing was handed on');
});
