import fsp from 'node:fs/promises';
import type { Readable } from 'node:stream';
import type tls from 'node:tls';
import SMTPConnection from 'nodemailer/lib/smtp-connection';
// type-only: erased at run time, so no import cycle with transport.ts
import type { Envelope, RecipientReply, SendResult, SpoolSource } from './transport.js';

/**
 * Where a pool connects and how. Today: `smtp://host:port` with opportunistic,
 * unverified STARTTLS. Issue 18 fills in the rest per target (smtps, a TLS
 * policy, AUTH) without touching the pool's sending code.
 */
export interface SmtpTarget {
  host: string;
  port: number;
  /** TLS from the first byte (`smtps://`). */
  secure?: boolean | undefined;
  /** Refuse to go on without STARTTLS (policy `encrypt`/`verify`). */
  requireTLS?: boolean | undefined;
  /** Options for tls.connect (ca, servername, rejectUnauthorized). Default: `{ rejectUnauthorized: false }`. */
  tls?: tls.ConnectionOptions | undefined;
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

/** TLS facts of the connection a message went over (absent: plain text). */
export interface TlsFacts {
  version: string;
  cipher: string;
  /** Whether the certificate was verified. Always false until issue 18 turns verification on. */
  verified: boolean;
}

/** What the next hop said: the transport's result without the remote MTA, which the transport names. */
export type PoolSendResult = Omit<SendResult, 'remoteMta'>;

/** The transaction failed as a whole: `code` is the SMTP reply code, 0 for network trouble. */
export class SmtpPoolError extends Error {
  readonly code: number;
  readonly reply: string;

  constructor(code: number, reply: string) {
    super(reply);
    this.name = 'SmtpPoolError';
    this.code = code;
    this.reply = reply;
  }
}

interface NodemailerError extends Error {
  code?: string;
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
  readonly target: SmtpTarget;
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
    this.target = target;
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
    const smtp = new SMTPConnection({
      host: target.host,
      port: target.port,
      secure: target.secure ?? false,
      requireTLS: target.requireTLS ?? false,
      name: this.#options.hostname,
      connectionTimeout: this.#options.timeout,
      greetingTimeout: this.#options.timeout,
      socketTimeout: this.#options.timeout,
      // opportunistic STARTTLS towards the next hop, as an MTA does (issue 18: a policy per target)
      tls: target.tls ?? { rejectUnauthorized: false },
      logger: false,
    });
    const c = new Connection(smtp);
    return new Promise<Connection>((resolve, reject) => {
      let settled = false;
      const fail = (err: NodemailerError | Error) => {
        c.dead = true;
        if (settled) return;
        settled = true;
        this.#opening--;
        smtp.close();
        this.#wakeOne();
        reject(toPoolError(err as NodemailerError));
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
      smtp.connect((err) => {
        if (err) return fail(err);
        if (settled) return;
        settled = true;
        this.#opening--;
        c.tls = tlsFacts(smtp);
        c.busy = true;
        this.#all.add(c);
        resolve(c);
      });
    });
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

function toPoolError(e: NodemailerError): SmtpPoolError {
  // SMTPConnection refuses a message over the next hop's advertised SIZE itself: as permanent as the 552 the server would give
  const tooBig = /^Message size larger than allowed (\d+)/.exec(e.message);
  if (tooBig && !e.responseCode) return new SmtpPoolError(552, `552 5.3.4 Message size exceeds the next hop's limit of ${tooBig[1]} bytes (SIZE)`);
  if (typeof e.responseCode === 'number' && e.response) return new SmtpPoolError(e.responseCode, e.response.trim());
  return new SmtpPoolError(0, `${e.code ?? 'ERROR'} ${e.message}`.trim());
}

function tlsFacts(smtp: SMTPConnection): TlsFacts | undefined {
  const socket = smtp._socket as tls.TLSSocket | false | null;
  if (!smtp.secure || !socket || typeof socket.getProtocol !== 'function') return undefined;
  return { version: socket.getProtocol() ?? 'unknown', cipher: socket.getCipher()?.name ?? 'unknown', verified: false };
}
