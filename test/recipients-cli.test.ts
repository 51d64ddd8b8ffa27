import fs from 'node:fs';
import path from 'node:path';
import t, { type Test } from 'tap';
import { stringify } from 'yaml';
import { openDb } from '../src/store/db.js';
import { Directory, verifyAccessCode } from '../src/store/directory.js';
import { GroupCommitter } from '../src/store/group-commit.js';
import { type CliRun, runZegel } from './helpers/child-relay.js';
import { tempDir } from './helpers/relay.js';

/*
 * `zegel recipients set|import|list|remove` through the built CLI (npm run
 * build first), as DESIGN.md "Contracts → Recipient directory" says: access
 * codes only from stdin and never printed, `--config FILE` on every command,
 * problems as one line on stderr with exit code 1, usage errors exit code 2.
 * Every command first says on stderr which data directory it reads; `set` and
 * `import` with --config make the database before the relay's first start,
 * nothing makes one without --config, and `list`/`remove` never make one.
 */

type Run = CliRun & { dataDirLine?: string };

/** The CLI's run, with its first stderr line `zegel: data directory …` moved into dataDirLine. */
const zegel = async (args: string[], cwd: string, stdin = ''): Promise<Run> => {
  const r = await runZegel(args, { cwd, stdin });
  const line = /^zegel: data directory .*\n/.exec(r.stderr)?.[0];
  return line ? { ...r, stderr: r.stderr.slice(line.length), dataDirLine: line.trimEnd() } : r;
};

/** A working folder with a config whose data.dir is relative to it. */
function setup(t: Test): { dir: string; dataDir: string; config: string; cli: (args: string[], stdin?: string) => Promise<Run> } {
  const dir = tempDir(t, 'zegel-recipients-');
  const config = path.join(dir, 'zegel.yaml');
  fs.writeFileSync(config, stringify({ data: { dir: 'state' }, verification: { default: 'email-code' } }));
  const cwd = path.join(dir, 'elsewhere');
  fs.mkdirSync(cwd);
  return { dir, dataDir: path.join(dir, 'state'), config, cli: (args, stdin) => zegel([...args, '--config', config], cwd, stdin) };
}

/** One line on stderr naming the problem, no stack trace. */
function oneLine(t: Test, r: CliRun, pattern: RegExp): void {
  t.equal(r.code, 1, `exit code 1: ${r.stderr}`);
  t.equal(r.stderr.split('\n').filter(Boolean).length, 1, 'one line on stderr');
  t.match(r.stderr, pattern);
  t.notMatch(r.stderr, /\n\s+at /, 'no stack trace');
  t.equal(r.stdout, '', 'nothing on stdout');
}

function dbBytes(dataDir: string): Buffer {
  return Buffer.concat(fs.readdirSync(dataDir).filter((f) => f.startsWith('zegel.db')).map((f) => fs.readFileSync(path.join(dataDir, f))));
}

t.test('set merges, normalises and prints the entry; list shows it', async (t) => {
  const { cli, dir } = setup(t);
  let r = await cli(['recipients', 'set', 'Jan@Example.NL', '--method', 'sms-code', '--phone', '+31 6-1234 5678']);
  t.equal(r.code, 0, r.stderr);
  t.equal(r.stdout, 'set jan@example.nl: method=sms-code phone=+31612345678\n');
  t.equal(r.dataDirLine, `zegel: data directory ${path.join(dir, 'state')} (data.dir of ${path.join(dir, 'zegel.yaml')})`, 'which data directory, on stderr');
  t.equal(r.stderr, '', 'nothing else on stderr');

  r = await cli(['recipients', 'set', 'JAN@example.nl', '--language', 'en']);
  t.equal(r.code, 0, r.stderr);
  t.equal(r.stdout, 'set jan@example.nl: method=sms-code phone=+31612345678 language=en\n', 'merged: method and phone kept');

  r = await cli(['recipients', 'set', '@Example.nl', '--method', 'sms-code']);
  t.equal(r.code, 0, r.stderr);
  t.equal(r.stdout, 'set @example.nl: method=sms-code\n');
  t.match(r.stderr, /^warning: @example\.nl: sms-code without a phone/, 'sms-code without a phone is allowed, with a warning');

  r = await cli(['recipients', 'list']);
  t.equal(r.code, 0, r.stderr);
  t.equal(
    r.stdout,
    [
      '@example.nl     method=sms-code',
      '                warning: sms-code without a phone: each message needs an [sms:+…] subject tag',
      'jan@example.nl  method=sms-code phone=+31612345678 language=en',
      '',
    ].join('\n'),
  );
});

