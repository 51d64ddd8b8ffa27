import bytes from 'bytes';
import ms from 'ms';

/**
 * Parses a size such as `50MB`, `512kb` or a plain number of bytes.
 * Units are binary (1 MB = 1024 * 1024 bytes), as in the `bytes` package.
 */
export function parseSize(value: string | number): number | undefined {
  if (typeof value === 'number') return Number.isSafeInteger(value) && value > 0 ? value : undefined;
  const parsed = bytes.parse(value.trim());
  return parsed !== null && Number.isFinite(parsed) && parsed > 0 ? Math.floor(parsed) : undefined;
}

/** Parses a duration such as `5m`, `48h`, `90d` or `6y` into milliseconds. */
export function parseDuration(value: string | number): number | undefined {
  if (typeof value === 'number') return Number.isFinite(value) && value >= 0 ? value : undefined;
  if (!/^\s*\d+(\.\d+)?\s*[a-z]*\s*$/i.test(value)) return undefined;
  const parsed = ms(value.trim() as ms.StringValue);
  return typeof parsed === 'number' && Number.isFinite(parsed) && parsed >= 0 ? parsed : undefined;
}
