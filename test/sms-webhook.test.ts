import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { pino } from 'pino';
import t from 'tap';
import { parseConfig } from '../src/config/load.js';
import { ZegelError } from '../src/errors.js';
import { createSmsDriver, LogSmsDriver, maskPhone, WebhookSmsDriver } from '../src/secure/sms.js';
import { Browser, ReaderFixture } from './helpers/reader-fixture.js';
import { tempDir, type Teardown } from './helpers/relay.js';

interface Received {
  method: string;
  authorization: string | undefined;
  contentType: string | undefined;
  body: unknown;
}

/** A local SMS gateway: records requests, answers with `status` (or never, when `hang`). */
async function gateway(t: Teardown, options: { status?: number; hang?: boolean } = {}) {
  const received: Received[] = [];
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      received.push({
        method: req.method ?? '',
        authorization: req.headers.authorization,
        contentType: req.headers['content-type'],
        body: JSON.parse(Buffer.concat(chunks).toString('utf8')),
      });
      if (options.hang) return;
      res.writeHead(options.status ?? 202, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ echo: 'gateway echo' }));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => {
    server.closeAllConnections();
    return new Promise<void>((resolve) => server.close(() => resolve()));
  });
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/sms`, received };
}

function silent() {
  const lines: string[] = [];
  return { log: pino({ level: 'debug' }, { write: (l: string) => void lines.push(l) }), lines };
}

t.test('webhook driver: POST JSON {to, text} with the bearer token from tokenFile', async (t) => {
  const gw = await gateway(t);
  const dir = tempDir(t);
  const tokenFile = path.join(dir, 'sms.token');
  fs.writeFileSync(tokenFile, 's3cr3t-token\n');
  const config = parseConfig({ verification: { sms: { driver: 'webhook', url: gw.url, tokenFile } } });
  const { log, lines } = silent();
  const driver = createSmsDriver(config, log);
  t.ok(driver instanceof WebhookSmsDriver);
  await driver.send('+31612345678', 'Uw code: 123456');
  t.same(gw.received, [{ method: 'POST', authorization: 'Bearer s3cr3t-token', contentType: 'application/json', body: { to: '+31612345678', text: 'Uw code: 123456' } }]);
  const logs = lines.join('');
  t.notMatch(logs, '123456');
  t.notMatch(logs, 's3cr3t-token');
  t.notMatch(logs, '+31612345678');
  t.match(logs, '+31 6 •••• ••78');
});

t.test('webhook driver: non-2xx and no answer are ZEGEL_SMS_SEND errors', async (t) => {
  const dir = tempDir(t);
  const tokenFile = path.join(dir, 'sms.token');
  fs.writeFileSync(tokenFile, 'tok');
  const failing = await gateway(t, { status: 500 });
  const driver = createSmsDriver(parseConfig({ verification: { sms: { driver: 'webhook', url: failing.url, tokenFile } } }), silent().log);
  await t.rejects(driver.send('+31612345678', 'x 123456'), { code: 'ZEGEL_SMS_SEND', message: /answered 500/ });

  const hanging = await gateway(t, { hang: true });
  const slow = createSmsDriver(parseConfig({ verification: { sms: { driver: 'webhook', url: hanging.url, tokenFile } } }), silent().log, { timeoutMs: 200 });
  await t.rejects(slow.send('+31612345678', 'x'), { code: 'ZEGEL_SMS_SEND', message: /no answer within 200 ms/ });

  const closed = createSmsDriver(parseConfig({ verification: { sms: { driver: 'webhook', url: 'http://127.0.0.1:1/sms', tokenFile } } }), silent().log);
  await t.rejects(closed.send('+31612345678', 'x'), { code: 'ZEGEL_SMS_SEND' });
});

t.test('configuration errors are typed', async (t) => {
  const dir = tempDir(t);
  t.throws(() => createSmsDriver(parseConfig({ verification: { sms: { driver: 'webhook', url: 'http://127.0.0.1/sms', tokenFile: path.join(dir, 'missing') } } }), silent().log), {
    code: 'ZEGEL_CONFIG_UNREADABLE',
  });
  fs.writeFileSync(path.join(dir, 'empty'), '\n');
  t.throws(() => createSmsDriver(parseConfig({ verification: { sms: { driver: 'webhook', url: 'http://127.0.0.1/sms', tokenFile: path.join(dir, 'empty') } } }), silent().log), {
    code: 'ZEGEL_CONFIG_UNREADABLE',
  });
  try {
    createSmsDriver(parseConfig({ verification: { sms: { driver: 'webhook' } } }), silent().log);
    t.fail('should throw');
  } catch (err) {
    t.ok(err instanceof ZegelError);
    t.equal((err as ZegelError).code, 'ZEGEL_CONFIG_INVALID');
  }
  t.ok(createSmsDriver(parseConfig({}), silent().log) instanceof LogSmsDriver, 'log is the default driver');
});

t.test('masking', async (t) => {
  t.equal(maskPhone('+31612345678'), '+31 6 •••• ••78');
  t.equal(maskPhone('+32470123456'), '+32 •••••••56');
});

t.test('the reader through the webhook: a failed send answers 503 and voids the code', async (t) => {
  const ok = await gateway(t);
  const down = await gateway(t, { status: 503 });
  const f = new ReaderFixture(t);
  const tokenFile = path.join(f.root, 'sms.token');
  fs.writeFileSync(tokenFile, 'tok');
  f.sms = createSmsDriver(parseConfig({ verification: { sms: { driver: 'webhook', url: down.url, tokenFile } } }), f.log);
  await f.start();
  const link = await f.link({ method: 'sms-code', phone: '+31612345678' });
  const b = new Browser(f);
  await b.open(link.linkId);
  const failed = await b.code(link.linkId);
  t.equal(failed.status, 503);
  t.same(failed.json, { error: 'bad-request' });
  t.equal(down.received.length, 1);
  const firstCode = /(\d{6})/.exec((down.received[0]!.body as { text: string }).text)![1]!;
  t.same(
    (f.db.prepare('SELECT state FROM one_time_codes WHERE link_id = ?').all(link.linkId) as Array<{ state: string }>).map((r) => r.state),
    ['void'],
  );
  t.equal((await b.verify(link.linkId, firstCode)).status, 401, 'the unsent code does not work');

  await f.stop();
  f.sms = createSmsDriver(parseConfig({ verification: { sms: { driver: 'webhook', url: ok.url, tokenFile } } }), f.log);
  await f.start();
  f.clock.advance(30_000);
  t.equal((await b.code(link.linkId)).status, 200);
  const code = /(\d{6})/.exec((ok.received[0]!.body as { text: string }).text)![1]!;
  t.equal((await b.verify(link.linkId, code)).status, 200);
  t.notMatch(f.logs(), firstCode);
  t.notMatch(f.logs(), code);
});
