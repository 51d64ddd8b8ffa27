import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import type { SpoolSource } from '../spool/types.js';
import { SmtpPool, SmtpPoolError, type SmtpTarget, type TlsFacts } from './smtp-pool.js';
import { targetHost, type MailKind, type TlsLevel, type TlsPolicy } from './tls-policy.js';

export interface Envelope {
  /** '' for the null sender. */
  from: string;
  to: string[];
  /**
   * RFC 3461 parameters to pass on, when the client gave them. NOTIFY and
   * ORCPT apply to every recipient of the transaction, so callers group
   * recipients by them.
   */
  dsn?: { ret?: string | undefined; envid?: string | undefined; notify?: string[] | undefined; orcpt?: string | undefined } | undefined;
}

/** A small message's bytes from memory, the spool file to stream, or a stream the spool opens (src/spool/types.ts). */
export type { SpoolSource, SpoolStream } from '../spool/types.js';

export interface RecipientReply {
  address: string;
  /** SMTP reply line, e.g. `550 5.1.1 <x@y>: user unknown`. */
  reply: string;
  code: number;
}

/** What the next hop said about one transaction. */
export interface SendResult {
  accepted: string[];
  rejected: RecipientReply[];
  /** The reply to DATA (or the outbox file written). */
  reply: string;
  remoteMta: string;
  /** TLS facts of the SMTP session it went over (absent: the outbox). Recorded in the attempt's event. */
  tls?: TlsFacts | undefined;
}

/** The whole transaction failed; `code` is the SMTP code, or 0 for network trouble. */
export class TransportError extends Error {
  readonly code: number;
  readonly reply: string;
  readonly remoteMta: string;
  /** TLS facts of a session that failed its TLS policy (recorded with the deferral). */
  readonly tls: TlsFacts | undefined;

  constructor(code: number, reply: string, remoteMta: string, facts?: TlsFacts) {
    super(reply);
    this.name = 'TransportError';
    this.code = code;
    this.reply = reply;
    this.remoteMta = remoteMta;
    this.tls = facts;
  }

  get permanent(): boolean {
    return this.code >= 500;
  }
}

export interface Transport {
  readonly name: string;
  /**
   * Which recipients may share one transaction: the MX transport keys them by
   * domain (each domain has its own next hop). Absent: all of a job's together.
   */
  group?(address: string): string;
  /**
   * Sends the spooled bytes unchanged (streamed when not in memory) with the
   * given envelope. `kind.secrets`: the mail carries a link key or a code, so
   * its session must meet the route's floor for such mail (src/deliver/tls-policy.ts).
   */
  send(envelope: Envelope, source: SpoolSource, tag: string, kind?: MailKind): Promise<SendResult>;
  close(): void;
}

/**
 * `delivery.target: outbox`, the development target: every delivered message
 * becomes `<delivery.outboxDir>/<tag>.eml` with its envelope beside it in
 * `<tag>.json`. Both are fsynced before the delivery counts as accepted.
 *
 * The outbox is delivered mail, not relay state: notifications and receipts
 * carry link keys in their #fragment, so it never lies inside `data.dir`
 * (src/config/validate.ts, also after resolving symlinks).
 * The folder is 0700 and every file 0600, whatever the umask.
 */
export class OutboxTransport implements Transport {
  readonly name = 'outbox';
  readonly dir: string;

  constructor(dir: string) {
    this.dir = path.resolve(dir);
    fs.mkdirSync(this.dir, { recursive: true, mode: 0o700 });
    try {
      fs.chmodSync(this.dir, 0o700);
    } catch {
      // a folder made by someone else (a mount point): its owner decides; the files stay 0600
    }
  }

  async send(envelope: Envelope, source: SpoolSource, tag: string): Promise<SendResult> {
    // Files appear complete or not at all: written under a temporary name and
    // renamed, the envelope before the message, so whoever watches the outbox
    // never reads a half-written .eml or one without its .json.
    const eml = path.join(this.dir, `${tag}.eml`);
    const json = path.join(this.dir, `${tag}.json`);
    await writeDurably(`${eml}.tmp`, source);
    await writeDurably(`${json}.tmp`, { bytes: Buffer.from(JSON.stringify({ from: envelope.from, to: envelope.to }, null, 2)) });
    await fsp.rename(`${json}.tmp`, json);
    await fsp.rename(`${eml}.tmp`, eml);
    const dir = await fsp.open(this.dir, 'r');
    await dir.sync().finally(() => dir.close());
    return { accepted: [...envelope.to], rejected: [], reply: `250 2.0.0 written to outbox/${tag}.eml`, remoteMta: 'outbox' };
  }

