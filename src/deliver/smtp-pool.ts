import fsp from 'node:fs/promises';
import type { Readable } from 'node:stream';
import { X509Certificate } from 'node:crypto';
import type tls from 'node:tls';
import { contextWith } from './tls-context.js';
import SMTPConnection from 'nodemailer/lib/smtp-connection';
// type-only: erased at run time, so no import cycle with transport.ts
import type { Envelope, RecipientReply, SendResult, SpoolSource } from './transport.js';
import type { TlsLevel } from './tls-policy.js';

/**
 * Where a pool connects and how: one next hop (an address or a name, a
 * port), the TLS policy level its sessions must meet, the name the
 * certificate must carry, and the login, if any. A pool never mixes levels:
 * the transports keep one pool per (host, level).
 */
export interface SmtpTarget {
  /** The address (or name) to connect to. */
  host: string;
  port: number;
  /** The name the certificate must carry and the SNI sent: the MX or smarthost name. Default: `host` unless it is an address. */
  servername?: string | undefined;
  /** TLS from the first byte (`smtps://`). */
  secure?: boolean | undefined;
  /** `may` (opportunistic, unverified; the default), `encrypt` (TLS required) or `verify` (TLS required, chain and name checked): src/deliver/tls-policy.ts. */
  level?: TlsLevel | undefined;
  /** Extra trusted CA certificates (PEM, `delivery.tls.ca`), added to the system CAs, never replacing them. */
  ca?: string[] | undefined;
  /** SMTP AUTH (smarthost): only ever sent over TLS. */
  auth?: { user: string; pass: string } | undefined;
  /** The MTA-STS mode that applied to this host (recorded in the TLS facts; `mx` only). */
  mtaSts?: StsMode | undefined;
}

export interface SmtpPoolOptions {
  /** The name sent with EHLO (`smtp.hostname`). */
  hostname: string;
  /** Connections at most (`delivery.concurrency`). */
  maxConnections: number;
  /** Connection, greeting and socket inactivity timeout in ms (`delivery.timeout`). */
  timeout: number;
  /** Messages per connection before it is closed (QUIT) and a new one opened. */
  maxMessages?: number | undefined;
  /** An idle connection is closed (QUIT) after this many ms. Default: half of `timeout`, at most 4 minutes. */
  idleTimeout?: number | undefined;
}

/** The MTA-STS mode of the recipient domain (RFC 8461), or `none` when it publishes no policy. */
export type StsMode = 'enforce' | 'testing' | 'none';

/**
 * TLS facts of the session a delivery attempt went over, recorded in its
 * event (`zegel messages show`, the audit export): what a compliance
 * officer needs to show that mail left encrypted, and how.
 */
export interface TlsFacts {
  /** `TLSv1.3`, `TLSv1.2`, …; null: the session stayed in plain text (policy `may` with a next hop without STARTTLS). */
  version: string | null;
  cipher: string | null;
  /** Whether the certificate chained to a trusted CA and named the host. */
  verified: boolean;
  /** What it was verified against: `system CAs` or `delivery.tls.ca`; null when not verified. */
  verifiedBy: string | null;
  /** The MTA-STS mode that applied (`mx` delivery), null for a smarthost. */
  mtaSts: StsMode | null;
  /** The policy level the session had to meet. */
  policy: TlsLevel;
  /** Why the certificate did not verify (e.g. `DEPTH_ZERO_SELF_SIGNED_CERT`), when it did not. */
  error?: string | undefined;
}

/** What the next hop said: the transport's result without the remote MTA, which the transport names. */
export type PoolSendResult = Omit<SendResult, 'remoteMta'>;

/**
 * The transaction failed as a whole: `code` is the SMTP reply code, 0 for
 * network trouble. `tls`: the session could not meet its TLS policy (a
 * temporary 454 with 4.7.x; never a fall back to plain text), or `connection`:
 * the session never started (refused, timed out, 421 at greeting). Either
 * way the MX transport tries the next host.
 */
