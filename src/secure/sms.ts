import fs from 'node:fs';
import type { Config } from '../config/schema.js';
import { ZegelError } from '../errors.js';
import type { Logger } from '../log.js';
import type { Language } from '../reader/api.js';

/**
 * Text messages for `sms-code` checks. Two drivers (config `verification.sms.driver`):
 *
 * - `log` (development): sends nothing; logs that a text went to a masked
 *   number, never the text (it holds the code). So that a developer or a test
 *   can still read the code, it keeps the last text per number in memory
 *   (`LogSmsDriver.last`). Development only: do not use it in production.
 * - `webhook`: POSTs JSON `{"to": "+316…", "text": "…"}` to
 *   `verification.sms.url` with `Authorization: Bearer <token>`; the token is
 *   the trimmed content of `verification.sms.tokenFile`, read once at start.
 *   A reply other than 2xx, a network error or no reply within 10 s rejects
 *   with ZegelError ZEGEL_SMS_SEND (the reader then voids the code and answers
 *   503, see src/secure/access.ts and src/reader/routes/api.ts).
 */
export interface SmsDriver {
  /** `to` in E.164 (`+31612345678`). */
  send(to: string, text: string): Promise<void>;
}

/** `+31 6 •••• ••78` for Dutch mobiles, otherwise the country prefix and the last two digits. */
export function maskPhone(phone: string): string {
  const digits = phone.replace(/[^0-9]/g, '');
  if (/^316\d{8}$/.test(digits)) return `+31 6 •••• ••${digits.slice(-2)}`;
  if (digits.length < 5) return '•'.repeat(digits.length);
  return `+${digits.slice(0, 2)} ${'•'.repeat(digits.length - 4)}${digits.slice(-2)}`;
}

/** The text with the code, in the link's language. */
export function smsText(language: Language, organisation: string, code: string, validMs: number): string {
  const minutes = Math.max(1, Math.round(validMs / 60e3));
  return language === 'en'
    ? `Your code for the secure message from ${organisation}: ${code} (valid for ${minutes} ${minutes === 1 ? 'minute' : 'minutes'})`
    : `Uw code voor het beveiligde bericht van ${organisation}: ${code} (${minutes} ${minutes === 1 ? 'minuut' : 'minuten'} geldig)`;
}

/** Development driver: logs a masked number, keeps the last text per number in memory. */
export class LogSmsDriver implements SmsDriver {
  readonly #log: Logger;
  readonly #last = new Map<string, string>();

  constructor(log: Logger) {
    this.#log = log;
  }

  async send(to: string, text: string): Promise<void> {
    this.#last.set(to, text);
    this.#log.info({ to: maskPhone(to), driver: 'log' }, 'sms: text not sent (log driver, development only)');
  }

  /** The last text "sent" to a number (development and tests only). */
  last(to: string): string | undefined {
    return this.#last.get(to);
  }
}

export class WebhookSmsDriver implements SmsDriver {
  readonly #url: string;
  readonly #token: string;
  readonly #timeoutMs: number;
  readonly #log: Logger;

  constructor(url: string, token: string, log: Logger, timeoutMs = 10_000) {
    this.#url = url;
    this.#token = token;
    this.#log = log;
    this.#timeoutMs = timeoutMs;
  }

  async send(to: string, text: string): Promise<void> {
    let response: Response;
    try {
      response = await fetch(this.#url, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${this.#token}` },
        body: JSON.stringify({ to, text }),
        signal: AbortSignal.timeout(this.#timeoutMs),
        redirect: 'error',
      });
    } catch (err) {
      const reason = (err as Error).name === 'TimeoutError' ? `no answer within ${this.#timeoutMs} ms` : (err as Error).message;
      throw new ZegelError('ZEGEL_SMS_SEND', `SMS webhook failed: ${reason}`, { cause: err });
    }
    // the answer body is not read into errors or logs: a gateway might echo the text
    await response.body?.cancel().catch(() => undefined);
    if (!response.ok) throw new ZegelError('ZEGEL_SMS_SEND', `SMS webhook answered ${response.status}`);
    this.#log.info({ to: maskPhone(to), driver: 'webhook', status: response.status }, 'sms: text sent');
  }
}

/**
 * The configured driver. Throws ZegelError ZEGEL_CONFIG_INVALID when the
 * webhook driver lacks `url` or `tokenFile`, ZEGEL_CONFIG_UNREADABLE when the
 * token file cannot be read or is empty.
 */
export function createSmsDriver(config: Pick<Config, 'verification'>, log: Logger, options: { timeoutMs?: number } = {}): SmsDriver {
  const sms = config.verification.sms;
  if (sms.driver === 'log') return new LogSmsDriver(log);
  if (!sms.url || !sms.tokenFile) {
    throw new ZegelError('ZEGEL_CONFIG_INVALID', 'verification.sms: the webhook driver needs url and tokenFile');
  }
  let token: string;
  try {
    token = fs.readFileSync(sms.tokenFile, 'utf8').trim();
  } catch (err) {
    throw new ZegelError('ZEGEL_CONFIG_UNREADABLE', `verification.sms.tokenFile: cannot read ${sms.tokenFile}: ${(err as Error).message}`, { cause: err });
  }
  if (!token) throw new ZegelError('ZEGEL_CONFIG_UNREADABLE', `verification.sms.tokenFile: ${sms.tokenFile} is empty`);
  return new WebhookSmsDriver(sms.url, token, log, options.timeoutMs);
}
