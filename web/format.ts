/** Dates and sizes per language. Pure (Intl only), so Node tests can import it. */
import type { Language } from '../src/reader/api.js';

export const TIME_ZONE = 'Europe/Amsterdam';

function locale(lang: Language): string {
  return lang === 'nl' ? 'nl-NL' : 'en-GB';
}

/** "12 maart 2025 om 14:05" / "12 March 2025 at 14:05", in Amsterdam time. */
export function formatDateTime(iso: string, lang: Language): string {
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return iso;
  return new Intl.DateTimeFormat(locale(lang), { dateStyle: 'long', timeStyle: 'short', timeZone: TIME_ZONE }).format(d);
}

/** Only the time when it is today in Amsterdam, else date and time. */
export function formatMoment(iso: string, lang: Language, now: Date = new Date()): string {
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return iso;
  const day = new Intl.DateTimeFormat('en-CA', { timeZone: TIME_ZONE, year: 'numeric', month: '2-digit', day: '2-digit' });
  if (day.format(d) === day.format(now)) {
    return new Intl.DateTimeFormat(locale(lang), { timeStyle: 'short', timeZone: TIME_ZONE }).format(d);
  }
  return formatDateTime(iso, lang);
}

/** "1,2 MB" / "1.2 MB" (decimal units, as phones show them). */
export function formatSize(bytes: number, lang: Language): string {
  const units = ['B', 'kB', 'MB', 'GB', 'TB'];
  let value = Math.max(0, bytes);
  let unit = 0;
  while (value >= 1000 && unit < units.length - 1) {
    value /= 1000;
    unit++;
  }
  const digits = unit === 0 || value >= 100 ? 0 : 1;
  const number = new Intl.NumberFormat(locale(lang), { maximumFractionDigits: digits, minimumFractionDigits: 0 }).format(value);
  return `${number} ${units[unit]}`;
}

/** "3 minuten" / "45 seconds": a wait time, rounded up to whole minutes from a minute on. */
export function formatWait(seconds: number, lang: Language): string {
  const s = Math.max(1, Math.ceil(seconds));
  const [value, unit] = s >= 60 ? [Math.ceil(s / 60), 'minute'] : [s, 'second'];
  return new Intl.NumberFormat(locale(lang), { style: 'unit', unit, unitDisplay: 'long' }).format(value);
}
