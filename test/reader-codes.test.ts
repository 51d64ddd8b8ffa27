import t from 'tap';
import { LogSmsDriver, smsText } from '../src/secure/sms.js';
import { Browser, ReaderFixture } from './helpers/reader-fixture.js';

t.test('email code: sent to the masked address, opens the message once', async (t) => {
  const f = new ReaderFixture(t);
  await f.start();
  const link = await f.link({ method: 'email-code', address: 'jan@voorbeeld.nl' });
  const b = new Browser(f);
  const open = await b.open(link.linkId);
  t.equal(open.json.method, 'email-code');
  t.equal(open.json.destination, 'j•••@voorbeeld.nl');
  t.same((await b.verify(link.linkId)).json, { error: 'no-code' });

  const sent = await b.code(link.linkId);
  t.equal(sent.status, 200);
  t.equal(sent.json.sent, true);
  t.equal(sent.json.destination, 'j•••@voorbeeld.nl');
  t.equal(sent.json.expiresAt, new Date(f.clock.now() + 15 * 60e3).toISOString(), 'valid verification.ttl.email');
  const code = f.lastCode(link.linkId)!;
  t.match(code, /^\d{6}$/);
  const row = f.db.prepare('SELECT code_hash, channel, state FROM one_time_codes WHERE link_id = ?').get(link.linkId) as Record<string, string>;
  t.equal(row.channel, 'email');
  t.match(row.code_hash, /^[0-9a-f]{64}$/);
  t.not(row.code_hash, code);

  const ok = await b.verify(link.linkId, ` ${code.slice(0, 3)} ${code.slice(3)} `);
  t.equal(ok.status, 200, 'spaces in a typed code are fine');
  t.equal(ok.json.state, 'verified');
  t.equal((f.db.prepare('SELECT state FROM one_time_codes WHERE link_id = ?').get(link.linkId) as { state: string }).state, 'used');

  // single use: a second browser session with the same code gets nothing
  const again = await new Browser(f).verify(link.linkId, code);
  t.equal(again.status, 401);

  await f.flush();
  const events = f.events(link.queueId);
  t.same(
    events.map((e) => [e.type, e.detail.channel]),
    [
      ['code-sent', 'email'],
      ['check-passed', undefined],
      ['check-failed', undefined],
    ],
  );
  t.notMatch(JSON.stringify(events), code, 'events never carry the code');
  t.notMatch(f.logs(), code, 'logs never carry the code');
});

t.test('a used code does not verify another session', async (t) => {
  const f = new ReaderFixture(t);
  await f.start();
  const link = await f.link({ method: 'email-code' });
  const b = new Browser(f);
  await b.open(link.linkId);
  await b.code(link.linkId);
  const code = f.lastCode(link.linkId)!;
  t.equal((await b.verify(link.linkId, code)).status, 200);
  // a fresh session (cookie dropped) cannot use it again
  b.cookie = undefined;
  await b.open(link.linkId);
  const second = await b.verify(link.linkId, code);
  t.equal(second.status, 401);
  t.same(second.json, { error: 'wrong-code', attemptsLeft: 4 });
});

t.test('a code is bound to the browser session that asked for it', async (t) => {
  const f = new ReaderFixture(t);
  await f.start();
  const link = await f.link({ method: 'email-code' });
  const a = new Browser(f);
  const b = new Browser(f);
  await a.open(link.linkId);
  await b.open(link.linkId);
  await a.code(link.linkId);
  const code = f.lastCode(link.linkId)!;
  const inB = await b.verify(link.linkId, code);
  t.equal(inB.status, 401, 'session B cannot use the code of session A');
  t.same(inB.json, { error: 'wrong-code', attemptsLeft: 4 });
  t.equal((await b.blob(link.linkId, link.bodyBlob)).status, 403);
  t.equal((await a.verify(link.linkId, code)).status, 200, 'session A still can');
});

t.test('a code expires by the clock; a new code voids the previous one', async (t) => {
  const f = new ReaderFixture(t);
  await f.start();
  const link = await f.link({ method: 'email-code' });
  const b = new Browser(f);
  await b.open(link.linkId);
  await b.code(link.linkId);
  const first = f.lastCode(link.linkId)!;
  f.clock.advance(15 * 60e3);
  const late = await b.verify(link.linkId, first);
  t.equal(late.status, 401, 'expired after verification.ttl.email');

  await b.code(link.linkId);
  const second = f.lastCode(link.linkId)!;
  f.clock.advance(30_000);
  await b.code(link.linkId);
  const third = f.lastCode(link.linkId)!;
  if (second !== third) t.equal((await b.verify(link.linkId, second)).status, 401, 'the previous code is void');
  t.same(
    (f.db.prepare('SELECT state FROM one_time_codes WHERE link_id = ? ORDER BY id').all(link.linkId) as Array<{ state: string }>).map((r) => r.state),
    ['void', 'void', 'live'],
  );
  f.clock.advance(15 * 60e3 - 1);
  t.equal((await b.verify(link.linkId, third)).status, 200, 'valid until the last millisecond');
});

