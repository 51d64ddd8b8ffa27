import fs from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { loadConfigFile, parseConfig } from '../src/config/load.js';
import { ZegelError } from '../src/errors.js';
import { tempDir } from './helpers/relay.js';
import { run } from './helpers/smtp-client.js';
import { repoRoot } from './helpers/repo-root.js';

const root = repoRoot;
const MIN = 60_000;
const HOUR = 60 * MIN;
const DAY = 24 * HOUR;

/**
 * `node bin/zegel ...` without tap's hooks: tap adds `--import <its loader>` to
 * NODE_OPTIONS of every process a test spawns, and that loader cannot run the
 * extensionless ESM bin/zegel. `env -u` drops it again.
 */
function zegel(args: string[]) {
  return run('/usr/bin/env', ['-u', 'NODE_OPTIONS', process.execPath, path.join(root, 'bin/zegel'), ...args], { timeoutMs: 30_000 });
}

/** What parseConfig throws for `input`, or undefined when it accepts it. */
function problemWith(input: unknown): { code: string; message: string; isZegelError: boolean } | undefined {
  try {
    parseConfig(input, '/etc/zegel');
  } catch (err) {
    return { code: (err as ZegelError).code, message: (err as Error).message, isZegelError: err instanceof ZegelError };
  }
  return undefined;
}

t.test('parseConfig({}) gives the defaults of DESIGN.md', async (t) => {
  const config = parseConfig({}, '/srv/zegel');
  t.same(config.organisation, { name: 'Zegel', domains: [] });
  t.same(config.smtp.listen, { host: '127.0.0.1', port: 2525 });
  t.same(config.smtp.allow, ['127.0.0.0/8', '::1/128']);
  t.same(config.smtp.auth.users, []);
  t.equal(config.smtp.tls, undefined);
  t.equal(config.smtp.requireTLS, false);
  t.equal(config.smtp.maxMessageSize, 52_428_800, '50MB in bytes');
  t.equal(config.smtp.maxRecipients, 100);
  t.equal(config.smtp.maxHops, 50);
  t.equal(config.smtp.senderDomainCheck, true);
  t.equal(config.smtp.bareLineEndings, 'normalise');
  t.equal(config.delivery.target, 'outbox');
  t.equal(config.delivery.internalTarget, 'outbox', 'internal mail follows delivery.target');
  t.same(config.delivery.retry.schedule, [5 * MIN, 10 * MIN, 30 * MIN, HOUR, 2 * HOUR, 4 * HOUR]);
  t.equal(config.delivery.retry.giveUpAfter, 48 * HOUR);
  t.equal(config.data.dir, path.resolve('/srv/zegel', 'data'), './data, resolved against the base directory');
  t.same(config.classify.optInTags, ['veilig', 'secure', 'vertrouwelijk']);
  t.same(config.classify.limits, { depth: 3, entries: 1000, totalBytes: 200 * 1024 * 1024, ratio: 100, timeout: 10_000 });
  t.same(config.reader.listen, { host: '127.0.0.1', port: 8080 });
  t.equal(config.reader.publicUrl, 'http://127.0.0.1:8080');
  t.equal(config.notification.from, 'no-reply');
  t.equal(config.notification.replyTo, true);
  t.equal(config.notification.language.default, 'nl');
  t.equal(config.verification.default, 'email-code');
  t.equal(config.verification.sms.driver, 'log');
  t.same(config.verification.ttl, { email: 15 * MIN, sms: 10 * MIN, maxAttempts: 5, lockFor: 15 * MIN });
  t.equal(config.retention.messages, 90 * DAY);
  t.equal(config.retention.audit, 6 * 365.25 * DAY, '6y');
  t.same(config.receipts, { sender: true, firstOpen: false });
  t.equal(config.queue.driver, 'sqlite');

  t.equal(parseConfig({}).data.dir, path.resolve(process.cwd(), 'data'), 'without a base directory: the working directory');
  t.same(parseConfig(undefined).smtp.listen, { host: '127.0.0.1', port: 2525 }, 'an empty YAML file is the defaults too');
});

t.test('values in their accepted forms', async (t) => {
  const config = parseConfig(
    {
      organisation: { domains: ['Org.Test'] },
      smtp: { listen: '[::1]:2526', maxMessageSize: '64KB', allow: ['10.0.0.0/8', '192.0.2.7', '2001:db8::/32'], tls: { key: 'tls/key.pem', cert: '/abs/cert.pem' } },
      delivery: { target: 'smtp://[::1]:25', internalTarget: 'smtp://mail.org.test:587', retry: { schedule: ['1m', 90_000], giveUpAfter: '2d' } },
      data: { dir: 'var' },
    },
    '/etc/zegel',
  );
  t.same(config.organisation.domains, ['org.test'], 'domains lower-cased');
  t.same(config.smtp.listen, { host: '::1', port: 2526 });
  t.equal(config.smtp.maxMessageSize, 65_536, 'sizes are binary');
  t.equal(parseConfig({ smtp: { maxMessageSize: 1000 } }).smtp.maxMessageSize, 1000, 'a plain number is bytes');
  t.same(config.smtp.tls, { key: '/etc/zegel/tls/key.pem', cert: '/abs/cert.pem' }, 'relative paths resolved against the config folder');
  t.same(config.delivery.retry.schedule, [MIN, 90_000]);
  t.equal(config.delivery.retry.giveUpAfter, 2 * DAY);
  t.equal(config.data.dir, '/etc/zegel/var');
});

