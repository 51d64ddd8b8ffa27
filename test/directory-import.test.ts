import t, { type Test } from 'tap';
import { ManualClock } from '../src/clock.js';
import { openDb } from '../src/store/db.js';
import { CsvSyntaxError, Directory, DirectoryImportError, parseCsv, verifyAccessCode } from '../src/store/directory.js';
import { GroupCommitter } from '../src/store/group-commit.js';
import { tempDir } from './helpers/relay.js';

/*
 * `zegel recipients import FILE.csv` underneath: header
 * target,method,phone,access_code,language; an empty cell leaves that field as
 * is; quotes, CRLF and a UTF-8 BOM as spreadsheets write them; one bad row
 * means nothing is imported and every bad row is named as FILE:LINE: problem.
 */

const defaults = { method: 'email-code', language: 'nl' } as const;

function open(t: Test): Directory {
  const db = openDb(tempDir(t, 'zegel-directory-import-'));
  const store = new GroupCommitter(db);
  t.teardown(async () => {
    await store.close();
    db.close();
  });
  return new Directory(db, store, new ManualClock());
}

async function importError(directory: Directory, text: string, source = 'partners.csv'): Promise<DirectoryImportError> {
  try {
    await directory.importCsv(text, source);
  } catch (err) {
    if (err instanceof DirectoryImportError) return err;
    throw err;
  }
  throw new Error('the import was accepted');
}

t.test('parseCsv: quotes, doubled quotes, separators and line breaks inside quotes, CRLF, BOM, line numbers', async (t) => {
  const text = '\uFEFFa,b,c\r\n"x, y","say ""hi""",plain\r\n"multi\r\nline",,"  kept  "\r\n  trimmed later ,  "after blanks"  ,z\r\n';
  const records = parseCsv(text);
  t.same(
    records.map((r) => [r.line, r.fields.map((f) => f.value)]),
    [
      [1, ['a', 'b', 'c']],
      [2, ['x, y', 'say "hi"', 'plain']],
      [3, ['multi\r\nline', '', '  kept  ']],
      [5, ['  trimmed later ', 'after blanks', 'z']],
    ],
    'the record after a two-line cell starts on line 5',
  );
  t.same(records[2]!.fields.map((f) => f.quoted), [true, false, true]);
  t.same(parseCsv('a\nb\rc\r\n').map((r) => [r.line, r.fields[0]!.value]), [[1, 'a'], [2, 'b'], [3, 'c']], 'LF, CR and CRLF all end a record');
  t.same(parseCsv('a,b'), [{ line: 1, fields: [{ value: 'a', quoted: false }, { value: 'b', quoted: false }] }], 'no final newline');
  t.same(parseCsv(''), []);
  t.same(parseCsv('a,\n'), [{ line: 1, fields: [{ value: 'a', quoted: false }, { value: '', quoted: false }] }], 'a trailing comma is an empty last cell');

  t.throws(() => parseCsv('a\n"open\nstill open'), new CsvSyntaxError(2, ''), 'unterminated quote: the line it opened on');
  t.throws(() => parseCsv('a\nb\n"x"y'), { line: 3, message: /after a closing quote/ });
  t.throws(() => parseCsv('a\nab"c'), { line: 2, message: /inside an unquoted cell/ });
});

t.test('import: quotes, BOM, CRLF; empty cells are not given; codes stored as argon2id', async (t) => {
  const directory = open(t);
  await directory.set('jan@example.nl', { method: 'email-code', language: 'en' });
  const csv = [
    '\uFEFFtarget,method,phone,access_code,language',
    'Jan@Example.nl,sms-code,"+31 6 1234 5678",,',
    '@partner.nl,access-code,,"gedeeld, met ""quotes""",en',
    '"piet@example.nl",none,,,nl',
    '',
  ].join('\r\n');
  const result = await directory.importCsv(csv, 'partners.csv');
  t.same(result, { rows: 3, created: 2, updated: 1 });

  t.same(
    (await directory.list()).map(({ updatedAt: _u, ...e }) => e),
    [
      { target: 'jan@example.nl', method: 'sms-code', phone: '+31612345678', language: 'en', hasAccessCode: false, warnings: [] },
      { target: 'piet@example.nl', method: 'none', language: 'nl', hasAccessCode: false, warnings: [] },
      { target: '@partner.nl', method: 'access-code', language: 'en', hasAccessCode: true, warnings: [] },
    ],
    'merged into the existing entry (its language kept), phone normalised, BOM not part of the first column',
  );
  const partner = await directory.resolve('someone@partner.nl', defaults);
  t.equal(partner.method, 'access-code');
  t.equal(await verifyAccessCode(partner.accessCodeHashes, 'gedeeld, met "quotes"'), true, 'the quoted code with a comma and quotes');
  t.match(partner.accessCodeHashes[0], /^\$argon2id\$/);
});