t.test('access code: only from stdin, stored as argon2id, never printed or stored in plain', async (t) => {
  const { cli, dataDir } = setup(t);
  const code = 'Gedeeld-Partner-8831';
  let r = await cli(['recipients', 'set', '@partner.nl', '--method', 'access-code', '--access-code-stdin'], `${code}\n`);
  t.equal(r.code, 0, r.stderr);
  t.equal(r.stdout, 'set @partner.nl: method=access-code access-code=set\n');
  t.notOk((r.stdout + r.stderr).includes(code));

  r = await cli(['recipients', 'set', 'jan@partner.nl', '--access-code-stdin'], 'Eigen-Code-Jan-1\r\n');
  t.equal(r.code, 0, r.stderr);

  r = await cli(['recipients', 'set', 'jan@partner.nl', '--access-code', code]);
  t.equal(r.code, 2, 'no option takes a code on the command line');
  t.match(r.stderr, /unknown option '--access-code'/);

  r = await cli(['recipients', 'set', 'x@partner.nl', '--access-code-stdin'], 'kort\n');
  oneLine(t, r, /^zegel: ZEGEL_DIRECTORY_ACCESS_CODE: access code: must be at least 8 characters\n$/);
  r = await cli(['recipients', 'set', 'x@partner.nl', '--access-code-stdin'], '');
  oneLine(t, r, /standard input is empty/);

  r = await cli(['recipients', 'list', '--json']);
  t.equal(r.code, 0, r.stderr);
  t.notMatch(r.stdout, /argon2|Gedeeld|Eigen/, 'list --json: no codes, no hashes');
  r = await cli(['recipients', 'list']);
  t.notMatch(r.stdout, /argon2|Gedeeld|Eigen/, 'list: no codes, no hashes');

  const bytes = dbBytes(dataDir);
  for (const plain of [code, 'Eigen-Code-Jan-1']) t.equal(bytes.indexOf(Buffer.from(plain)), -1, `no plaintext ${plain} in zegel.db, -wal, -shm`);

  const db = openDb(dataDir);
  t.teardown(() => db.close());
  const hashes = db.prepare('SELECT access_code FROM directory ORDER BY target').all() as Array<{ access_code: string }>;
  t.equal(hashes.length, 2);
  for (const h of hashes) t.match(h.access_code, /^\$argon2id\$/);
  const store = new GroupCommitter(db);
  t.teardown(() => store.close());
  const resolved = await new Directory(db, store).resolve('Jan@Partner.nl', { method: 'email-code', language: 'nl' });
  t.equal(resolved.method, 'access-code');
  t.equal(await verifyAccessCode(resolved.accessCodeHashes, 'Eigen-Code-Jan-1'), true, 'line ending removed from stdin');
  t.equal(await verifyAccessCode(resolved.accessCodeHashes, code), true, 'the domain code opens too');
  t.equal(await verifyAccessCode(resolved.accessCodeHashes, 'Eigen-Code-Jan-2'), false);
});