t.test('a bad value names its key', async (t) => {
  const cases: Array<[string, unknown, RegExp]> = [
    ['size word', { smtp: { maxMessageSize: 'lots' } }, /smtp\.maxMessageSize: expected a size/],
    ['zero size', { smtp: { maxMessageSize: 0 } }, /smtp\.maxMessageSize: /],
    ['negative size', { smtp: { maxMessageSize: '-5MB' } }, /smtp\.maxMessageSize: /],
    ['unknown smtp key', { smtp: { bogus: 1 } }, /smtp\.bogus: unknown key/],
    ['unknown top-level key', { bogus: true }, /(^|\s)bogus: unknown key/m],
    ['misspelt nested key', { delivery: { retry: { schedul: ['5m'] } } }, /delivery\.retry\.schedul: unknown key/],
    ['auth without tls', { smtp: { auth: { users: [{ username: 'mta', passwordHash: '$argon2id$v=19$m=65536,t=3,p=4$c2FsdA$aGFzaA' }] } } }, /smtp\.auth\.users: .*smtp\.tls/],
    ['requireTLS without tls', { smtp: { requireTLS: true } }, /smtp\.requireTLS: .*smtp\.tls/],
    ['plain password', { smtp: { tls: { key: 'k', cert: 'c' }, auth: { users: [{ username: 'mta', passwordHash: 'geheim' }] } } }, /smtp\.auth\.users\.0\.passwordHash: expected an argon2 hash/],
    ['listen without port', { smtp: { listen: 'localhost' } }, /smtp\.listen: expected host:port/],
    ['listen port out of range', { smtp: { listen: '127.0.0.1:70000' } }, /smtp\.listen: /],
    ['CIDR prefix too long', { smtp: { allow: ['10.0.0.0/33'] } }, /smtp\.allow\.0: expected an IP address or CIDR/],
    ['allow a hostname', { smtp: { allow: ['127.0.0.1/8', 'localhost'] } }, /smtp\.allow\.1: /],
    ['maxRecipients 0', { smtp: { maxRecipients: 0 } }, /smtp\.maxRecipients: /],
    ['bareLineEndings', { smtp: { bareLineEndings: 'fix' } }, /smtp\.bareLineEndings: /],
    ['target http', { delivery: { target: 'http://mail.example:25' } }, /delivery\.target: expected "outbox", "mx", smtp:\/\/host:port/],
    ['schedule word', { delivery: { retry: { schedule: ['5m', 'soon'] } } }, /delivery\.retry\.schedule\.1: expected a duration/],
    ['empty schedule', { delivery: { retry: { schedule: [] } } }, /delivery\.retry\.schedule: /],
    ['domain', { organisation: { domains: ['not a domain'] } }, /organisation\.domains\.0: expected a domain name/],
    ['verification method', { verification: { default: 'carrier-pigeon' } }, /verification\.default: /],
    ['queue driver', { queue: { driver: 'redis' } }, /queue\.driver: /],
    ['retention', { retention: { messages: 'forever' } }, /retention\.messages: expected a duration/],
    ['wrong type for a section', { smtp: 'yes' }, /smtp: /],
  ];
  for (const [name, input, expected] of cases) {
    const problem = problemWith(input);
    t.ok(problem, `${name}: refused`);
    t.ok(problem?.isZegelError, `${name}: a ZegelError`);
    t.equal(problem?.code, 'ZEGEL_CONFIG_INVALID', `${name}: ZEGEL_CONFIG_INVALID`);
    t.match(problem?.message, expected, `${name}: names the key`);
  }

  const several = problemWith({ smtp: { maxMessageSize: 'lots', bogus: 1 }, delivery: { target: 'ftp://x' } })?.message;
  t.match(several, /smtp\.maxMessageSize: /, 'every problem is listed');
  t.match(several, /smtp\.bogus: unknown key/);
  t.match(several, /delivery\.target: /);
});

