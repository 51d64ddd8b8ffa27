import crypto from 'node:crypto';
import fs from 'node:fs';
import DKIM from 'nodemailer/lib/dkim';
import { ZegelError } from '../errors.js';

export interface DkimConfig {
  domain: string;
  selector: string;
  privateKeyFile: string;
}

/**
 * Header fields the signature covers: nodemailer's default list (RFC 6376
 * section 5.4.1) plus the ones the relay adds to its own mails, so the origin
 * mark and the auto-generated flag cannot be altered on the way unnoticed.
 */
export const SIGNED_HEADERS = [
  'From', 'Sender', 'Reply-To', 'Subject', 'Date', 'Message-ID', 'To', 'Cc', 'MIME-Version',
  'Content-Type', 'Content-Transfer-Encoding', 'Content-Language', 'Auto-Submitted', 'X-Zegel-Origin',
].join(':');

/** DKIM signing (rsa-sha256, relaxed/relaxed) with nodemailer's signer; the key file is read once. */
export class DkimSigner {
  readonly domain: string;
  readonly selector: string;
  readonly #dkim: DKIM;

  constructor(config: DkimConfig) {
    let key: crypto.KeyObject;
    try {
      key = crypto.createPrivateKey(fs.readFileSync(config.privateKeyFile));
    } catch (err) {
      throw new ZegelError('ZEGEL_DKIM_KEY', `notification.dkim.privateKeyFile ${config.privateKeyFile}: cannot use it as a private key: ${(err as Error).message}`, { cause: err });
    }
    if (key.asymmetricKeyType !== 'rsa') {
      throw new ZegelError('ZEGEL_DKIM_KEY', `notification.dkim.privateKeyFile ${config.privateKeyFile}: expected an RSA key, got ${key.asymmetricKeyType ?? 'unknown'}`);
    }
    this.domain = config.domain;
    this.selector = config.selector;
    this.#dkim = new DKIM({ domainName: config.domain, keySelector: config.selector, privateKey: key, headerFieldNames: SIGNED_HEADERS });
  }

  /** The message with a DKIM-Signature header in front. */
  async sign(message: Buffer): Promise<Buffer> {
    const chunks: Buffer[] = [];
    for await (const chunk of this.#dkim.sign(message)) chunks.push(chunk as Buffer);
    const signed = Buffer.concat(chunks);
    if (!signed.subarray(0, 64).toString('latin1').startsWith('DKIM-Signature:')) {
      throw new ZegelError('ZEGEL_DKIM_KEY', `DKIM signing for d=${this.domain} s=${this.selector} produced no signature`);
    }
    return signed;
  }
}
