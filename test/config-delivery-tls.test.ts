import fs from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { stringify } from 'yaml';
import { runZegel } from './helpers/child-relay.js';
import { tempDir } from './helpers/relay.js';
import { parseConfig } from '../src/config/load.js';
import { TlsPolicy } from '../src/deliver/tls-policy.js';
import { targetTlsDefaults } from '../src/deliver/routes.js';
import type { ZegelError } from '../src/errors.js';

// The delivery contract of issue 18: targets, the login, TLS levels and their
// defaults per target, and the floor for mail with link keys or codes.

function problemWith(input: unknown): string | undefined {
  try {
    parseConfig(input, '/etc/zegel');
  } catch (err) {
    return `${(err as ZegelError).code}: ${(err as Error).message}`;
  }
  return undefined;
}

t.test('the targets: outbox, smtp://, smtps://, mx; a login never in the URL', async (t) => {
  for (const target of ['outbox', 'mx', 'smtp://127.0.0.1:10026', 'smtps://smtp.provider.example:465', 'smtp://[::1]:25', 'smtp://relay.example.nl']) {
    t.equal(problemWith({ delivery: { target } }), undefined, target);
  }
  t.match(problemWith({ delivery: { target: 'smtp://zegel:geheim@smtp.provider.example:587' } }), /ZEGEL_CONFIG_INVALID: [\s\S]*delivery\.target: .*a login goes in delivery\.auth, never in the URL/);
  t.match(problemWith({ delivery: { target: 'lmtp://x:24' } }), /delivery\.target/);
  t.match(problemWith({ delivery: { target: 'outbox', auth: { user: 'u', passwordFile: 'p' } } }), /delivery\.auth: a login is for a smarthost .*not for outbox/);
  t.match(problemWith({ delivery: { target: 'smtps://s.example:465', auth: { user: 'u', password: 'p' } } }), /delivery\.auth/, 'a password in the YAML is refused');
  t.match(problemWith({ delivery: { tls: { default: 'dane' } } }), /delivery\.tls\.default/);
  t.match(problemWith({ delivery: { target: 'smtp://s.example:587', auth: { user: 'u', passwordFile: 'p' }, tls: { default: 'encrypt' } } }), /delivery\.tls: default is encrypt, but the login of delivery\.auth is only sent over a verified certificate/);
  t.match(problemWith({ delivery: { target: 'smtps://s.example:465', auth: { user: 'u', passwordFile: 'p' }, tls: { policies: { 's.example': 'may' } } } }), /delivery\.tls: policies\.s\.example is may, but the login/);
  t.equal(problemWith({ delivery: { target: 'smtps://s.example:465', auth: { user: 'u', passwordFile: 'p' }, tls: { default: 'verify', policies: { 'partner.example': 'encrypt' } } } }), undefined, 'other domains may be lowered');
  t.match(problemWith({ delivery: { tls: { policies: { 'not a domain': 'may' } } } }), /delivery\.tls\.policies/);
  t.match(problemWith({ delivery: { mx: { dnsServers: ['127.0.0.1'] } } }), /delivery\.mx\.dnsServers.*host:port/);
});

t.test('the files are resolved against the configuration file', async (t) => {
  const config = parseConfig({ delivery: { target: 'smtps://s.example:465', auth: { user: 'u', passwordFile: 'smarthost.pw' }, tls: { ca: 'ca.pem' }, mx: { mtaSts: { ca: 'sts.pem' }, dnsServers: ['127.0.0.1:5353'] } } }, '/etc/zegel');
  t.equal(config.delivery.auth!.passwordFile, '/etc/zegel/smarthost.pw');
  t.equal(config.delivery.tls.ca, '/etc/zegel/ca.pem');
  t.equal(config.delivery.mx.mtaSts.ca, '/etc/zegel/sts.pem');
  t.same(config.delivery.mx.dnsServers, [{ host: '127.0.0.1', port: 5353 }]);
  t.equal(config.delivery.mx.port, 25);
  t.equal(config.delivery.mx.mtaSts.enabled, true);
});

t.test('TLS defaults per target', async (t) => {
  t.same(targetTlsDefaults('mx', false), { level: 'verify', secretsFloor: 'verify' });
  t.same(targetTlsDefaults('smtps://s.example:465', false), { level: 'verify', secretsFloor: 'verify' });
  t.same(targetTlsDefaults('smtp://s.example:587', true), { level: 'verify', secretsFloor: 'verify' }, 'a login: verify');
  t.same(targetTlsDefaults('smtp://relay.example.nl:25', false), { level: 'verify', secretsFloor: undefined }, 'another machine: verify');
  t.same(targetTlsDefaults('smtp://127.0.0.1:10026', false), { level: 'may', secretsFloor: undefined }, 'the loopback re-injection: may');
  t.same(targetTlsDefaults('smtp://[::1]:10026', false), { level: 'may', secretsFloor: undefined });
  t.same(targetTlsDefaults('smtp://localhost:10026', false), { level: 'may', secretsFloor: undefined });
});

t.test('mail with secrets gets the floor unless a policy names the domain lower', async (t) => {
  const policy = new TlsPolicy({ default: 'may', policies: { 'partner.example': 'encrypt', 'Strict.Example.': 'verify' } }, 'verify', 'verify');
  t.same(policy.resolve('elders.example', { secrets: false }), { level: 'may', source: 'default' });
  t.same(policy.resolve('elders.example', { secrets: true }), { level: 'verify', source: 'secrets' });
  t.same(policy.resolve('PARTNER.example', { secrets: true }), { level: 'encrypt', source: 'policy' }, 'the admin\'s explicit word wins, case-insensitive');
  t.same(policy.resolve('strict.example', { secrets: false }), { level: 'verify', source: 'policy' });
  t.same(policy.loweredForSecrets(), [{ domain: 'partner.example', level: 'encrypt' }], 'and is warned about');
  const loopback = new TlsPolicy({ policies: { 'x.example': 'may' } }, 'may', undefined);
  t.same(loopback.resolve('127.0.0.1', { secrets: true }), { level: 'may', source: 'default' }, 'no floor on a loopback target');
  t.same(loopback.loweredForSecrets(), []);
});

t.test('zegel check-config reads the delivery files and warns about lowered secrets', async (t) => {
  const dir = tempDir(t);
  const configFile = path.join(dir, 'zegel.yaml');
  fs.writeFileSync(path.join(dir, 'not-a-cert.pem'), 'hallo\n');
  fs.writeFileSync(
    configFile,
    stringify({
      data: { dir: path.join(dir, 'data') },
      delivery: { target: 'mx', tls: { ca: 'not-a-cert.pem', policies: { 'partner.example': 'encrypt' } } },
    }),
  );
  const run = await runZegel(['check-config', '--config', configFile]);
  t.equal(run.code, 0, 'the configuration itself is valid');
  t.match(run.stderr, /warning: zegel start refuses this configuration: ZEGEL_DELIVERY_FILE: delivery\.tls\.ca: .*not-a-cert\.pem holds no PEM certificate/);
  t.match(run.stderr, /warning: delivery\.tls\.policies lowers partner\.example to encrypt: notifications, receipts and code mails to it leave without a verified certificate/);
  t.notOk(fs.existsSync(path.join(dir, 'data')), 'check-config made no data directory');
});
