import net from 'node:net';
import tls from 'node:tls';
import t from 'tap';
import SMTPConnection from 'nodemailer/lib/smtp-connection';
import { hashPassword } from '../src/smtp/policy.js';
import { clientKey } from '../src/smtp/auth-throttle.js';
import { startRelay, waitFor, type TestRelay } from './helpers/relay.js';
import { selfSigned } from './helpers/smtp-client.js';

/**
 * Failed SMTP AUTH attempts are throttled per client address and per
 * username, before the argon2 verification runs. The relay runs with STARTTLS
 * and three AUTH users; the clients are nodemailer's SMTP client bound to
 * chosen loopback addresses (127.0.0.x as localAddress) and a raw TLS socket
 * for malformed AUTH. That a refused attempt was not verified is read from the
 * relay's own counter of verifications (zegel_smtp_auth_total: accepted and
 * rejected are the verified attempts).
 */

const USERS = { mta: 'correct horse battery staple', ops: 'ops-secret Tr0ub4dor&3', svc: 'svc pass phrase 42' } as const;
const WRONG = ['wrong-guess-alpha-1', 'wrong-guess-bravo-2', 'wrong-guess-charlie-3', 'wrong-guess-delta-4', 'wrong-guess-echo-5', 'wrong-guess-fox-6'];
const PARSE_SECRET = 'parse-error-secret-Zq81';
const LOCK_MS = 6_000;
const MAX_FAILURES = 3;
const MAX_FAILURES_PER_USER = 8;


/**
 * One AUTH attempt on a fresh connection from `from`, after STARTTLS, with
 * nodemailer's SMTP client. Returns `235` or the refusal's code and enhanced code (`535 5.7.8`).
 */
async function attempt(port: number, from: string, user: string, pass: string, method: 'PLAIN' | 'LOGIN' = 'PLAIN'): Promise<string> {
  const connection = new SMTPConnection({ host: '127.0.0.1', port, localAddress: from, requireTLS: true, tls: { rejectUnauthorized: false }, name: 'probe.test', socketTimeout: 20_000 });
  connection.on('error', () => undefined);
  try {
    await new Promise<void>((resolve, reject) => {
      connection.once('error', reject);
      connection.connect(() => resolve());
    });
    return await new Promise<string>((resolve) => {
      connection.login({ user, pass, method }, (err) => {
        if (!err) return resolve('235');
        const response = (err as { response?: string }).response ?? err.message;
        resolve(/^\d{3} \d\.\d{1,3}\.\d{1,3}/.exec(response)?.[0] ?? response);
      });
    });
  } finally {
    connection.close();
  }
}

/** A raw SMTP session over STARTTLS, for AUTH exchanges no client library sends. */
async function rawTls(port: number, from: string): Promise<{ command(line: string): Promise<string>; close(): void }> {
  const plain = net.connect({ port, host: '127.0.0.1', localAddress: from });
  plain.on('error', () => undefined);
  let socket: net.Socket = plain;
  let buffer = '';
  let wake: (() => void) | undefined;
  const onData = (chunk: Buffer) => {
    buffer += chunk.toString('latin1');
    wake?.();
  };
  plain.on('data', onData);
  const reply = async (): Promise<string> => {
    const deadline = Date.now() + 15_000;
    for (;;) {
      const match = /^(?:\d{3}-[^\r\n]*\r\n)*\d{3}(?: [^\r\n]*)?\r\n/.exec(buffer);
      if (match) {
        buffer = buffer.slice(match[0].length);
        return match[0].trimEnd();
      }
      if (Date.now() > deadline) throw new Error(`no reply; got ${JSON.stringify(buffer)}`);
      await new Promise<void>((resolve) => {
        wake = resolve;
        setTimeout(resolve, 100);
      });
    }
  };
  const command = async (line: string) => {
    socket.write(`${line}\r\n`);
    return reply();
  };
  await reply();
  await command('EHLO probe.test');
  const starttls = await command('STARTTLS');
  if (!starttls.startsWith('220')) throw new Error(`STARTTLS -> ${starttls}`);
  plain.off('data', onData);
  const secure = tls.connect({ socket: plain, rejectUnauthorized: false });
  await new Promise<void>((resolve, reject) => {
    secure.once('secureConnect', () => resolve());
    secure.once('error', reject);
  });
  secure.on('error', () => undefined);
  secure.on('data', onData);
  socket = secure;
  await command('EHLO probe.test');
  return { command, close: () => secure.destroy() };
}

async function counts(relay: TestRelay): Promise<{ accepted: number; rejected: number; throttled: number }> {
  const metric = relay.relay.metrics.registry.getSingleMetric('zegel_smtp_auth_total');
  const values = (await metric!.get()).values;
  const of = (result: string) => values.find((v) => v.labels.result === result)?.value ?? 0;
  return { accepted: of('accepted'), rejected: of('rejected'), throttled: of('throttled') };
}