t.test('problems: one line on stderr, exit 1; usage errors exit 2; nothing changed', async (t) => {
  const { cli } = setup(t);
  oneLine(t, await cli(['recipients', 'set', 'jan@example.nl', '--phone', '06-12345678']), /^zegel: ZEGEL_DIRECTORY_PHONE: phone "06-12345678": expected E\.164/);
  oneLine(t, await cli(['recipients', 'set', 'jan@example.nl', '--phone', '+31 (6) 12345678']), /ZEGEL_DIRECTORY_PHONE/);
  oneLine(t, await cli(['recipients', 'set', 'jan', '--method', 'none']), /^zegel: ZEGEL_DIRECTORY_TARGET: target "jan"/);
  oneLine(t, await cli(['recipients', 'set', '@example', '--method', 'none']), /ZEGEL_DIRECTORY_TARGET/);
  oneLine(t, await cli(['recipients', 'remove', 'nobody@example.nl']), /^zegel: ZEGEL_DIRECTORY_NOT_FOUND: no entry for nobody@example\.nl\n$/);

  let r = await cli(['recipients', 'set', 'jan@example.nl', '--method', 'sms']);
  t.equal(r.code, 2, 'an unknown method is a usage error');
  t.match(r.stderr, /argument 'sms' is invalid\. Allowed choices are none, access-code, email-code, sms-code/);
  r = await cli(['recipients', 'set', 'jan@example.nl', '--language', 'de']);
  t.equal(r.code, 2);
  r = await cli(['recipients', 'set', 'jan@example.nl']);
  t.equal(r.code, 2, 'nothing to set');
  t.match(r.stderr, /nothing to set/);
  r = await cli(['recipients', 'set']);
  t.equal(r.code, 2, 'missing target');

  r = await cli(['recipients', 'list', '--json']);
  t.same(JSON.parse(r.stdout), [], 'nothing was stored');
});