export class SmtpPoolError extends Error {
  readonly code: number;
  readonly reply: string;
  readonly kind: 'tls' | 'connection' | 'transaction';
  /** The TLS facts of a session that failed its policy (e.g. the certificate error). */
  readonly tls: TlsFacts | undefined;

  constructor(code: number, reply: string, kind: 'tls' | 'connection' | 'transaction' = 'transaction', facts?: TlsFacts) {
    super(reply);
    this.name = 'SmtpPoolError';
    this.code = code;
    this.reply = reply;
    this.kind = kind;
    this.tls = facts;
  }
}

interface NodemailerError extends Error {
  code?: string;
  originalCode?: string;
  responseCode?: number;
  response?: string;
  recipient?: string;
  rejectedErrors?: NodemailerError[];
}

/** One pooled SMTP session. */
class Connection {
  readonly smtp: SMTPConnection;
  messages = 0;
  /** True once the session is unusable (error, end, QUIT, close). */
  dead = false;
  busy = false;
  tls: TlsFacts | undefined;
  #idleTimer: NodeJS.Timeout | undefined;

  constructor(smtp: SMTPConnection) {
    this.smtp = smtp;
  }

  startIdle(ms: number, onIdle: () => void): void {
    this.stopIdle();
    this.#idleTimer = setTimeout(onIdle, ms);
    this.#idleTimer.unref();
  }

  stopIdle(): void {
    if (this.#idleTimer) clearTimeout(this.#idleTimer);
    this.#idleTimer = undefined;
  }
}

/**
 * A lean pool of SMTP sessions to one next hop, on nodemailer's own SMTP
 * client (`SMTPConnection`: EHLO, STARTTLS, PIPELINING, DSN, SMTPUTF8, SIZE
 * and the dot-stuffing of DATA). It hands the spooled bytes to the session as
 * they are: a Buffer in one write, or a file or the spool's stream (the
 * PostgreSQL spool's chunks) piped with backpressure, never composed again and
 * never read whole into memory. A stream that fails midway (a chunk that does
 * not open, the database gone) closes the session before the final dot, so the
 * next hop never takes a cut-off message; the delivery is retried.
 *
 * Behaviour (as nodemailer's own pool had it for `sendMail({ raw })`):
 * at most `maxConnections` sessions, callers beyond that wait in order; a
 * session is reused for the next message, after `RSET` when its transaction
 * was refused (a completed DATA resets the transaction itself, RFC 5321
 * 4.1.1.4); after `maxMessages` messages or `idleTimeout` idle it says QUIT; a
 * session that failed (network, timeout, 421, a message stream error) is
 * closed and the next message opens a new one. A message that a reused session
 * could not start (the server dropped it while idle: no `354` yet) is tried
 * once more on a new session, as nodemailer requeued it.
 */
export class SmtpPool {
  readonly target: SmtpTarget & { level: TlsLevel };
  readonly #options: Required<SmtpPoolOptions>;
  readonly #all = new Set<Connection>();
  /** Idle sessions, the most recently used last (taken first: it is the least likely to have timed out). */
  readonly #idle: Connection[] = [];
  /** Callers waiting for a session slot, in order. */
  readonly #waiting: Array<{ resolve: (c: Connection) => void; reject: (e: Error) => void }> = [];
  /** Sessions being opened (they count against maxConnections). */
  #opening = 0;
  #closed = false;

  constructor(target: SmtpTarget, options: SmtpPoolOptions) {
    this.target = { ...target, level: target.level ?? 'may' };
    this.#options = {
      hostname: options.hostname,
      maxConnections: Math.max(1, options.maxConnections),
      timeout: options.timeout,
      maxMessages: options.maxMessages ?? 1000,
      idleTimeout: options.idleTimeout ?? Math.max(1000, Math.min(4 * 60_000, Math.floor(options.timeout / 2))),
    };
  }

