import fs from 'node:fs';
import path from 'node:path';
import t, { type Test } from 'tap';
import { ManualClock } from '../src/clock.js';
import { ZegelError } from '../src/errors.js';
import { openDb, type Db } from '../src/store/db.js';
import { Directory, normalisePhone, normaliseTarget, verifyAccessCode } from '../src/store/directory.js';
import { GroupCommitter } from '../src/store/group-commit.js';
import { tempDir } from './helpers/relay.js';

/*
 * The recipient directory (DESIGN.md, "Contracts → Recipient directory"):
 * each field comes from the address entry, else the exact @domain entry, else
 * the defaults; `set` merges; addresses are case-insensitive; access codes are
 * stored only as argon2id.
 */

const defaults = { method: 'email-code', language: 'nl' } as const;

function open(t: Test): { directory: Directory; db: Db; dir: string; clock: ManualClock } {
  const dir = tempDir(t, 'zegel-directory-');
  const db = openDb(dir);
  const store = new GroupCommitter(db);
  t.teardown(async () => {
    await store.close();
    db.close();
  });
  const clock = new ManualClock();
  return { directory: new Directory(db, store, clock), db, dir, clock };
}

t.test('no entries: everything from the defaults', async (t) => {
  const { directory } = open(t);
  t.same(await directory.resolve('jan@example.nl', defaults), { method: 'email-code', language: 'nl', accessCodeHashes: [], source: 'default' });
  t.same(await directory.resolve('jan@example.nl', { method: 'sms-code', language: 'en' }), { method: 'sms-code', language: 'en', accessCodeHashes: [], source: 'default' });
});

t.test('precedence per field: address, then @domain, then defaults', async (t) => {
  const { directory } = open(t);
  await directory.set('@example.nl', { method: 'sms-code', phone: '+31201234567', language: 'en' });
  await directory.set('jan@example.nl', { phone: '+31612345678' });
  await directory.set('piet@example.nl', { method: 'none' });

  t.same(await directory.resolve('jan@example.nl', defaults), { method: 'sms-code', phone: '+31612345678', language: 'en', accessCodeHashes: [], source: 'domain' }, 'phone from the address, method and language from the domain');
  t.same(await directory.resolve('piet@example.nl', defaults), { method: 'none', phone: '+31201234567', language: 'en', accessCodeHashes: [], source: 'address' }, 'method from the address, the rest from the domain');
  t.same(await directory.resolve('klaas@example.nl', defaults), { method: 'sms-code', phone: '+31201234567', language: 'en', accessCodeHashes: [], source: 'domain' }, 'an address without an entry gets its domain');

  await directory.set('@other.nl', { language: 'en' });
  t.same(await directory.resolve('x@other.nl', defaults), { method: 'email-code', language: 'en', accessCodeHashes: [], source: 'default' }, 'method from verification.default when no level sets it');
  await directory.set('y@other.nl', { method: 'access-code' });
  t.same(await directory.resolve('y@other.nl', { method: 'email-code', language: 'nl' }), { method: 'access-code', language: 'en', accessCodeHashes: [], source: 'address' });
});

t.test('@domain matches only that exact domain, not subdomains or parents', async (t) => {
  const { directory } = open(t);
  await directory.set('@example.nl', { method: 'none' });
  t.equal((await directory.resolve('a@example.nl', defaults)).method, 'none');
  t.equal((await directory.resolve('a@mail.example.nl', defaults)).method, 'email-code', 'a subdomain is not the domain');
  t.equal((await directory.resolve('a@notexample.nl', defaults)).method, 'email-code', 'a suffix is not the domain');
  await directory.set('@zorg.example.nl', { method: 'sms-code' });
  t.equal((await directory.resolve('a@zorg.example.nl', defaults)).method, 'sms-code');
  t.equal((await directory.resolve('a@example.nl', defaults)).method, 'none', 'a subdomain entry does not reach the parent');
});

t.test('addresses are case-insensitive and stored lower-case', async (t) => {
  const { directory, db } = open(t);
  await directory.set('Jan.Jansen@Example.NL', { method: 'none' });
  t.same(
    db.prepare('SELECT target FROM directory').all(),
    [{ target: 'jan.jansen@example.nl' }],
  );
  t.equal((await directory.resolve('JAN.JANSEN@EXAMPLE.nl', defaults)).method, 'none');
  t.equal((await directory.get('jan.jansen@EXAMPLE.NL'))?.method, 'none');
  await directory.set('@EXAMPLE.nl', { language: 'en' });
  t.equal((await directory.get('@example.nl'))?.language, 'en');
  t.equal((await directory.resolve('Other@Example.Nl', defaults)).language, 'en');
  t.equal(await directory.remove('JAN.JANSEN@example.nl'), true);
  t.equal(await directory.remove('jan.jansen@example.nl'), false, 'gone');
});

