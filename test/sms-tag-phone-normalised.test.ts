import nodemailer from 'nodemailer';
import { simpleParser } from 'mailparser';
import t, { type Test } from 'tap';
import { ManualClock } from '../src/clock.js';
import { readSubjectTags } from '../src/pipeline/secure-job.js';
import type { LogSmsDriver } from '../src/secure/sms.js';
import { freePort } from './helpers/child-relay.js';
import { startRelay, waitFor, type TestRelay } from './helpers/relay.js';
import { startSink, type TestSink } from './helpers/sink.js';

// The `[sms:…]` subject tag and the recipient directory share one phone
// normaliser (src/address.ts): the tag accepts exactly the numbers the
// directory accepts, in the same canonical form. A tag with a number the
// directory refuses is ignored: the recipient keeps the method the directory
// or verification.default gives (never texted at a number nobody checked).

const CANONICAL = '+31612345678';
/** Accepted by both, after normalising: spaces, a no-break space, dashes. */
const ACCEPTED = ['+31612345678', '+31 6 1234 5678', '+31\u00a06-1234-5678', '+31 6-12 34 56 78'];
/**
 * Refused by both. The first three were accepted by the tag alone before:
 * `(0)` became `+3106…` (a wrong number), dots and parentheses were dropped.
 */
const REFUSED = ['+31 (0)6 1234 5678', '+31.6.1234.5678', '+31 (6) 12345678', '0612345678', '+0612345678', '+31 6 1234', '+316123456789012345', 'piet'];

async function setup(t: Test): Promise<{ relay: TestRelay; sink: TestSink }> {
  const sink = await startSink(t);
  const port = await freePort();
  const relay = await startRelay(
    t,
    {
      organisation: { name: 'Voorbeeldzorg', domains: ['zorg.test'] },
      delivery: { target: sink.url },
      reader: { listen: `127.0.0.1:${port}`, publicUrl: `http://127.0.0.1:${port}` },
      verification: { default: 'email-code' },
    },
    { clock: new ManualClock(Date.now()) },
  );
  return { relay, sink };
}

/** What the directory makes of `phone`: the stored number, or undefined when `set` refuses it (ZEGEL_DIRECTORY_PHONE). */
async function directoryPhone(relay: TestRelay, target: string, phone: string): Promise<string | undefined> {
  try {
    return (await relay.relay.directory.set(target, { method: 'sms-code', phone })).phone;
  } catch (err) {
    if ((err as { code?: string }).code === 'ZEGEL_DIRECTORY_PHONE') return undefined;
    throw err;
  }
}

/** Sends a sensitive message with `subject` to `to`; resolves to the link id and fragment of its notification. */
async function secureMessage(relay: TestRelay, sink: TestSink, to: string, subject: string): Promise<string> {
  const transport = nodemailer.createTransport({ host: '127.0.0.1', port: relay.port, secure: false, ignoreTLS: true });
  try {
    await transport.sendMail({ envelope: { from: 'jan@zorg.test', to: [to] }, from: 'jan@zorg.test', to, subject, text: 'Het BSN is 123456782.' });
  } finally {
    transport.close();
  }
  return waitFor(
    async () => {
      for (const m of sink.messages) {
        if (!m.to.includes(to)) continue;
        const link = /\/m\/([A-Za-z0-9_-]{22})#/.exec((await simpleParser(m.raw)).text ?? '');
        if (link) return link[1];
      }
      return undefined;
    },
    20_000,
    `the notification to ${to}`,
  );
}

/** The reader's view of a link, as the page gets it: POST /open, then (for a code method) POST /code. */
async function readerCheck(t: Test, relay: TestRelay, linkId: string): Promise<{ method: string; codeStatus?: number }> {
  const base = relay.relay.config.reader.publicUrl;
  const post = (path: string, cookie?: string) => fetch(`${base}/api/links/${linkId}${path}`, { method: 'POST', headers: { 'x-zegel-reader': '1', ...(cookie ? { cookie } : {}) } });
  const open = await post('/open');
  t.equal(open.status, 200, 'the link opens');
  const { method } = (await open.json()) as { method: string };
  const cookie = /^(zegel_rs=[^;]*)/.exec(open.headers.get('set-cookie') ?? '')?.[1];
  if (method !== 'sms-code' && method !== 'email-code') return { method };
  const code = await post('/code', cookie);
  await code.arrayBuffer();
  return { method, codeStatus: code.status };
}

t.test('the tag parser and the directory accept and refuse the same numbers, in the same form', async (t) => {
  const { relay } = await setup(t);
  for (const [i, form] of [...ACCEPTED, ...REFUSED].entries()) {
    const tag = readSubjectTags(`Uitslag [sms:${form}]`, []);
    const stored = await directoryPhone(relay, `r${i}@extern.test`, form);
    t.equal(tag.phone, stored, `${JSON.stringify(form)}: tag ${tag.phone ?? 'ignored'}, directory ${stored ?? 'refused'}`);
    t.equal(tag.stripped, 'Uitslag', `${JSON.stringify(form)}: the tag leaves the subject either way`);
    if (ACCEPTED.includes(form)) t.equal(stored, CANONICAL, `${JSON.stringify(form)} is stored as ${CANONICAL}`);
    else t.equal(stored, undefined, `${JSON.stringify(form)} is refused`);
  }
});

t.test('through the relay: an accepted tag texts the canonical number, a refused one leaves the configured method', async (t) => {
  const { relay, sink } = await setup(t);
  const sms = relay.relay.sms as LogSmsDriver;

  // non-canonical but valid: the recipient verifies by sms at the normalised number
  const accepted = await secureMessage(relay, sink, 'piet@extern.test', 'Uitslag [sms:+31\u00a06-1234 5678]');
  const piet = await readerCheck(t, relay, accepted);
  t.equal(piet.method, 'sms-code', 'the tag sets sms-code');
  t.equal(piet.codeStatus, 200, 'a code is sent');
  t.ok(await waitFor(() => sms.last(CANONICAL), 10_000, 'the sms'), `texted at ${CANONICAL}`);

  // refused by the directory: the tag is ignored, verification.default (email-code) applies
  await t.rejects(relay.relay.directory.set('klaas@extern.test', { phone: '+31 (0)6 8765 4321' }), { code: 'ZEGEL_DIRECTORY_PHONE' }, 'the directory refuses (0)');
  const refused = await secureMessage(relay, sink, 'klaas@extern.test', 'Uitslag [sms:+31 (0)6 8765 4321]');
  const klaas = await readerCheck(t, relay, refused);
  t.equal(klaas.method, 'email-code', 'the refused tag leaves the configured method');
  t.equal(klaas.codeStatus, 200);
  t.equal(sms.last('+310687654321'), undefined, 'nothing texted at the mangled number');
  t.equal(sms.last('+31687654321'), undefined, 'nor at a guess of it');
  const subjects = await Promise.all(sink.messages.filter((m) => m.to.includes('klaas@extern.test')).map(async (m) => (await simpleParser(m.raw)).subject));
  t.ok(subjects.length > 0 && subjects.every((s) => !/sms:/i.test(s ?? '')), 'the tag is still removed from what the recipient sees');
});
