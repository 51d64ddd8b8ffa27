/**
 * Typed errors with stable codes. Every error Zegel raises on purpose is a
 * ZegelError; callers branch on `code`, never on message text.
 */
export type ZegelErrorCode =
  | 'ZEGEL_CONFIG_INVALID'
  | 'ZEGEL_CONFIG_UNREADABLE'
  | 'ZEGEL_CONFIG_OPEN_RELAY'
  | 'ZEGEL_NO_DATABASE'
  | 'ZEGEL_STORE_WRITE'
  | 'ZEGEL_STORE_TX'
  /** The PostgreSQL server cannot be reached or refuses this node: a temporary failure (SMTP 451). */
  | 'ZEGEL_STORE_UNAVAILABLE'
  /** The database was migrated by a newer Zegel. */
  | 'ZEGEL_SCHEMA_NEWER'
  /** An applied migration's SQL differs from this code's migration of the same version. */
  | 'ZEGEL_SCHEMA_CHECKSUM'
  | 'ZEGEL_MESSAGE_TOO_BIG'
  | 'ZEGEL_BARE_LINE_ENDING'
  | 'ZEGEL_NUL_BYTE'
  | 'ZEGEL_HEADER_TOO_LONG'
  | 'ZEGEL_TOO_MANY_HOPS'
  | 'ZEGEL_SPOOL_MISSING'
  | 'ZEGEL_PASSWORD_INPUT'
  | 'ZEGEL_DIRECTORY_TARGET'
  | 'ZEGEL_DIRECTORY_PHONE'
  | 'ZEGEL_DIRECTORY_ACCESS_CODE'
  | 'ZEGEL_DIRECTORY_VALUE'
  | 'ZEGEL_DIRECTORY_IMPORT'
  | 'ZEGEL_DIRECTORY_NOT_FOUND'
  | 'ZEGEL_RULES_INVALID'
  | 'ZEGEL_RULE_PATTERN'
  | 'ZEGEL_TEMPLATE_INVALID'
  | 'ZEGEL_DKIM_KEY'
  | 'ZEGEL_NOTIFY_INPUT'
  | 'ZEGEL_SMS_SEND'
  | 'ZEGEL_MESSAGE_NOT_FOUND'
  | 'ZEGEL_RECIPIENT_NOT_FOUND'
  | 'ZEGEL_LINK_NOT_FOUND'
  | 'ZEGEL_CLI_INPUT'
  | 'ZEGEL_UNKNOWN_JOB'
  | 'ZEGEL_QUEUE_DELETE_REFUSED'
  /** A job's outcome was not written: its lease expired and another node took the job over. */
  | 'ZEGEL_JOB_LEASE_LOST'
  | 'ZEGEL_AUDIT_KEY'
  | 'ZEGEL_RELAY_KEY'
  | 'ZEGEL_STORAGE_KEY'
  | 'ZEGEL_STORAGE_SEAL'
  /** A spool or blob in PostgreSQL lacks a chunk, has one out of order, or is shorter or longer than recorded. */
  | 'ZEGEL_CHUNKS_INCOMPLETE'
  | 'ZEGEL_KEY_EXISTS'
  | 'ZEGEL_DRIVER_UNAVAILABLE'
  /** `zegel start --role` asked for a part this store or process cannot run (e.g. a split role on SQLite, smtpAddress of a reader node). */
  | 'ZEGEL_ROLE'
  /** The database schema is older than this build, and the node's login may not migrate it (a member of zegel_smtp|worker|reader). */
  | 'ZEGEL_SCHEMA_BEHIND'
  | 'ZEGEL_ORIGIN_STAMP'
  /** A file delivery needs (delivery.auth.passwordFile, delivery.tls.ca, delivery.mx.mtaSts.ca) is missing, unreadable or not what it should hold. */
  | 'ZEGEL_DELIVERY_FILE';

export class ZegelError extends Error {
  readonly code: ZegelErrorCode;

  constructor(code: ZegelErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'ZegelError';
    this.code = code;
  }
}

/**
 * An error that maps to an SMTP reply. `reply` is the full reply text after the
 * basic code, starting with the enhanced status code (RFC 3463), e.g. `5.7.1 Relaying denied`.
 */
export class SmtpReplyError extends Error {
  readonly responseCode: number;
  readonly enhancedCode: string;

  constructor(responseCode: number, enhancedCode: string, text: string) {
    super(`${enhancedCode} ${text}`);
    this.name = 'SmtpReplyError';
    this.responseCode = responseCode;
    this.enhancedCode = enhancedCode;
  }
}

export function isErrnoException(err: unknown): err is NodeJS.ErrnoException {
  return err instanceof Error && typeof (err as NodeJS.ErrnoException).code === 'string';
}