  /** Sessions open or being opened (for tests and metrics). */
  get size(): number {
    return this.#all.size + this.#opening;
  }

  /** One transaction: MAIL FROM, RCPT TO for every recipient, DATA with the message's bytes. */
  async send(envelope: Envelope, message: SpoolSource): Promise<PoolSendResult> {
    const first = await this.#acquire();
    const reused = first.messages > 0;
    try {
      return await this.#transaction(first, envelope, message);
    } catch (err) {
      // a reused session the server dropped while it sat idle: nothing of the message went out, go again on a new one
      if (reused && err instanceof Retryable) {
        const fresh = await this.#acquire(true);
        return await this.#transaction(fresh, envelope, message).catch((e: unknown) => {
          throw e instanceof Retryable ? e.error : e;
        });
      }
      throw err instanceof Retryable ? err.error : err;
    }
  }

  /** Idle sessions say QUIT now, busy ones after their current message; waiting callers fail. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const c of this.#idle.splice(0)) this.#quit(c);
    for (const w of this.#waiting.splice(0)) w.reject(new SmtpPoolError(0, 'ECONNECTION connection pool closed'));
  }

  async #transaction(c: Connection, envelope: Envelope, message: SpoolSource): Promise<PoolSendResult> {
    let stream: Readable | undefined;
    let size: number | undefined;
    try {
      if ('bytes' in message) size = message.bytes.length;
      else if ('open' in message) {
        // the spool's own stream (PostgreSQL: chunk by chunk); opened last, so a failed size leaves nothing open
        size = message.size ? await message.size() : undefined;
        stream = message.open();
      } else {
        const handle = await fsp.open(message.path, 'r');
        try {
          size = (await handle.stat()).size;
        } catch (err) {
          await handle.close();
          throw err;
        }
        // closed by the stream at its end or when the session destroys it
        stream = handle.createReadStream({ highWaterMark: 256 * 1024 });
      }
    } catch (err) {
      this.#release(c);
      throw new SmtpPoolError(0, `ESPOOL ${(err as Error).message}`);
    }
    const smtpEnvelope = {
      from: envelope.from,
      to: envelope.to,
      ...(size !== undefined ? { size } : {}),
      ...(envelope.dsn ? { dsn: envelope.dsn } : {}),
    };
    return new Promise<PoolSendResult>((resolve, reject) => {
      c.smtp.send(smtpEnvelope, stream ?? (message as { bytes: Buffer }).bytes, (err, info) => {
        c.messages++;
        if (!err) {
          this.#release(c);
          const rejectedErrors = (info.rejectedErrors ?? []) as NodemailerError[];
          resolve({
            accepted: info.accepted,
            rejected: info.rejected.map((address) => recipientReply(address, rejectedErrors.find((e) => e.recipient === address))),
            reply: (info.response ?? '250').trim(),
            tls: c.tls,
          });
          return;
        }
        const e = err as NodemailerError;
        // whatever the stream reads from goes now (a message refused before DATA was never read)
        stream?.destroy();
        const dataStarted = /^3/.test(String(c.smtp.lastServerResponse || ''));
        const failure = toPoolError(e);
        if (failure.code === 552 && !e.responseCode) this.#release(c); // refused locally (SIZE): nothing was sent
        else if ((e.code === 'EENVELOPE' || e.code === 'EMESSAGE') && e.responseCode !== 421 && e.response && !c.dead && !c.smtp.destroyed) {
          // the next hop refused this transaction; the session is fine: RSET and reuse it
          c.smtp.reset((resetErr) => (resetErr ? this.#kill(c) : this.#release(c)));
        } else this.#kill(c);
        // all recipients refused: each with its own reply
        if (e.code === 'EENVELOPE' && e.rejectedErrors?.length && e.rejectedErrors.every((r) => r.recipient)) {
          resolve({ accepted: [], rejected: e.rejectedErrors.map((r) => recipientReply(r.recipient!, r)), reply: (e.response ?? '').trim(), tls: c.tls });
          return;
        }
        reject(failure.code === 0 && !dataStarted ? new Retryable(failure) : failure);
      });
    });
  }

  /** A session for one transaction: an idle one, a new one, or the next one freed. */
  #acquire(fresh = false): Promise<Connection> {
    if (this.#closed) return Promise.reject(new SmtpPoolError(0, 'ECONNECTION connection pool closed'));
    for (let idle = fresh ? undefined : this.#idle.pop(); idle; idle = this.#idle.pop()) {
      if (idle.dead || idle.smtp.destroyed) {
        this.#drop(idle);
        continue;
      }
      idle.stopIdle();
      idle.busy = true;
      return Promise.resolve(idle);
    }
    if (this.size < this.#options.maxConnections) return this.#open();
    if (fresh && this.#idle.length) {
      // make room for the new session
      this.#quit(this.#idle.shift()!);
      return this.#open();
    }
    return new Promise((resolve, reject) => this.#waiting.push({ resolve, reject })).then((c) => c as Connection);
  }

  #open(): Promise<Connection> {
    this.#opening++;
    const { target } = this;
    const name = this.hostName;
    const smtp = new SMTPConnection({
      host: target.host,
      port: target.port,
      ...(target.servername ? { servername: target.servername } : {}),
      secure: target.secure ?? false,
      // `encrypt` and `verify` never go on in plain text; `may` takes STARTTLS when offered and goes on without it when refused
      requireTLS: target.level !== 'may' && !target.secure,
      opportunisticTLS: target.level === 'may',
      name: this.#options.hostname,
      connectionTimeout: this.#options.timeout,
      greetingTimeout: this.#options.timeout,
      socketTimeout: this.#options.timeout,
      tls: {
        // `verify`: chain and name (servername, else host) checked by tls.connect itself; the others record what it found
        rejectUnauthorized: target.level === 'verify',
        minVersion: 'TLSv1.2',
        // the extra CAs beside the system ones, in a context built once: building it per session costs 20-24 ms of CPU
        ...(target.ca?.length ? { secureContext: contextWith(target.ca) } : {}),
      },
      logger: false,
    });
    const c = new Connection(smtp);
    return new Promise<Connection>((resolve, reject) => {
      let settled = false;
      const fail = (err: NodemailerError | Error | SmtpPoolError) => {
        c.dead = true;
        if (settled) return;
        settled = true;
        this.#opening--;
        smtp.close();
        this.#wakeOne();
        reject(err instanceof SmtpPoolError ? err : toPoolError(err as NodemailerError, { host: name, level: target.level, mtaSts: target.mtaSts, opening: true }));
      };
      // an error is also handed to a send in flight, which decides what it means; without a listener it would throw
      smtp.on('error', (err: NodemailerError) => {
        if (!settled) fail(err);
        else c.dead = true;
      });
      smtp.once('end', () => {
        if (!settled) return fail(Object.assign(new Error('connection closed before the session started'), { code: 'ECONNECTION' }));
        this.#drop(c);
      });
      const ready = () => {
        if (settled) return;
        settled = true;
        this.#opening--;
        c.busy = true;
        this.#all.add(c);
        resolve(c);
      };
      smtp.connect((err) => {
        if (err) return fail(err);
        if (settled) return;
        c.tls = tlsFacts(smtp, target);
        if (!target.auth) return ready();
        // the password never crosses a session in plain text, nor one whose certificate was not verified
        if (!smtp.secure) return fail(new SmtpPoolError(454, `454 4.7.0 ${name} did not start TLS; the login for ${target.auth.user} is never sent in plain text`, 'tls', c.tls));
        if (!c.tls.verified) return fail(new SmtpPoolError(454, `454 4.7.5 the certificate of ${name} is not verified (${c.tls.error ?? 'unverified'}); the login for ${target.auth.user} is only sent over a verified session`, 'tls', c.tls));
        smtp.login({ user: target.auth.user, pass: target.auth.pass }, (loginErr) => {
          if (!loginErr) return ready();
          const e = loginErr as NodemailerError;
          // a refused login is the smarthost's or the configuration's to mend: retried, as Postfix defers it
          const said = (e.response ?? e.message).trim();
          fail(new SmtpPoolError(454, `454 4.7.0 ${name} refused the login for ${target.auth!.user}: ${said}`, 'connection'));
        });
      });
    });
  }

  /** The name a reply about this pool's sessions gives: the MX or smarthost name, else the address. */
  get hostName(): string {
    return this.target.servername ?? this.target.host;
  }

  /** After a transaction: to the next waiting caller, or idle (QUIT at the message cap or once the pool is closed). */
  #release(c: Connection): void {
    c.busy = false;
    if (c.dead || c.smtp.destroyed) return this.#drop(c);
    if (this.#closed || c.messages >= this.#options.maxMessages) return this.#quit(c);
    const waiter = this.#waiting.shift();
    if (waiter) {
      c.busy = true;
      return waiter.resolve(c);
    }
    this.#idle.push(c);
    c.startIdle(this.#options.idleTimeout, () => {
      const at = this.#idle.indexOf(c);
      if (at !== -1) this.#idle.splice(at, 1);
      this.#quit(c);
    });
  }

  /** Ends a session politely; the slot frees when the server closes (or at once if it is gone). */
  #quit(c: Connection): void {
    c.stopIdle();
    if (c.dead || c.smtp.destroyed) return this.#drop(c);
    c.dead = true;
    // the slot is free now: QUIT's reply is not waited for
    this.#drop(c);
    try {
      c.smtp.quit();
    } catch {
      c.smtp.close();
    }
  }

  /** Closes a failed session at once. */
  #kill(c: Connection): void {
    c.dead = true;
    c.smtp.close();
    this.#drop(c);
  }

  /** Forgets a session that ended and gives its slot to a waiting caller. */
  #drop(c: Connection): void {
    c.stopIdle();
    c.dead = true;
    const at = this.#idle.indexOf(c);
    if (at !== -1) this.#idle.splice(at, 1);
    this.#all.delete(c);
    this.#wakeOne();
  }

  /** A slot came free: open a session for the first waiting caller. */
  #wakeOne(): void {
    if (this.#closed || !this.#waiting.length || this.size >= this.#options.maxConnections) return;
    const waiter = this.#waiting.shift()!;
    this.#open().then(waiter.resolve, waiter.reject);
  }
}