t.test('set merges: only the fields given change; null clears a field at that level', async (t) => {
  const { directory, clock } = open(t);
  const first = await directory.set('jan@example.nl', { method: 'sms-code', phone: '+31612345678' });
  t.same(first, { target: 'jan@example.nl', method: 'sms-code', phone: '+31612345678', hasAccessCode: false, updatedAt: clock.now() });
  clock.advance(60_000);
  const second = await directory.set('jan@example.nl', { language: 'en' });
  t.same(second, { target: 'jan@example.nl', method: 'sms-code', phone: '+31612345678', language: 'en', hasAccessCode: false, updatedAt: clock.now() }, 'method and phone kept');
  await directory.set('jan@example.nl', { accessCode: 'correct horse battery' });
  await directory.set('jan@example.nl', { method: 'access-code' });
  const third = await directory.get('jan@example.nl');
  t.same(third, { target: 'jan@example.nl', method: 'access-code', phone: '+31612345678', language: 'en', hasAccessCode: true, updatedAt: clock.now() }, 'access code kept when another field changes');
  await directory.set('jan@example.nl', { phone: null });
  t.equal((await directory.get('jan@example.nl'))?.phone, undefined, 'null clears');
  t.equal(await directory.get('nobody@example.nl'), undefined);
});

t.test('access codes: stored as argon2id only; verify true and false; domain code shared by every address', async (t) => {
  const { directory, db, dir } = open(t);
  const own = 'Eigen-code-9731';
  const shared = 'Partner-gedeeld-4410';
  await directory.set('jan@example.nl', { method: 'access-code', accessCode: own });
  await directory.set('@example.nl', { accessCode: shared });

  const rows = db.prepare('SELECT target, access_code FROM directory ORDER BY target').all() as Array<{ target: string; access_code: string }>;
  for (const row of rows) t.match(row.access_code, /^\$argon2id\$v=19\$/, `${row.target}: argon2id`);
  const bytes = Buffer.concat(fs.readdirSync(dir).filter((f) => f.startsWith('zegel.db')).map((f) => fs.readFileSync(path.join(dir, f))));
  t.ok(bytes.length > 0);
  for (const code of [own, shared]) {
    t.equal(bytes.indexOf(Buffer.from(code, 'utf8')), -1, `no plaintext ${code} in zegel.db / -wal / -shm`);
    t.equal(bytes.indexOf(Buffer.from(code, 'utf16le')), -1, 'nor as UTF-16');
  }

  const jan = await directory.resolve('jan@example.nl', defaults);
  t.equal(jan.accessCodeHashes.length, 2, 'own hash, then the domain hash');
  t.equal(jan.accessCodeHashes[0], rows.find((r) => r.target === 'jan@example.nl')!.access_code, 'own first');
  t.equal(jan.accessCodeHashes[1], rows.find((r) => r.target === '@example.nl')!.access_code, 'domain second');
  t.equal(await verifyAccessCode(jan.accessCodeHashes, own), true, 'own code');
  t.equal(await verifyAccessCode(jan.accessCodeHashes, shared), true, 'shared domain code also opens');
  t.equal(await verifyAccessCode(jan.accessCodeHashes, 'Eigen-code-9732'), false, 'wrong code');
  t.equal(await verifyAccessCode(jan.accessCodeHashes, ''), false, 'empty code');

  for (const address of ['piet@example.nl', 'KLAAS@EXAMPLE.NL']) {
    const r = await directory.resolve(address, defaults);
    t.equal(r.accessCodeHashes.length, 1, `${address}: only the domain's code`);
    t.equal(await verifyAccessCode(r.accessCodeHashes, shared), true, `${address}: shared code works`);
    t.equal(await verifyAccessCode(r.accessCodeHashes, own), false, `${address}: jan's own code does not`);
  }
  t.same((await directory.resolve('jan@mail.example.nl', defaults)).accessCodeHashes, [], 'not for a subdomain');

  t.equal(await verifyAccessCode([], own), false, 'no hashes');
  t.equal(await verifyAccessCode(['not-a-hash', '$argon2id$v=19$garbage'], own), false, 'malformed hashes: false, no throw');
  t.equal(await verifyAccessCode(['not-a-hash', jan.accessCodeHashes[0]!], own), true, 'a malformed hash does not stop the others');

  t.same(Object.keys((await directory.get('jan@example.nl'))!).sort(), ['hasAccessCode', 'method', 'target', 'updatedAt'], 'get never returns the hash');
  for (const entry of await directory.list()) t.notOk(JSON.stringify(entry).includes('$argon2'), `list ${entry.target}: no hash`);
});

