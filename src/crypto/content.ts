/**
 * What a secure message's body blob holds once decrypted: everything the
 * reader shows, so that subject, addresses, text and attachment names are
 * never stored in the clear. UTF-8 JSON, encrypted like every blob
 * (src/crypto/payload.ts). Attachments are separate blobs holding the raw
 * attachment bytes, fetched and decrypted on demand.
 */
export interface SecureContent {
  v: 1;
  /** The From header as the sender wrote it, e.g. `Jan de Vries <jan@voorbeeldzorg.nl>`. */
  from: string;
  /** To and Cc of the original, as header strings per address; never Bcc. */
  to: string[];
  cc: string[];
  /** ISO date from the Date header, or the time the relay received it. */
  date: string;
  /** The subject recipients see (opt-in tags removed). */
  subject: string;
  /** The Message-ID of the original, for threading replies. */
  messageId?: string;
  text?: string;
  /** The original HTML, unsanitised: the reader sanitises it and shows it in a sandboxed iframe. */
  html?: string;
  attachments: Array<{ blob: string; name: string; contentType: string; size: number }>;
}
