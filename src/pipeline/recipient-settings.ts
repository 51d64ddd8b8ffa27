import type { Config } from '../config/schema.js';
import type { Directory } from '../store/directory.js';
import type { Public } from '../store/store.js';
import type { RecipientSettings } from './secure-job.js';

/**
 * How one external recipient of a secure message is served: the recipient
 * directory's entry (address, then @domain), then the configuration's
 * defaults: `verification.default` for the check, and for the language
 * `notification.language.byDomain` for the recipient's domain, then
 * `notification.language.default`.
 */
export class RecipientResolver {
  readonly #directory: Public<Directory>;
  readonly #config: Pick<Config, 'verification' | 'notification'>;

  constructor(directory: Public<Directory>, config: Pick<Config, 'verification' | 'notification'>) {
    this.#directory = directory;
    this.#config = config;
  }

  /** The secure job's view: check method, phone, language, whether an access code is on record. */
  readonly settings = async (address: string): Promise<RecipientSettings> => {
    const domain = address.slice(address.lastIndexOf('@') + 1).toLowerCase();
    const { language } = this.#config.notification;
    const resolved = await this.#directory.resolve(address, { method: this.#config.verification.default, language: language.byDomain[domain] ?? language.default });
    return { method: resolved.method, phone: resolved.phone, language: resolved.language, hasAccessCode: resolved.accessCodeHashes.length > 0 };
  };

  /** The reader's view: the access-code hashes on record for the address or its domain. */
  readonly accessCodeHashes = async (address: string): Promise<string[]> =>
    (await this.#directory.resolve(address, { method: this.#config.verification.default, language: this.#config.notification.language.default })).accessCodeHashes;
}