t.test('access code rules', async (t) => {
  const { directory } = open(t);
  for (const [code, why] of [
    ['1234567', /at least 8 characters/],
    ['abc\ndefghij', /control characters/],
    [' padded-code ', /whitespace/],
  ] as const) {
    await t.rejects(directory.set('jan@example.nl', { accessCode: code }), { code: 'ZEGEL_DIRECTORY_ACCESS_CODE', message: why });
  }
  t.equal(await directory.get('jan@example.nl'), undefined, 'nothing stored');
  await directory.set('jan@example.nl', { accessCode: '12345678' });
  t.equal((await directory.get('jan@example.nl'))?.hasAccessCode, true, '8 characters is enough');
  const err = await directory.set('jan@example.nl', { accessCode: 'kort' }).then(
    () => undefined,
    (e: unknown) => e,
  );
  t.ok(err instanceof ZegelError, 'a ZegelError');
  t.notOk((err as Error).message.includes('kort'), 'the code is not echoed in the error');
});

t.test('phones: spaces and dashes normalised away, anything else refused', async (t) => {
  const { directory } = open(t);
  t.equal(normalisePhone('+31612345678'), '+31612345678');
  t.equal(normalisePhone(' +31 6 1234 5678 '), '+31612345678');
  t.equal(normalisePhone('+31-6-12-34-56-78'), '+31612345678');
  t.equal(normalisePhone('+1 415 555 2671'), '+14155552671');
  t.equal(normalisePhone('+31\u00a06\u00a012345678'), '+31612345678', 'no-break spaces from copied numbers');
  for (const bad of ['0612345678', '0031612345678', '+31 (6) 12345678', '+31.6.12345678', '+316123456a8', '+0612345678', '+1234567', '+1234567890123456', '31612345678', '+', '', 'tel:+31612345678', '+31\t612345678', '+31\n612345678']) {
    t.throws(() => normalisePhone(bad), { code: 'ZEGEL_DIRECTORY_PHONE' }, JSON.stringify(bad));
  }
  t.equal(normalisePhone('+12345678'), '+12345678', '8 digits');
  t.equal(normalisePhone('+123456789012345'), '+123456789012345', '15 digits');
  const entry = await directory.set('jan@example.nl', { method: 'sms-code', phone: '+31 6-1234 5678' });
  t.equal(entry.phone, '+31612345678', 'stored normalised');
  await t.rejects(directory.set('jan@example.nl', { phone: '06-12345678' }), { code: 'ZEGEL_DIRECTORY_PHONE' });
  t.equal((await directory.get('jan@example.nl'))?.phone, '+31612345678', 'a refused phone changes nothing');
});

t.test('targets and values are validated', async (t) => {
  const { directory } = open(t);
  t.equal(normaliseTarget(' Jan@Example.NL '), 'jan@example.nl');
  t.equal(normaliseTarget('@Example.NL'), '@example.nl');
  t.equal(normaliseTarget('@bücher.de'), '@xn--bcher-kva.de', 'internationalised domains in xn-- form');
  for (const bad of ['jan', 'jan@', '@', '@nodot', 'jan@@example.nl', 'j an@example.nl', '<jan@example.nl>', 'jan@-example.nl', '@example.nl.', 'jan..x@example.nl', '*@example.nl,x']) {
    t.throws(() => normaliseTarget(bad), { code: 'ZEGEL_DIRECTORY_TARGET' }, JSON.stringify(bad));
  }
  await t.rejects(directory.set('jan@example.nl', { method: 'sms' }), { code: 'ZEGEL_DIRECTORY_VALUE' });
  await t.rejects(directory.set('jan@example.nl', { language: 'de' }), { code: 'ZEGEL_DIRECTORY_VALUE' });
  t.same(await directory.list(), []);
});

t.test('list: every entry, domain first, no codes; warns about sms-code without a phone and access-code without a code', async (t) => {
  const { directory } = open(t);
  await directory.set('zoe@example.nl', { method: 'sms-code' });
  await directory.set('@example.nl', { language: 'en' });
  await directory.set('anne@example.nl', { method: 'sms-code', phone: '+31612345678' });
  await directory.set('@partner.nl', { method: 'sms-code', phone: '+31201234567' });
  await directory.set('bob@partner.nl', { method: 'sms-code' });
  await directory.set('@codes.nl', { method: 'access-code' });
  await directory.set('kim@codes.nl', { accessCode: 'kims-eigen-code' });
  const list = await directory.list();
  t.same(
    list.map((e) => e.target),
    ['@codes.nl', 'kim@codes.nl', '@example.nl', 'anne@example.nl', 'zoe@example.nl', '@partner.nl', 'bob@partner.nl'],
  );
  const warnings = Object.fromEntries(list.map((e) => [e.target, e.warnings.length]));
  t.same(warnings, { '@codes.nl': 1, 'kim@codes.nl': 0, '@example.nl': 0, 'anne@example.nl': 0, 'zoe@example.nl': 1, '@partner.nl': 0, 'bob@partner.nl': 0 }, 'a phone at the domain counts; kim has a code of their own; @codes.nl has none');
  t.match(list.find((e) => e.target === 'zoe@example.nl')!.warnings[0], /sms-code without a phone/);
});
