import fs from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { stringify } from 'yaml';
import { parseConfig } from '../src/config/load.js';
import { ZegelError } from '../src/errors.js';
import { freePort, runZegel } from './helpers/child-relay.js';
import { tempDir } from './helpers/relay.js';

// delivery.outboxDir holds delivered mail (notifications carry link keys), so
// it may never lie inside data.dir: refused by the configuration with the key
// and the reason, also when a symlink leads it there.

function refusal(input: unknown, baseDir = '/srv/zegel'): string | undefined {
  try {
    parseConfig(input, baseDir);
  } catch (err) {
    return err instanceof ZegelError ? `${err.code}: ${err.message}` : String(err);
  }
  return undefined;
}

t.test('defaults and accepted places', async (t) => {
  t.equal(parseConfig({}, '/srv/zegel').delivery.outboxDir, '/srv/zegel/outbox', 'beside ./data');
  t.equal(parseConfig({ data: { dir: '/var/lib/zegel' } }).delivery.outboxDir, '/var/lib/outbox', 'beside any data.dir');
  t.equal(parseConfig({ delivery: { outboxDir: 'mail/out' } }, '/srv/zegel').delivery.outboxDir, '/srv/zegel/mail/out', 'relative to the config folder');
  t.equal(parseConfig({ data: { dir: '/srv/data' }, delivery: { outboxDir: '/srv/data-outbox' } }).delivery.outboxDir, '/srv/data-outbox', 'a name that only starts like data.dir');
});

t.test('an outbox inside data.dir, equal to it or around it is refused with the key and the reason', async (t) => {
  t.match(refusal({ delivery: { outboxDir: './data/outbox' } }), /^ZEGEL_CONFIG_INVALID: [^]*delivery\.outboxDir: \/srv\/zegel\/data\/outbox lies inside data\.dir \(\/srv\/zegel\/data\); the outbox holds delivered mail with link keys/);
  t.match(refusal({ delivery: { outboxDir: './data' } }), /delivery\.outboxDir: .* lies inside data\.dir/, 'equal to data.dir');
  t.match(refusal({ data: { dir: '/srv/zegel/state/data' }, delivery: { outboxDir: '/srv/zegel/state/data/../data/x' } }), /lies inside data\.dir/, 'after resolving ..');
  t.match(refusal({ delivery: { outboxDir: '.' } }), /delivery\.outboxDir: \/srv\/zegel contains data\.dir/, 'data.dir inside the outbox');
  t.match(refusal({ data: { dir: '/' } }), /delivery\.outboxDir: \/outbox lies inside data\.dir \(\/\)/, 'data.dir / has no outside for the default');
});

t.test('check-config names the outbox; check-config and start refuse an outbox that a symlink puts inside data.dir', async (t) => {
  const dir = tempDir(t);
  const file = path.join(dir, 'zegel.yaml');
  fs.writeFileSync(file, stringify({ data: { dir: './data' } }));
  const check = await runZegel(['check-config', '--config', file]);
  t.equal(check.code, 0, check.stderr);
  t.equal((JSON.parse(check.stdout) as { delivery: { outboxDir: string } }).delivery.outboxDir, path.join(dir, 'outbox'));
  t.match(check.stderr, `delivered mail goes to the outbox ${path.join(dir, 'outbox')} (outside data.dir ${path.join(dir, 'data')})`);

  fs.mkdirSync(path.join(dir, 'data', 'inner'), { recursive: true });
  fs.symlinkSync(path.join(dir, 'data', 'inner'), path.join(dir, 'sneaky'));
  fs.writeFileSync(file, stringify({ data: { dir: './data' }, delivery: { outboxDir: './sneaky' }, smtp: { listen: `127.0.0.1:${await freePort()}` }, reader: { listen: `127.0.0.1:${await freePort()}` } }));
  for (const command of ['check-config', 'start']) {
    const run = await runZegel([command, '--config', file]);
    t.equal(run.code, 2, `${command} exits 2`);
    t.match(run.stderr, /ZEGEL_CONFIG_INVALID: [^]*delivery\.outboxDir: .*sneaky resolves to .*data\/inner, which overlaps data\.dir/, command);
    t.notMatch(run.stderr, /relay started/);
  }
  t.same(fs.readdirSync(path.join(dir, 'data', 'inner')), [], 'nothing written through the symlink');
});
