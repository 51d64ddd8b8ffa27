import t from 'tap';
import { MAX_FILE_NAME, safeFileName } from '../web/filename.js';
import { formatSize } from '../web/format.js';

t.test('ordinary names stay as they are', async (t) => {
  t.equal(safeFileName('verslag 2025.pdf'), 'verslag 2025.pdf');
  t.equal(safeFileName('Overdracht – cliënt.docx'), 'Overdracht – cliënt.docx');
  t.equal(safeFileName('archief.tar.gz'), 'archief.tar.gz');
});

t.test('path separators: only the last segment is kept', async (t) => {
  t.equal(safeFileName('../../etc/passwd'), 'passwd');
  t.equal(safeFileName('..\\..\\Windows\\system32\\evil.dll'), 'evil.dll');
  t.equal(safeFileName('map/sub/'), 'sub');
  t.equal(safeFileName('/'), 'bijlage');
});

t.test('control characters and bidi overrides are removed', async (t) => {
  t.equal(safeFileName('a\u0000b\u001fc\u007f.txt'), 'abc.txt');
  t.equal(safeFileName('factuur\u202Efdp.exe'), 'factuurfdp.exe');
  t.equal(safeFileName('x\u200b\u2066y.pdf'), 'xy.pdf');
  t.equal(safeFileName('line\r\nbreak.txt'), 'linebreak.txt');
});

t.test('characters Windows forbids become underscores', async (t) => {
  t.equal(safeFileName('a<b>c:d"e|f?g*h.txt'), 'a_b_c_d_e_f_g_h.txt');
});

t.test('leading dots and trailing dots or spaces are dropped', async (t) => {
  t.equal(safeFileName('.bashrc'), 'bashrc');
  t.equal(safeFileName('...hidden.txt'), 'hidden.txt');
  t.equal(safeFileName('..'), 'bijlage');
  t.equal(safeFileName('name.pdf. . '), 'name.pdf');
  t.equal(safeFileName('   '), 'bijlage');
  t.equal(safeFileName('', 'attachment'), 'attachment', 'the fallback is the caller’s');
});

t.test('reserved Windows device names are prefixed', async (t) => {
  t.equal(safeFileName('CON'), '_CON');
  t.equal(safeFileName('con.txt'), '_con.txt');
  t.equal(safeFileName('nul.tar.gz'), '_nul.tar.gz');
  t.equal(safeFileName('LPT1.doc'), '_LPT1.doc');
  t.equal(safeFileName('com9'), '_com9');
  t.equal(safeFileName('console.txt'), 'console.txt', 'only the exact names');
});

t.test('long names are cut to 150 characters, keeping the extension', async (t) => {
  const long = `${'a'.repeat(300)}.pdf`;
  const safe = safeFileName(long);
  t.equal(safe.length, MAX_FILE_NAME);
  t.ok(safe.endsWith('.pdf'));
  const emoji = `${'😀'.repeat(200)}.txt`;
  const cut = safeFileName(emoji);
  t.equal(Array.from(cut).length, MAX_FILE_NAME, 'counted in characters, surrogate pairs kept whole');
  t.ok(cut.endsWith('😀.txt'));
  const noExt = 'b'.repeat(400);
  t.equal(safeFileName(noExt).length, MAX_FILE_NAME);
  const longTail = `report.${'x'.repeat(200)}`;
  t.equal(safeFileName(longTail).length, MAX_FILE_NAME, 'a very long "extension" is not kept whole');
});

t.test('human sizes per language', async (t) => {
  t.equal(formatSize(1_234_567, 'nl'), '1,2 MB');
  t.equal(formatSize(1_234_567, 'en'), '1.2 MB');
  t.equal(formatSize(999, 'nl'), '999 B');
  t.equal(formatSize(15_300, 'nl'), '15,3 kB');
  t.equal(formatSize(250_000_000, 'en'), '250 MB');
});