t.test('loadConfigFile: YAML errors and duplicate keys are invalid configuration', async (t) => {
  const dir = tempDir(t);
  const dup = path.join(dir, 'dup.yaml');
  fs.writeFileSync(dup, 'smtp:\n  maxRecipients: 5\n  maxRecipients: 6\n');
  t.throws(() => loadConfigFile(dup), { code: 'ZEGEL_CONFIG_INVALID' }, 'a key given twice');
  const broken = path.join(dir, 'broken.yaml');
  fs.writeFileSync(broken, 'smtp: [\n');
  t.throws(() => loadConfigFile(broken), { code: 'ZEGEL_CONFIG_INVALID' });
  t.throws(() => loadConfigFile(path.join(dir, 'missing.yaml')), { code: 'ZEGEL_CONFIG_UNREADABLE' });
  const good = path.join(dir, 'good.yaml');
  fs.writeFileSync(good, 'data:\n  dir: spool-here\n');
  const loaded = loadConfigFile(good);
  t.equal(loaded.source, good);
  t.equal(loaded.config.data.dir, path.join(dir, 'spool-here'), 'resolved against the file folder');
});

t.test('zegel start with an invalid configuration exits non-zero and names the key', async (t) => {
  const dir = tempDir(t);
  const bad = path.join(dir, 'bad.yaml');
  fs.writeFileSync(bad, `smtp:\n  listen: 127.0.0.1:0\n  maxMessageSize: lots\n  bogus: 1\ndata:\n  dir: ${JSON.stringify(path.join(dir, 'data'))}\n`);
  const result = await zegel(['start', '--config', bad]);
  t.not(result.code, null, 'it exits by itself');
  t.not(result.code, 0, 'with a failure code');
  t.match(result.stderr, /ZEGEL_CONFIG_INVALID/);
  t.match(result.stderr, /smtp\.maxMessageSize: expected a size/);
  t.match(result.stderr, /smtp\.bogus: unknown key/);
  t.notOk(fs.existsSync(path.join(dir, 'data')), 'it stopped before creating its data directory');

  const checked = await zegel(['check-config', '--config', bad]);
  t.not(checked.code, 0, 'check-config fails on it too');
  t.match(checked.stderr, /ZEGEL_CONFIG_INVALID[\s\S]*smtp\.maxMessageSize/);
  t.equal(checked.stdout, '', 'and prints no configuration');

  const authNoTls = path.join(dir, 'auth.yaml');
  fs.writeFileSync(authNoTls, `smtp:\n  auth:\n    users:\n      - username: mta\n        passwordHash: "$argon2id$v=19$m=65536,t=3,p=4$c2FsdA$aGFzaA"\n`);
  const auth = await zegel(['start', '--config', authNoTls]);
  t.not(auth.code, 0);
  t.match(auth.stderr, /ZEGEL_CONFIG_INVALID[\s\S]*smtp\.auth\.users: /);
});

t.test('zegel check-config prints the effective configuration', async (t) => {
  const dir = tempDir(t);
  const good = path.join(dir, 'good.yaml');
  fs.writeFileSync(good, 'smtp:\n  maxMessageSize: 64KB\ndata:\n  dir: ./var\n');
  const result = await zegel(['check-config', '--config', good]);
  t.equal(result.code, 0, result.stderr);
  const config = JSON.parse(result.stdout);
  t.equal(config.smtp.maxMessageSize, 65_536);
  t.same(config.smtp.listen, { host: '127.0.0.1', port: 2525 });
  t.equal(config.data.dir, path.join(dir, 'var'));
});

const example = path.join(root, 'config', 'zegel.example.yaml');
t.test('zegel check-config accepts config/zegel.example.yaml', { skip: fs.existsSync(example) ? false : 'config/zegel.example.yaml does not exist yet' }, async (t) => {
  const result = await zegel(['check-config', '--config', example]);
  t.equal(result.code, 0, result.stderr);
  t.doesNotThrow(() => JSON.parse(result.stdout), 'prints JSON');
});

t.test('defaults that follow from other keys', async (t) => {
  const plain = parseConfig({}, '/etc/zegel');
  t.equal(plain.delivery.internalTarget, 'outbox', 'internalTarget follows target');
  t.equal(plain.notification.noReplyAddress, undefined, 'no domains: no no-reply address to derive');
  const org = parseConfig({ organisation: { domains: ['Voorbeeldzorg.NL', 'vz.nl'] }, delivery: { target: 'smtp://127.0.0.1:10026' } }, '/etc/zegel');
  t.equal(org.delivery.internalTarget, 'smtp://127.0.0.1:10026');
  t.equal(org.notification.noReplyAddress, 'no-reply@voorbeeldzorg.nl', 'no-reply@ the first organisation domain');
  const explicit = parseConfig({ organisation: { domains: ['vz.nl'] }, notification: { noReplyAddress: 'niet-antwoorden@vz.nl' }, delivery: { internalTarget: 'smtp://127.0.0.1:25' } }, '/etc/zegel');
  t.equal(explicit.notification.noReplyAddress, 'niet-antwoorden@vz.nl');
  t.equal(explicit.delivery.internalTarget, 'smtp://127.0.0.1:25');
});