/** The argon2 verifications so far: every attempt that was accepted or rejected. */
const verified = (c: { accepted: number; rejected: number }) => c.accepted + c.rejected;

t.test('SMTP AUTH throttling', async (t) => {
  const { key, cert } = await selfSigned(t);
  const users = await Promise.all(Object.entries(USERS).map(async ([username, password]) => ({ username, passwordHash: await hashPassword(password) })));
  const relay = await startRelay(t, {
    organisation: { domains: ['org.test'] },
    smtp: {
      allow: ['10.0.0.0/8'],
      tls: { key, cert },
      auth: { users, maxFailures: MAX_FAILURES, maxFailuresPerUser: MAX_FAILURES_PER_USER, failureWindow: '10m', lockFor: `${LOCK_MS / 1000}s` },
    },
  });
  const { port } = relay;

  await t.test(`${MAX_FAILURES} failures from 127.0.0.1 get 535 5.7.8; the next attempts get 454 4.7.0 without a verification`, async (t) => {
    for (const pass of WRONG.slice(0, MAX_FAILURES)) t.equal(await attempt(port, '127.0.0.1', 'mta', pass), '535 5.7.8', 'a failure, verified');
    t.same(await counts(relay), { accepted: 0, rejected: MAX_FAILURES, throttled: 0 });

    t.equal(await attempt(port, '127.0.0.1', 'mta', WRONG[3]!), '454 4.7.0', 'one more wrong password: throttled');
    t.equal(await attempt(port, '127.0.0.1', 'mta', USERS.mta), '454 4.7.0', 'the right password from the throttled address: throttled too');
    t.equal(await attempt(port, '127.0.0.1', 'svc', USERS.svc, 'LOGIN'), '454 4.7.0', 'another account from the throttled address, AUTH LOGIN: throttled');
    t.same(await counts(relay), { accepted: 0, rejected: MAX_FAILURES, throttled: 3 }, 'no verification ran for the three throttled attempts');
  });

  await t.test('127.0.0.2 is unaffected', async (t) => {
    const before = await counts(relay);
    t.equal(await attempt(port, '127.0.0.2', 'mta', USERS.mta), '235', 'the right password is accepted');
    t.equal(await attempt(port, '127.0.0.2', 'mta', WRONG[4]!), '535 5.7.8', 'a wrong one is verified and refused as usual');
    const after = await counts(relay);
    t.same(after, { accepted: before.accepted + 1, rejected: before.rejected + 1, throttled: before.throttled });
  });

  await t.test('the right password from 127.0.0.1 is refused until lockFor has passed; a success then starts the count over', async (t) => {
    const before = await counts(relay);
    const replies: string[] = [];
    await waitFor(
      async () => {
        const reply = await attempt(port, '127.0.0.1', 'mta', USERS.mta);
        replies.push(reply);
        if (reply !== '235') await new Promise((resolve) => setTimeout(resolve, 200));
        return reply === '235';
      },
      LOCK_MS + 15_000,
      'the lock to pass',
    );
    // (the first subtest saw the right password refused while the lock was on)
    t.same(replies.slice(0, -1), replies.slice(0, -1).map(() => '454 4.7.0'), 'every attempt before that: 454 4.7.0');
    const after = await counts(relay);
    t.equal(verified(after) - verified(before), 1, 'of all those attempts only the accepted one was verified');
    t.equal(after.throttled - before.throttled, replies.length - 1);

    for (const pass of WRONG.slice(0, MAX_FAILURES)) t.equal(await attempt(port, '127.0.0.1', 'mta', pass), '535 5.7.8', 'after the success: failures are verified again');
    t.equal(await attempt(port, '127.0.0.1', 'mta', WRONG[3]!), '454 4.7.0', `and after ${MAX_FAILURES} the address is throttled again`);
  });

  await t.test(`guessing one account from many addresses: past ${MAX_FAILURES_PER_USER} failures the username is throttled`, async (t) => {
    const before = await counts(relay);
    // two failures from each of four addresses: under the per-address limit everywhere
    for (const n of [10, 11, 12, 13]) {
      for (const pass of WRONG.slice(0, 2)) t.equal(await attempt(port, `127.0.0.${n}`, 'ops', pass), '535 5.7.8', `127.0.0.${n}: verified`);
    }
    t.equal(await attempt(port, '127.0.0.14', 'ops', WRONG[2]!), '454 4.7.0', 'a fresh address guessing the same account: throttled');
    t.equal(await attempt(port, '127.0.0.14', 'ops', USERS.ops), '454 4.7.0', 'the right password for it too, until lockFor has passed');
    t.equal(await attempt(port, '127.0.0.14', 'svc', USERS.svc), '235', 'another account from that address is accepted: refusals for the username do not count against the address');
    const after = await counts(relay);
    t.same(after, { accepted: before.accepted + 1, rejected: before.rejected + 8, throttled: before.throttled + 2 });
  });

  await t.test('parallel attempts cannot slip past the limit while their verifications run', async (t) => {
    const before = await counts(relay);
    const replies = await Promise.all(WRONG.map((pass) => attempt(port, '127.0.0.20', 'ghost', pass)));
    t.equal(replies.filter((r) => r === '535 5.7.8').length, MAX_FAILURES, `${MAX_FAILURES} verified and refused (${replies.join(', ')})`);
    t.equal(replies.filter((r) => r === '454 4.7.0').length, WRONG.length - MAX_FAILURES, 'the rest throttled');
    const after = await counts(relay);
    t.equal(verified(after) - verified(before), MAX_FAILURES, `exactly ${MAX_FAILURES} verifications, for an unknown username too`);
  });

  await t.test('malformed AUTH is answered and costs no verification', async (t) => {
    const before = await counts(relay);
    const smtp = await rawTls(port, '127.0.0.30');
    t.teardown(() => smtp.close());
    // PLAIN without the NUL separators: the password is in the token, the token is invalid
    t.match(await smtp.command(`AUTH PLAIN ${Buffer.from(`mta${PARSE_SECRET}`).toString('base64')}`), /^501 /);
    t.match(await smtp.command(`AUTH PLAIN ${Buffer.from(`\0mta\0${PARSE_SECRET}\0extra`).toString('base64')}`), /^501 /);
    // LOGIN, answered with the password where the username belongs, then aborted
    t.match(await smtp.command('AUTH LOGIN'), /^334 /);
    t.match(await smtp.command(Buffer.from(`\x01${PARSE_SECRET}`).toString('base64')), /^501 /);
    t.same(await counts(relay), before, 'nothing verified, nothing counted');
  });

  await t.test('the log records failures with address and username, never a password', async (t) => {
    const logs = relay.logs();
    const lines = logs.split('\n').filter(Boolean).map((line) => JSON.parse(line) as Record<string, unknown>);
    const failed = lines.filter((l) => l.msg === 'smtp auth failed');
    const throttled = lines.filter((l) => l.msg === 'smtp auth throttled');
    t.ok(failed.some((l) => l.client === '127.0.0.1' && l.user === 'mta' && l.method === 'PLAIN'), 'a failure names the client address and the username');
    t.ok(throttled.some((l) => l.client === '127.0.0.1' && l.user === 'mta' && l.scope === 'client'), 'throttling by address is logged');
    t.ok(throttled.some((l) => l.client === '127.0.0.14' && l.user === 'ops' && l.scope === 'user'), 'throttling by username is logged');
    t.ok(lines.some((l) => l.msg === 'smtp auth accepted' && l.client === '127.0.0.2' && l.user === 'mta'), 'a success is logged');

    const secrets = [...Object.values(USERS), ...WRONG, PARSE_SECRET];
    const forms = (s: string) => [
      s,
      Buffer.from(s).toString('base64'),
      Buffer.from(s).toString('base64url'),
      Buffer.from(s).toString('hex'),
      JSON.stringify(s).slice(1, -1),
      ...Object.keys(USERS).flatMap((u) => [Buffer.from(`\0${u}\0${s}`).toString('base64'), Buffer.from(`${u}\0${s}`).toString('base64')]),
    ];
    const found = secrets.flatMap((s) => forms(s).filter((f) => logs.includes(f)).map((f) => `${s} as ${f}`));
    t.same(found, [], 'no password in any encoding in the log');
    t.notMatch(logs, /[Pp]assword"?\s*:/, 'no password field either');
  });
});

t.test('addresses are counted by IPv4 address (also IPv4-mapped) and by IPv6 /64', async (t) => {
  t.equal(clientKey('127.0.0.1'), '127.0.0.1');
  t.equal(clientKey('::ffff:10.1.2.3'), '10.1.2.3');
  t.equal(clientKey('2001:db8:1:2:3:4:5:6'), '2001:db8:1:2::/64');
  t.equal(clientKey('2001:DB8:0001:0002::ffff'), '2001:db8:1:2::/64', 'one /64, however written');
  t.equal(clientKey('2001:db8::1'), '2001:db8:0:0::/64');
  t.equal(clientKey('::1'), '0:0:0:0::/64');
  t.equal(clientKey('64:ff9b::1.2.3.4'), '64:ff9b:0:0::/64');
});
