import type { Language } from './templates.js';

/** Dates in mails are shown as the recipient's clock in the Netherlands reads them. */
export const TIME_ZONE = 'Europe/Amsterdam';

const LOCALE: Record<Language, string> = { nl: 'nl-NL', en: 'en-GB' };

/*
 * The formatters are made once per language and kept: constructing an
 * Intl.DateTimeFormat (locale data, time zone) cost about 30 µs, more than
 * formatting with it, and every notification and receipt formats a date
 * (issue 15). A formatter holds no state between calls.
 */
const formatters = <T>(make: (lang: Language) => T): ((lang: Language) => T) => {
  const made = new Map<Language, T>();
  return (lang) => {
    let formatter = made.get(lang);
    if (!formatter) {
      formatter = make(lang);
      made.set(lang, formatter);
    }
    return formatter;
  };
};

const dateTime = formatters(
  (lang) =>
    new Intl.DateTimeFormat(LOCALE[lang], {
      timeZone: TIME_ZONE,
      weekday: 'long',
      day: 'numeric',
      month: 'long',
      year: 'numeric',
      hour: '2-digit',
      minute: '2-digit',
    }),
);

const timeOnly = formatters((lang) => new Intl.DateTimeFormat(LOCALE[lang], { timeZone: TIME_ZONE, hour: '2-digit', minute: '2-digit' }));

const dayFormat = new Intl.DateTimeFormat('en-CA', { timeZone: TIME_ZONE, year: 'numeric', month: '2-digit', day: '2-digit' });
const dayKey = (ms: number) => dayFormat.format(ms);

/** `donderdag 14 mei 2026 om 14:05` / `Thursday, 14 May 2026 at 14:05` (Amsterdam time). */
export function formatDateTime(ms: number, lang: Language): string {
  return dateTime(lang).format(ms);
}

/** `14:05` when `ms` falls on the same Amsterdam day as `now`, else the full date and time. */
export function formatTimeSoon(ms: number, now: number, lang: Language): string {
  return dayKey(ms) === dayKey(now) ? timeOnly(lang).format(ms) : formatDateTime(ms, lang);
}

/** One line, no control characters: for display names and subjects that go into headers. */
export function oneLine(value: string): string {
  return value
    .replace(/[\u0000-\u001f\u007f\u2028\u2029]+/g, ' ')
    .replace(/\s+/g, ' ')
    .trim();
}