t.test('import: columns in any order, a subset allowed, target required', async (t) => {
  const directory = open(t);
  t.same(await directory.importCsv('language,target\nen,@example.nl\n'), { rows: 1, created: 1, updated: 0 });
  t.equal((await directory.get('@example.nl'))?.language, 'en');

  const noTarget = await importError(directory, 'method,phone\nnone,\n', 'x.csv');
  t.match(noTarget.message, /^x\.csv:1: no target column/);
  const unknown = await importError(directory, 'target,method,email\na@b.nl,none,\n', 'x.csv');
  t.match(unknown.message, /^x\.csv:1: unknown column "email"/);
  const twice = await importError(directory, 'target,method,Method\na@b.nl,none,none\n', 'x.csv');
  t.match(twice.message, /x\.csv:1: column method appears twice/);
  const empty = await importError(directory, '', 'x.csv');
  t.match(empty.message, /^x\.csv:1: empty file/);
});

t.test('import: any bad row names FILE:LINE for each problem and imports nothing', async (t) => {
  const directory = open(t);
  await directory.set('keep@example.nl', { method: 'none' });
  const csv = [
    'target,method,phone,access_code,language', // 1
    'ok@example.nl,sms-code,+31612345678,,', // 2
    'jan,none,,,', // 3 bad target
    '@example.nl,sms,,,', // 4 bad method
    '', // 5 blank: skipped
    '"line@example.nl",none,"06-', // 6 bad phone: a cell over two lines
    '12345678",,', // 7 (the record starts on line 6)
    'short@example.nl,access-code,,kort,', // 8 short code
    'taal@example.nl,,,,de', // 9 bad language
    'few@example.nl,none', // 10 too few cells
    'OK@example.nl,none,,,', // 11 duplicate of line 2
    'keep@example.nl,,,,', // 12 nothing to set
    '@partner.nl,access-code,,lang-genoeg-code,en', // 13 fine
  ].join('\n');
  const err = await importError(directory, csv, 'data/partners.csv');
  t.equal(err.code, 'ZEGEL_DIRECTORY_IMPORT');
  t.same(err.problems.map((p) => p.line), [3, 4, 6, 8, 9, 10, 11, 12]);
  const lines = err.message.split('\n');
  t.equal(lines.length, 8, 'one line per problem');
  for (const line of lines) t.match(line, /^data\/partners\.csv:\d+: \S/, 'FILE:LINE: problem');
  t.match(lines[0], /:3: target "jan"/);
  t.match(lines[1], /:4: method "sms"/);
  t.match(lines[2], /:6: phone "06-\\n12345678"/);
  t.match(lines[3], /:8: access code: must be at least 8 characters/);
  t.notOk(err.message.includes('kort'), 'the code itself is not repeated');
  t.match(lines[4], /:9: language "de"/);
  t.match(lines[5], /:10: 2 cells, expected 5/);
  t.match(lines[6], /:11: ok@example\.nl already appears on line 2/);
  t.match(lines[7], /:12: keep@example\.nl: nothing to set/);

  t.same((await directory.list()).map((e) => e.target), ['keep@example.nl'], 'nothing imported: only the entry from before');
  t.equal((await directory.get('keep@example.nl'))?.method, 'none');
  t.equal(await directory.get('@partner.nl'), undefined, 'the good rows were not applied either');

  const syntax = await importError(directory, 'target,method\nok@example.nl,none\n"broken,none\n', 'p.csv');
  t.equal(syntax.message, 'p.csv:3: unterminated quoted cell (a " opened here is never closed)');
  t.equal(await directory.get('ok@example.nl'), undefined);
});

t.test('import: a failure while writing rolls the whole file back', async (t) => {
  const db = openDb(tempDir(t, 'zegel-directory-import-'));
  const store = new GroupCommitter(db);
  t.teardown(async () => {
    await store.close();
    db.close();
  });
  let calls = 0;
  const clock = {
    now: () => {
      if (++calls === 2) throw new Error('disk gone');
      return 1;
    },
  };
  const directory = new Directory(db, store, clock);
  await t.rejects(directory.importCsv('target,method\na@example.nl,none\nb@example.nl,none\n'), { message: 'disk gone' });
  t.same(db.prepare('SELECT COUNT(*) AS n FROM directory').get(), { n: 0 }, 'the first row is rolled back with the second');
});
