/** The page's strings (templates/reader/*.json, bundled at build time). */
import type { Language } from '../src/reader/api.js';
import nl from '../templates/reader/nl.json';
import en from '../templates/reader/en.json';

export type MessageKey = keyof typeof nl;

const catalogues: Record<Language, Record<MessageKey, string>> = { nl, en };

let current: Language = 'nl';

export function language(): Language {
  return current;
}

export function setLanguage(lang: Language): void {
  current = lang;
  document.documentElement.lang = lang;
  document.title = t('title');
}

/** The browser's preference: its first of Dutch or English; English when it asks for neither. */
export function browserLanguage(): Language {
  const prefs = navigator.languages && navigator.languages.length > 0 ? navigator.languages : [navigator.language];
  for (const p of prefs) {
    const l = (p || '').toLowerCase();
    if (l.startsWith('nl')) return 'nl';
    if (l.startsWith('en')) return 'en';
  }
  return 'en';
}

/** The string for `key` in the current language, `{name}` placeholders filled in. */
export function t(key: MessageKey, vars: Record<string, string | number> = {}): string {
  const template = catalogues[current][key];
  return template.replace(/\{(\w+)\}/g, (whole, name: string) => (name in vars ? String(vars[name]) : whole));
}
