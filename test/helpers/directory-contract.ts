import type { Test } from 'tap';
import { verifyAccessCode } from '../../src/store/directory.js';
import { rejection } from './rejection.js';
import type { Driver } from './store-drivers.js';

/**
 * The recipient directory's contract (src/store/directory.ts), written once
 * and run against every driver: precedence per field, merge writes, codes
 * stored only as argon2id, the list's order and warnings, an import that
 * applies all or nothing.
 */

const defaults = { method: 'email-code', language: 'nl' } as const;

export function directoryContract(t: Test, driver: Driver): void {
  t.test(`${driver.name}: each field from the address, else its exact @domain, else the defaults`, async (t) => {
    const s = await driver.make(t);
    const d = s.directory;
    t.same(await d.resolve('jan@example.nl', defaults), { method: 'email-code', language: 'nl', accessCodeHashes: [], source: 'default' });
    await d.set('@Example.NL', { method: 'sms-code', phone: '+31 20 123 4567', language: 'en' });
    await d.set('Jan@Example.nl', { phone: '+31612345678' });
    await d.set('piet@example.nl', { method: 'none' });
    t.same(await d.resolve('JAN@example.nl', defaults), { method: 'sms-code', phone: '+31612345678', language: 'en', accessCodeHashes: [], source: 'domain' });
    t.same(await d.resolve('piet@example.nl', defaults), { method: 'none', phone: '+31201234567', language: 'en', accessCodeHashes: [], source: 'address' });
    t.same(await d.resolve('klaas@example.nl', defaults), { method: 'sms-code', phone: '+31201234567', language: 'en', accessCodeHashes: [], source: 'domain' });
    t.equal((await d.resolve('a@mail.example.nl', defaults)).source, 'default', 'a subdomain is not the domain');
    t.equal((await d.resolve('not an address', defaults)).source, 'default', 'an odd address: the defaults, no throw');
    t.same(await d.resolve('@example.nl', defaults), { method: 'sms-code', phone: '+31201234567', language: 'en', accessCodeHashes: [], source: 'domain' }, 'a domain target resolves to its own entry');
    t.same(await d.get('JAN@EXAMPLE.NL'), { target: 'jan@example.nl', phone: '+31612345678', hasAccessCode: false, updatedAt: s.clock.now() }, 'stored lower-case');
  });

  t.test(`${driver.name}: set merges the fields given; null clears one; remove`, async (t) => {
    const s = await driver.make(t);
    const d = s.directory;
    const first = await d.set('jan@example.nl', { method: 'sms-code', phone: '+31612345678', language: 'en' });
    t.same(first, { target: 'jan@example.nl', method: 'sms-code', phone: '+31612345678', language: 'en', hasAccessCode: false, updatedAt: s.clock.now() });
    s.clock.advance(1000);
    const second = await d.set('jan@example.nl', { method: 'email-code', phone: null });
    t.same(second, { target: 'jan@example.nl', method: 'email-code', language: 'en', hasAccessCode: false, updatedAt: s.clock.now() }, 'language kept, phone cleared');
    t.same(await d.get('jan@example.nl'), second, 'get returns what set returned');
    await t.rejects(d.set('jan@example.nl', { phone: '06-12345678' }), { code: 'ZEGEL_DIRECTORY_PHONE' });
    await t.rejects(d.set('jan@example.nl', { language: 'de' }), { code: 'ZEGEL_DIRECTORY_VALUE' });
    t.same(await d.get('jan@example.nl'), second, 'a refused write changes nothing');
    t.equal(await d.remove('Jan@Example.nl'), true);
    t.equal(await d.remove('jan@example.nl'), false, 'nothing left to remove');
    t.equal(await d.get('jan@example.nl'), undefined);
  });

  t.test(`${driver.name}: put and delete in the caller's transaction, created or updated, rolled back together`, async (t) => {
    const s = await driver.make(t);
    const d = s.directory;
    const a = await d.prepare('a@example.nl', { method: 'none' });
    const b = await d.prepare('@example.nl', { language: 'en' });
    const results = await s.transaction(async (tx) => {
      const first = await d.put(tx, a);
      const again = await d.put(tx, a);
      const other = await d.put(tx, b);
      t.equal((await d.get('a@example.nl', tx))?.method, 'none', 'the transaction reads its own write');
      t.equal((await d.resolve('a@example.nl', defaults, tx)).language, 'en');
      t.equal((await d.list(tx)).length, 2);
      return [first.created, again.created, other.created];
    });
    t.same(results, [true, false, true]);
    const err = await rejection(
      s.transaction(async (tx) => {
        await d.delete(tx, 'a@example.nl');
        await d.put(tx, await d.prepare('c@example.nl', { method: 'none' }));
        throw new Error('undo');
      }),
    );
    t.equal(err.message, 'undo');
    t.same((await d.list()).map((e) => e.target), ['@example.nl', 'a@example.nl'], 'the delete and the put rolled back');
    t.equal(await s.transaction((tx) => d.delete(tx, 'A@example.nl')), true);
    t.equal(await s.transaction((tx) => d.delete(tx, 'a@example.nl')), false);
  });

  t.test(`${driver.name}: access codes are stored as argon2id only, own first, then the domain's`, async (t) => {
    const s = await driver.make(t);
    const d = s.directory;
    await d.set('jan@example.nl', { method: 'access-code', accessCode: 'Eigen-code-9731' });
    await d.set('@example.nl', { accessCode: 'Partner-gedeeld-4410' });
    const rows = await s.rows<{ target: string; access_code: string }>('SELECT target, access_code FROM directory ORDER BY target');
    t.equal(rows.length, 2);
    for (const row of rows) t.match(row.access_code, /^\$argon2id\$v=19\$/, `${row.target}: argon2id`);
    t.notOk(JSON.stringify(rows).includes('Eigen-code-9731'), 'no plaintext code in a row');
    const jan = await d.resolve('jan@example.nl', defaults);
    t.same(jan.accessCodeHashes, [rows.find((r) => r.target === 'jan@example.nl')!.access_code, rows.find((r) => r.target === '@example.nl')!.access_code]);
    t.equal(await verifyAccessCode(jan.accessCodeHashes, 'Partner-gedeeld-4410'), true);
    t.equal(await verifyAccessCode((await d.resolve('piet@example.nl', defaults)).accessCodeHashes, 'Eigen-code-9731'), false, "jan's code is not piet's");
    t.same(Object.keys((await d.get('jan@example.nl'))!).sort(), ['hasAccessCode', 'method', 'target', 'updatedAt'], 'get never returns the hash');
    await d.set('jan@example.nl', { accessCode: null });
    t.equal((await d.get('jan@example.nl'))?.hasAccessCode, false, 'null clears the code');
    await t.rejects(d.set('jan@example.nl', { accessCode: 'kort' }), { code: 'ZEGEL_DIRECTORY_ACCESS_CODE' });
  });

  t.test(`${driver.name}: list puts each domain first, shows no codes, and warns`, async (t) => {
    const s = await driver.make(t);
    const d = s.directory;
    await d.set('zoe@example.nl', { method: 'sms-code' });
    await d.set('@example.nl', { language: 'en' });
    await d.set('anne@example.nl', { method: 'sms-code', phone: '+31612345678' });
    await d.set('@partner.nl', { method: 'sms-code', phone: '+31201234567' });
    await d.set('bob@partner.nl', { method: 'sms-code' });
    await d.set('@codes.nl', { method: 'access-code' });
    await d.set('kim@codes.nl', { accessCode: 'kims-eigen-code' });
    await d.set('Ab@example.nl', { method: 'none' });
    const list = await d.list();
    t.same(list.map((e) => e.target), ['@codes.nl', 'kim@codes.nl', '@example.nl', 'ab@example.nl', 'anne@example.nl', 'zoe@example.nl', '@partner.nl', 'bob@partner.nl']);
    t.same(Object.fromEntries(list.map((e) => [e.target, e.warnings])), {
      '@codes.nl': ['access-code without an access code: the recipient cannot open messages'],
      'kim@codes.nl': [],
      '@example.nl': [],
      'ab@example.nl': [],
      'anne@example.nl': [],
      'zoe@example.nl': ['sms-code without a phone: each message needs an [sms:+…] subject tag'],
      '@partner.nl': [],
      'bob@partner.nl': [],
    });
    t.notOk(JSON.stringify(list).includes('$argon2'), 'no hash in the list');
  });

  t.test(`${driver.name}: an import applies every row or, with one bad row, none`, async (t) => {
    const s = await driver.make(t);
    const d = s.directory;
    await d.set('jan@example.nl', { method: 'email-code', language: 'en' });
    const csv = ['\uFEFFtarget,method,phone,access_code,language', 'Jan@Example.nl,sms-code,"+31 6 1234 5678",,', '@partner.nl,access-code,,"gedeeld, met ""quotes""",en', '"piet@example.nl",none,,,nl', ''].join('\r\n');
    t.same(await d.importCsv(csv, 'partners.csv'), { rows: 3, created: 2, updated: 1 });
    t.same(
      (await d.list()).map(({ updatedAt: _u, ...e }) => e),
      [
        { target: 'jan@example.nl', method: 'sms-code', phone: '+31612345678', language: 'en', hasAccessCode: false, warnings: [] },
        { target: 'piet@example.nl', method: 'none', language: 'nl', hasAccessCode: false, warnings: [] },
        { target: '@partner.nl', method: 'access-code', language: 'en', hasAccessCode: true, warnings: [] },
      ],
    );
    t.equal(await verifyAccessCode((await d.resolve('x@partner.nl', defaults)).accessCodeHashes, 'gedeeld, met "quotes"'), true);
    const bad = ['target,method', 'new@example.nl,none', 'jan,none', 'piet@example.nl,sms'].join('\n');
    const err = await rejection(d.importCsv(bad, 'bad.csv'));
    t.match(err, { code: 'ZEGEL_DIRECTORY_IMPORT' });
    t.match(err.message, /^bad\.csv:3: .*\nbad\.csv:4: /);
    t.equal(await d.get('new@example.nl'), undefined, 'the good row was not applied either');
    t.equal((await d.get('piet@example.nl'))?.method, 'none');
  });

  t.test(`${driver.name}: two nodes setting different fields of one entry at once keep both`, async (t) => {
    const s = await driver.make(t);
    const other = await s.node();
    for (let round = 0; round < 10; round++) {
      const target = `r${round}@example.nl`;
      await Promise.all([s.directory.set(target, { method: 'sms-code' }), other.directory.set(target, { phone: '+31612345678' }), s.directory.set(target, { language: 'en' })]);
      const entry = await s.directory.get(target);
      if (entry?.method !== 'sms-code' || entry.phone !== '+31612345678' || entry.language !== 'en') {
        t.fail(`round ${round}: a field was lost: ${JSON.stringify(entry)}`);
        return;
      }
    }
    t.pass('10 rounds of three writers: every field kept');
  });
}