t.test('rate limit: one code per 30 s and five per hour per link', async (t) => {
  const f = new ReaderFixture(t);
  await f.start();
  const link = await f.link({ method: 'email-code' });
  const a = new Browser(f);
  const b = new Browser(f);
  t.equal((await a.code(link.linkId)).status, 200);
  const soon = await b.code(link.linkId);
  t.equal(soon.status, 429, 'per link, not per session');
  t.same(soon.json, { error: 'too-many-codes', retryAfter: 30 });
  f.clock.advance(20_000);
  t.same((await a.code(link.linkId)).json, { error: 'too-many-codes', retryAfter: 10 });
  f.clock.advance(10_000);
  for (let i = 0; i < 4; i++) {
    t.equal((await a.code(link.linkId)).status, 200, `code ${i + 2}`);
    f.clock.advance(60_000);
  }
  // five codes at t=0, 30 s, 90 s, 150 s, 210 s; now 270 s
  const sixth = await a.code(link.linkId);
  t.equal(sixth.status, 429);
  t.equal(sixth.json.retryAfter, 3600 - 270, 'until the first code leaves the hour');
  t.equal(f.mail.length, 5);
  await f.restart();
  t.equal((await a.code(link.linkId)).status, 429, 'the limit lives in SQLite');
  f.clock.advance((3600 - 270) * 1000);
  t.equal((await a.code(link.linkId)).status, 200);
  const other = await f.link({ method: 'email-code' });
  t.equal((await a.code(other.linkId)).status, 200, 'another link has its own limit');
});

t.test('codes only for code methods; a failed mail voids the code', async (t) => {
  const f = new ReaderFixture(t);
  await f.start();
  const b = new Browser(f);
  for (const method of ['none', 'access-code'] as const) {
    const link = await f.link({ method });
    const res = await b.code(link.linkId);
    t.equal(res.status, 400, method);
    t.same(res.json, { error: 'bad-request' });
  }
  const link = await f.link({ method: 'email-code' });
  f.mailerFails = true;
  const res = await b.code(link.linkId);
  t.equal(res.status, 503);
  t.same(res.json, { error: 'bad-request' });
  t.same(
    (f.db.prepare('SELECT state FROM one_time_codes WHERE link_id = ?').all(link.linkId) as Array<{ state: string }>).map((r) => r.state),
    ['void'],
  );
  t.notMatch(f.logs(), /smtp down while sending/, 'the mailer error text (which quotes the code) is not logged');
  await f.flush();
  t.same(f.events(link.queueId), [], 'no code-sent event');
});

t.test('sms code: masked phone, text in the link language, 10 minutes', async (t) => {
  const f = new ReaderFixture(t, { organisation: { name: 'Jeugdzorg Oost' } });
  await f.start();
  const sms = f.sms as LogSmsDriver;
  const nl = await f.link({ method: 'sms-code', phone: '+31612345678' });
  const en = await f.link({ method: 'sms-code', phone: '+31687654321', language: 'en' });
  const b = new Browser(f);
  const open = await b.open(nl.linkId);
  t.equal(open.json.destination, '+31 6 •••• ••78');
  const sent = await b.code(nl.linkId);
  t.equal(sent.json.destination, '+31 6 •••• ••78');
  t.equal(sent.json.expiresAt, new Date(f.clock.now() + 10 * 60e3).toISOString());
  const text = sms.last('+31612345678')!;
  const code = /(\d{6})/.exec(text)![1]!;
  t.equal(text, `Uw code voor het beveiligde bericht van Jeugdzorg Oost: ${code} (10 minuten geldig)`);
  t.equal(f.mail.length, 0, 'no mail for sms-code');
  f.clock.advance(10 * 60e3);
  t.equal((await b.verify(nl.linkId, code)).status, 401, 'expired after verification.ttl.sms');
  f.clock.advance(30_000);
  await b.code(nl.linkId);
  const fresh = /(\d{6})/.exec(sms.last('+31612345678')!)![1]!;
  t.equal((await b.verify(nl.linkId, fresh)).status, 200);

  const c = new Browser(f);
  await c.open(en.linkId);
  await c.code(en.linkId);
  const enText = sms.last('+31687654321')!;
  t.match(enText, /^Your code for the secure message from Jeugdzorg Oost: \d{6} \(valid for 10 minutes\)$/);
  await f.flush();
  t.same(
    f.events(nl.queueId).map((e) => [e.type, e.detail.channel]),
    [
      ['code-sent', 'sms'],
      ['check-failed', undefined],
      ['code-sent', 'sms'],
      ['check-passed', undefined],
    ],
  );
  const logs = f.logs();
  t.notMatch(logs, code);
  t.notMatch(logs, fresh);
  t.notMatch(logs, '+31612345678', 'the log driver logs a masked number');
  t.match(logs, /sms: text not sent \(log driver/);
  t.equal(smsText('nl', 'X', '123456', 60e3), 'Uw code voor het beveiligde bericht van X: 123456 (1 minuut geldig)');
});

t.test('an sms-code link without a phone sends nothing', async (t) => {
  const f = new ReaderFixture(t);
  await f.start();
  const link = await f.link({ method: 'sms-code' });
  const b = new Browser(f);
  t.equal((await b.open(link.linkId)).json.destination, undefined);
  t.equal((await b.code(link.linkId)).status, 503);
  t.equal(f.mail.length, 0, 'no silent fallback to e-mail');
});