t.test('list --json: the shape, never codes', async (t) => {
  const { cli, dataDir } = setup(t);
  let r = await cli(['recipients', 'list', '--json']);
  t.equal(r.code, 2, 'before the relay ever ran: refused, not an empty database made');
  t.match(r.stderr, /^zegel: ZEGEL_NO_DATABASE: no database at .*state\/zegel\.db/);
  t.equal(r.stdout, '');
  t.notOk(fs.existsSync(dataDir), 'no data directory made');
  openDb(dataDir).close(); // what the relay's first start does
  r = await cli(['recipients', 'list', '--json']);
  t.equal(r.code, 0, r.stderr);
  t.same(JSON.parse(r.stdout), []);
  r = await cli(['recipients', 'list']);
  t.match(r.stdout, /^no entries/);

  await cli(['recipients', 'set', '@example.nl', '--method', 'access-code', '--language', 'en', '--access-code-stdin'], 'dit-is-geheim-42\n');
  await cli(['recipients', 'set', 'piet@example.nl', '--method', 'sms-code']);
  r = await cli(['recipients', 'list', '--json']);
  t.equal(r.code, 0, r.stderr);
  const list = JSON.parse(r.stdout) as Array<Record<string, unknown>>;
  t.equal(list.length, 2);
  for (const e of list) {
    t.same(Object.keys(e), ['target', 'method', 'phone', 'language', 'hasAccessCode', 'updatedAt', 'warnings']);
    t.match(e.updatedAt, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
  }
  t.match(list[0], { target: '@example.nl', method: 'access-code', phone: null, language: 'en', hasAccessCode: true, warnings: [] });
  t.match(list[1], { target: 'piet@example.nl', method: 'sms-code', phone: null, language: null, hasAccessCode: false, warnings: [/sms-code without a phone/] });
  t.notOk(r.stdout.includes('dit-is-geheim-42'));
  t.notOk(r.stdout.includes('$argon2'));
});

t.test('import: quotes, BOM and CRLF; a bad row names FILE:LINE and imports nothing', async (t) => {
  const { cli, dir } = setup(t);
  const cwd = path.join(dir, 'elsewhere');
  fs.writeFileSync(
    path.join(cwd, 'good.csv'),
    '\uFEFFtarget,method,phone,access_code,language\r\nJan@Example.nl,sms-code,"+31 6 1234 5678",,en\r\n"@partner.nl",access-code,,"code, met ""quotes""",\r\n',
  );
  let r = await cli(['recipients', 'import', 'good.csv']);
  t.equal(r.code, 0, r.stderr);
  t.equal(r.stdout, 'imported good.csv: 2 rows (2 new, 0 updated)\n');
  t.notOk(r.stdout.includes('quotes') || r.stderr.includes('quotes'), 'the code is not printed');
  r = await cli(['recipients', 'list', '--json']);
  t.same(
    (JSON.parse(r.stdout) as Array<Record<string, unknown>>).map(({ updatedAt: _u, ...e }) => e),
    [
      { target: 'jan@example.nl', method: 'sms-code', phone: '+31612345678', language: 'en', hasAccessCode: false, warnings: [] },
      { target: '@partner.nl', method: 'access-code', phone: null, language: null, hasAccessCode: true, warnings: [] },
    ],
  );

  fs.writeFileSync(
    path.join(cwd, 'bad.csv'),
    'target,method,phone,access_code,language\r\nnew@example.nl,none,,,\r\njan@example.nl,,06 1234,,\r\n@example.nl,sms,,,\r\n',
  );
  r = await cli(['recipients', 'import', 'bad.csv']);
  t.equal(r.code, 1);
  t.equal(r.stdout, '');
  const lines = r.stderr.split('\n').filter(Boolean);
  t.match(lines, [/^bad\.csv:3: phone "06 1234": expected E\.164/, /^bad\.csv:4: method "sms": expected one of/, /^zegel: nothing imported \(2 problems\)$/]);
  t.equal(lines.length, 3);
  r = await cli(['recipients', 'list', '--json']);
  t.same(
    (JSON.parse(r.stdout) as Array<{ target: string; phone: string }>).map((e) => [e.target, e.phone]),
    [
      ['jan@example.nl', '+31612345678'],
      ['@partner.nl', null],
    ],
    'the good row of bad.csv was not imported either',
  );

  oneLine(t, await cli(['recipients', 'import', 'missing.csv']), /^zegel: ZEGEL_DIRECTORY_IMPORT: cannot read missing\.csv: ENOENT/);
});

t.test('remove, and every command honours --config; without it ./data', async (t) => {
  const { cli, dir, dataDir } = setup(t);
  await cli(['recipients', 'set', 'jan@example.nl', '--method', 'none']);
  t.ok(fs.existsSync(path.join(dataDir, 'zegel.db')), 'data.dir from the config, relative to the config file');
  t.notOk(fs.existsSync(path.join(dir, 'elsewhere', 'data')), 'not ./data');

  let r = await cli(['recipients', 'remove', 'JAN@example.nl']);
  t.equal(r.code, 0, r.stderr);
  t.equal(r.stdout, 'removed jan@example.nl\n');
  r = await cli(['recipients', 'list', '--json']);
  t.same(JSON.parse(r.stdout), []);

  const bare = path.join(dir, 'bare');
  fs.mkdirSync(bare);
  r = await zegel(['recipients', 'set', '@example.nl', '--language', 'en'], bare);
  t.equal(r.code, 2, 'without --config and no ./data/zegel.db: refused');
  t.match(r.stderr, /^zegel: ZEGEL_NO_DATABASE: no database at .*bare\/data\/zegel\.db; pass --config FILE/);
  t.notOk(fs.existsSync(path.join(bare, 'data')), 'no ./data invented');
  openDb(path.join(bare, 'data')).close(); // a relay started here with the embedded default
  r = await zegel(['recipients', 'set', '@example.nl', '--language', 'en'], bare);
  t.equal(r.code, 0, r.stderr);
  t.equal(r.dataDirLine, `zegel: data directory ${path.join(bare, 'data')} (no --config: the embedded default ./data)`);
  r = await zegel(['recipients', 'list'], bare);
  t.equal(r.stdout, '@example.nl  language=en\n', 'the embedded default: ./data');

  r = await zegel(['recipients', 'list', '--config', path.join(dir, 'nope.yaml')], bare);
  t.not(r.code, 0, 'an unreadable config fails');
  t.match(r.stderr, /ZEGEL_CONFIG_UNREADABLE/);
});