/** The facts of a session refused before any mail went (no TLS established; `error` says why). */
export function refusedFacts(policy: TlsLevel, mtaSts: StsMode | undefined, error: string): TlsFacts {
  return { version: null, cipher: null, verified: false, verifiedBy: null, mtaSts: mtaSts ?? null, policy, error };
}

/** A failure that left the message untouched on a reused session: worth one more try on a new one. */
class Retryable extends Error {
  readonly error: SmtpPoolError;
  constructor(error: SmtpPoolError) {
    super(error.message);
    this.error = error;
  }
}

function recipientReply(address: string, err: NodemailerError | undefined): RecipientReply {
  return { address, code: err?.responseCode ?? 550, reply: (err?.response ?? '550 recipient rejected').trim() };
}

interface ErrorContext {
  host: string;
  level: TlsLevel;
  mtaSts: StsMode | undefined;
  /** The session was being set up (no transaction yet). */
  opening: boolean;
}

/** Certificate problems as tls.connect reports them (OpenSSL's verify codes and Node's name check). */
const CERT_ERROR = /CERT|SELF_SIGNED|ISSUER|UNABLE_TO_(?:GET|VERIFY)|ALTNAME|HOSTNAME/;

function toPoolError(e: NodemailerError, context?: ErrorContext): SmtpPoolError {
  // SMTPConnection refuses a message over the next hop's advertised SIZE itself: as permanent as the 552 the server would give
  const tooBig = /^Message size larger than allowed (\d+)/.exec(e.message);
  if (tooBig && !e.responseCode) return new SmtpPoolError(552, `552 5.3.4 Message size exceeds the next hop's limit of ${tooBig[1]} bytes (SIZE)`);
  if (context) {
    const certCode = [e.originalCode, e.code].find((code) => code && CERT_ERROR.test(code));
    if (certCode) {
      const facts = refusedFacts(context.level, context.mtaSts, certCode);
      const why = certCode === 'ERR_TLS_CERT_ALTNAME_INVALID' ? `does not name ${context.host}` : `is not trusted (${certCode})`;
      return new SmtpPoolError(454, `454 4.7.5 TLS policy ${context.level}: the certificate of ${context.host} ${why}`, 'tls', facts);
    }
    if (e.code === 'ETLS') {
      const said = e.response ? `: ${e.response.trim()}` : ` (${e.message})`;
      const facts = refusedFacts(context.level, context.mtaSts, 'STARTTLS');
      return new SmtpPoolError(454, `454 4.7.4 TLS policy ${context.level}: ${context.host} did not start TLS${said}`, 'tls', facts);
    }
  }
  if (typeof e.responseCode === 'number' && e.response) {
    // a 5xx greeting or EHLO reply, before any TLS, is temporary (Postfix's smtp_skip_5xx_greeting):
    // anyone on the path can inject it, and the next MX or a later try may take the mail
    if (context?.opening && e.responseCode >= 500) return new SmtpPoolError(451, `451 4.4.0 ${context.host} refused the session: ${e.response.trim()}`, 'connection');
    return new SmtpPoolError(e.responseCode, e.response.trim(), context?.opening ? 'connection' : 'transaction');
  }
  return new SmtpPoolError(0, `${e.code ?? 'ERROR'} ${e.message}`.trim(), context?.opening ? 'connection' : 'transaction');
}

