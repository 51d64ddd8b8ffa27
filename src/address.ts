import { domainToASCII } from 'node:url';
import { ZegelError } from './errors.js';

/**
 * The one normaliser of recipient addresses and phone numbers. The recipient
 * directory stores what these return, and the `[sms:…]` subject tag
 * (src/pipeline/secure-job.ts, readSubjectTags) goes through the same
 * `normalisePhone`, so a number the directory refuses is never texted because
 * a sender typed it in a subject. The error codes keep the names under which
 * the directory has always reported them.
 */

const DOMAIN = /^(?=.{1,253}$)(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+(?:[a-z]{2,63}|xn--[a-z0-9-]{1,59})$/;
// dot-atom local part (RFC 5322) plus UTF-8 (RFC 6531); quoted local parts are not accepted
const LOCAL = /^[^\s@<>()[\]\\,;:".]+(?:\.[^\s@<>()[\]\\,;:".]+)*$/u;

function asciiDomain(domain: string): string | undefined {
  const ascii = domainToASCII(domain.toLowerCase());
  return ascii && DOMAIN.test(ascii) ? ascii : undefined;
}

/**
 * A directory target in its stored form: a lower-case address, or `@domain`
 * (lower-case; internationalised domains in their xn-- form). Throws
 * ZEGEL_DIRECTORY_TARGET for anything else.
 */
export function normaliseTarget(input: string): string {
  const value = input.trim();
  const bad = (why: string) => new ZegelError('ZEGEL_DIRECTORY_TARGET', `target ${JSON.stringify(input)}: ${why}`);
  if (value.startsWith('@')) {
    const domain = asciiDomain(value.slice(1));
    if (!domain) throw bad('expected an address or @domain such as @example.nl');
    return `@${domain}`;
  }
  const at = value.lastIndexOf('@');
  if (at < 1) throw bad('expected an address such as jan@example.nl or a domain such as @example.nl');
  const local = value.slice(0, at).toLowerCase();
  const domain = asciiDomain(value.slice(at + 1));
  if (!LOCAL.test(local) || local.length > 64 || !domain) throw bad('not a valid e-mail address');
  const address = `${local}@${domain}`;
  if (address.length > 254) throw bad('address longer than 254 characters');
  return address;
}

/**
 * A phone number in E.164: `+`, then 8–15 digits (no leading 0). Spaces
 * (including no-break spaces) and dashes in the input are removed; anything
 * else is refused (ZEGEL_DIRECTORY_PHONE). Parentheses are refused on
 * purpose: `+31 (0)6 …` would otherwise become `+3106…`, a wrong number.
 */
export function normalisePhone(input: string): string {
  // spaces (also the no-break spaces of copied numbers) and dashes; tabs and line breaks are refused
  const compact = input.replace(/[ \u00a0\u202f-]+/g, '');
  if (!/^\+[1-9]\d{7,14}$/.test(compact)) {
    throw new ZegelError('ZEGEL_DIRECTORY_PHONE', `phone ${JSON.stringify(input)}: expected E.164, a + and 8 to 15 digits, such as +31612345678 (spaces and dashes are allowed)`);
  }
  return compact;
}

/** `normalisePhone`, or undefined for a number it refuses (for input where a bad number is ignored, not an error). */
export function phoneOrUndefined(input: string): string | undefined {
  try {
    return normalisePhone(input);
  } catch (err) {
    if (err instanceof ZegelError) return undefined;
    throw err;
  }
}
