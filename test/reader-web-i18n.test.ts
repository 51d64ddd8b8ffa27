import t from 'tap';
import { readFileSync } from 'node:fs';
import { repoPath } from './helpers/repo-root.js';

const load = (lang: string): Record<string, unknown> =>
  JSON.parse(readFileSync(repoPath('templates', 'reader', `${lang}.json`), 'utf8')) as Record<string, unknown>;

const nl = load('nl');
const en = load('en');

t.test('nl and en have the same keys', async (t) => {
  t.same(Object.keys(en).sort(), Object.keys(nl).sort());
});

t.test('every string is a non-empty string', async (t) => {
  for (const [lang, cat] of Object.entries({ nl, en })) {
    for (const [key, value] of Object.entries(cat)) {
      t.ok(typeof value === 'string' && value.trim().length > 0, `${lang}.${key} is a non-empty string`);
    }
  }
});

t.test('both languages use the same placeholders per key', async (t) => {
  const placeholders = (s: unknown): string[] => [...String(s).matchAll(/\{(\w+)\}/g)].map((m) => m[1] as string).sort();
  for (const key of Object.keys(nl)) t.same(placeholders(en[key]), placeholders(nl[key]), `placeholders of ${key}`);
});

t.test('the required wording is there', async (t) => {
  t.equal(nl.revokedTitle, 'Dit bericht is ingetrokken door de afzender');
  t.equal(en.revokedTitle, 'This message was revoked by the sender');
  t.equal(nl.expiredTitle, 'Dit bericht is verlopen');
  t.equal(en.expiredTitle, 'This message has expired');
  t.equal(nl.accessCodeLabel, 'Toegangscode');
  t.equal(nl.forgotCode, 'Code vergeten?');
  t.equal(nl.sendCode, 'Stuur mij een code');
  t.match(String(nl.forgotSent), /^De afzender is op de hoogte gebracht/);
  t.equal(nl.codeWrongMany, 'Onjuiste code, nog {n} pogingen.');
  t.equal(nl.switchLanguage, 'English');
  t.equal(en.switchLanguage, 'Nederlands');
});