/** What the session's socket says about its TLS, as the event records it. */
function tlsFacts(smtp: SMTPConnection, target: SmtpTarget & { level: TlsLevel }): TlsFacts {
  const socket = smtp._socket as tls.TLSSocket | false | null;
  const base = { mtaSts: target.mtaSts ?? null, policy: target.level };
  if (!smtp.secure || !socket || typeof socket.getProtocol !== 'function') return { version: null, cipher: null, verified: false, verifiedBy: null, ...base };
  const verified = socket.authorized === true;
  const error = verified ? undefined : String(socket.authorizationError ?? 'unverified');
  return {
    version: socket.getProtocol() ?? 'unknown',
    cipher: socket.getCipher()?.name ?? 'unknown',
    verified,
    verifiedBy: verified ? (target.ca?.length && chainsTo(socket, target.ca) ? 'delivery.tls.ca' : 'system CAs') : null,
    ...base,
    ...(error ? { error } : {}),
  };
}

/** Whether the peer's chain ends in (or is issued by) one of the extra CAs, rather than a system CA. */
function chainsTo(socket: tls.TLSSocket, cas: string[]): boolean {
  let cert = socket.getPeerCertificate(true) as tls.DetailedPeerCertificate | undefined;
  const seen = new Set<string>();
  let top: X509Certificate | undefined;
  while (cert?.raw && !seen.has(cert.fingerprint256)) {
    seen.add(cert.fingerprint256);
    top = new X509Certificate(cert.raw);
    cert = cert.issuerCertificate;
  }
  if (!top) return false;
  return cas.some((pem) => {
    try {
      const ca = new X509Certificate(pem);
      return ca.fingerprint256 === top.fingerprint256 || (top.checkIssued(ca) && top.verify(ca.publicKey));
    } catch {
      return false;
    }
  });
}
