import fs from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { stringify } from 'yaml';
import { runZegel } from './helpers/child-relay.js';
import { tempDir } from './helpers/relay.js';

/*
 * Admin commands do not invent a database. Run in the wrong folder without
 * --config, `zegel queue|messages|audit|recipients` used to create an empty
 * ./data/zegel.db and answer from it ("no jobs", "no entries") as if the
 * relay were idle. Now each says on stderr which data directory it reads and,
 * when there is no database, refuses with ZEGEL_NO_DATABASE (exit 2, as for a
 * bad configuration) and creates nothing. With --config, only `recipients set`
 * and `recipients import` make the database (filling the directory before the
 * relay's first start); the read-only commands refuse there too.
 */

const ADMIN_COMMANDS = [
  ['queue', 'list'],
  ['queue', 'retry', 'deliver:x:target'],
  ['queue', 'delete', 'deliver:x:target'],
  ['messages', 'list'],
  ['messages', 'show', 'x'],
  ['messages', 'revoke', 'x'],
  ['audit'],
  ['audit', 'verify'],
  ['audit', 'checkpoint'],
  ['audit', 'purge'],
  ['recipients', 'list'],
  ['recipients', 'remove', 'jan@example.nl'],
  ['recipients', 'set', 'jan@example.nl', '--method', 'none'],
  ['recipients', 'import', 'ontvangers.csv'],
];

t.test('without --config in a folder with no ./data: every admin command refuses and makes nothing', async (t) => {
  const cwd = fs.realpathSync(tempDir(t, 'zegel-no-db-'));
  fs.writeFileSync(path.join(cwd, 'ontvangers.csv'), 'target,method,phone,access_code,language\r\njan@example.nl,none,,,\r\n');
  const dataDir = path.join(cwd, 'data');
  for (const args of ADMIN_COMMANDS) {
    const r = await runZegel(args, { cwd });
    const what = `zegel ${args.join(' ')}`;
    t.equal(r.code, 2, `${what}: exit 2 (${r.stderr.trim()})`);
    t.equal(r.stdout, '', `${what}: nothing on stdout`);
    t.same(
      r.stderr.split('\n').filter(Boolean),
      [
        `zegel: data directory ${dataDir} (no --config: the embedded default ./data)`,
        `zegel: ZEGEL_NO_DATABASE: no database at ${path.join(dataDir, 'zegel.db')}; pass --config FILE (the relay's configuration, whose data.dir holds it) or run the command in the folder the relay runs in`,
      ],
      `${what}: which data directory, and why refused`,
    );
    t.notOk(fs.existsSync(dataDir), `${what}: no ./data made`);
  }
  // public-key reads no database, but says where it looked and makes nothing either
  const r = await runZegel(['audit', 'public-key'], { cwd });
  t.equal(r.code, 2);
  t.match(r.stderr, new RegExp(`^zegel: data directory ${dataDir} .*\\nzegel: ZEGEL_AUDIT_KEY: `));
  t.notOk(fs.existsSync(dataDir), 'audit public-key: no ./data made');
});

t.test('with --config before the first start: read-only commands refuse, recipients set and import fill the directory', async (t) => {
  const dir = fs.realpathSync(tempDir(t, 'zegel-no-db-config-'));
  const config = path.join(dir, 'zegel.yaml');
  fs.writeFileSync(config, stringify({ data: { dir: 'state' } }));
  const dataDir = path.join(dir, 'state');
  const dataDirLine = `zegel: data directory ${dataDir} (data.dir of ${config})`;
  for (const args of [['queue', 'list'], ['messages', 'list'], ['audit'], ['audit', 'verify'], ['recipients', 'list']]) {
    const r = await runZegel([...args, '--config', config], { cwd: dir });
    const what = `zegel ${args.join(' ')} --config`;
    t.equal(r.code, 2, `${what}: exit 2`);
    t.equal(r.stdout, '', `${what}: nothing on stdout`);
    t.match(r.stderr, new RegExp(`^${dataDirLine.replace(/[.()]/g, '\\$&')}\\nzegel: ZEGEL_NO_DATABASE: no database at ${dataDir}/zegel\\.db \\(data\\.dir of ${config.replace(/\./g, '\\.')}\\): the relay has not run with this configuration yet`), what);
    t.notOk(fs.existsSync(dataDir), `${what}: no database made`);
  }
  let r = await runZegel(['recipients', 'set', 'jan@example.nl', '--method', 'none', '--config', config], { cwd: dir });
  t.equal(r.code, 0, r.stderr);
  t.equal(r.stdout, 'set jan@example.nl: method=none\n');
  t.equal(r.stderr, `${dataDirLine}\n`, 'one line on stderr: the data directory');
  t.ok(fs.existsSync(path.join(dataDir, 'zegel.db')), 'recipients set made the database');
  r = await runZegel(['queue', 'list', '--json', '--config', config], { cwd: dir });
  t.equal(r.code, 0, r.stderr);
  t.same(JSON.parse(r.stdout), [], 'now there is a database to read');
});