  close(): void {}
}

/** Writes `source` to `file` (mode 0600 also when a leftover file existed) and fsyncs it. */
async function writeDurably(file: string, source: SpoolSource): Promise<void> {
  const handle = await fsp.open(file, 'w', 0o600);
  try {
    await handle.chmod(0o600);
    if ('bytes' in source) await handle.writeFile(source.bytes);
    else {
      // Piece by piece through the handle, not through handle.createWriteStream({ autoClose: false }):
      // such a stream holds a reference on the handle that only its own close gives back, so
      // handle.close() below waited for ever (Node 20) and a large message never reached the outbox.
      const from = 'path' in source ? fs.createReadStream(source.path, { highWaterMark: 256 * 1024 }) : source.open();
      for await (const piece of from as AsyncIterable<Buffer>) {
        for (let at = 0; at < piece.length; ) at += (await handle.write(piece, at)).bytesWritten;
      }
    }
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/** How a smarthost is reached: `smtp://` (STARTTLS per policy) or `smtps://` (TLS from the first byte), with or without AUTH. */
export interface SmarthostOptions {
  hostname: string;
  maxConnections: number;
  timeout: number;
  /** Absent: `may` for every domain (the loopback default). */
  policy?: TlsPolicy | undefined;
  /** Extra trusted CAs (PEM), `delivery.tls.ca`. */
  ca?: string[] | undefined;
  auth?: { user: string; pass: string } | undefined;
}

/**
 * Delivery over SMTP to one next hop, `smtp://host:port` or
 * `smtps://host:port`: the spooled bytes go straight into DATA on a pooled
 * session (src/deliver/smtp-pool.ts, nodemailer's SMTPConnection), with the
 * envelope and its DSN parameters. The TLS policy is looked up by the
 * smarthost's host name; mail with secrets may need a stricter level than
 * the rest, so there is one pool per level.
 */
export class SmtpTransport implements Transport {
  readonly name: string;
  readonly #host: string;
  readonly #port: number;
  readonly #secure: boolean;
  readonly #options: SmarthostOptions;
  readonly #pools = new Map<TlsLevel, SmtpPool>();

  constructor(url: string, options: SmarthostOptions) {
    const parsed = new URL(url);
    this.#host = targetHost(url);
    this.#secure = parsed.protocol === 'smtps:';
    this.#port = Number(parsed.port || (this.#secure ? 465 : 25));
    this.name = `${parsed.hostname}:${this.#port}`;
    this.#options = options;
  }

  async send(envelope: Envelope, source: SpoolSource, _tag: string, kind: MailKind = { secrets: false }): Promise<SendResult> {
    const level = this.#options.policy?.resolve(this.#host, kind).level ?? 'may';
    try {
      const sent = await this.#pool(level).send(envelope, source);
      return { accepted: sent.accepted, rejected: sent.rejected, reply: sent.reply, remoteMta: this.#host, ...(sent.tls ? { tls: sent.tls } : {}) };
    } catch (err) {
      if (err instanceof SmtpPoolError) throw new TransportError(err.code, err.reply, this.#host, err.tls);
      throw new TransportError(0, (err as Error).message, this.#host);
    }
  }

  #pool(level: TlsLevel): SmtpPool {
    let pool = this.#pools.get(level);
    if (!pool) {
      const { hostname, maxConnections, timeout, ca, auth } = this.#options;
      const target: SmtpTarget = { host: this.#host, port: this.#port, secure: this.#secure, level, ca, auth };
      pool = new SmtpPool(target, { hostname, maxConnections, timeout, maxMessages: 1000 });
      this.#pools.set(level, pool);
    }
    return pool;
  }

  close(): void {
    for (const pool of this.#pools.values()) pool.close();
  }
}
