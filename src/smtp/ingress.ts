import fs from 'node:fs';
import os from 'node:os';
import { SMTPServer, type SMTPServerDataStream, type SMTPServerSession } from 'smtp-server';
import type { Clock } from '../clock.js';
import type { Config } from '../config/schema.js';
import type { OriginSigner } from '../crypto/origin.js';
import { SmtpReplyError, ZegelError } from '../errors.js';
import { newQueueId } from '../ids.js';
import type { Logger } from '../log.js';
import type { MessageSpool } from '../spool/types.js';
import type { Store as Backend } from '../store/store.js';
import type { IncomingMessage } from '../store/messages.js';
import { processJob } from '../pipeline/process-job.js';
import { installSmtpServerPatches } from './smtp-server-patches.js';
import { Intake } from './intake.js';
import { ReverseLookupCache } from './reverse-lookup.js';
import { AuthThrottle, type AuthLimiterFactory } from './auth-throttle.js';
import type { RelayPolicy } from './policy.js';
import { receivedField } from './received.js';

const MAX_HEADER_BYTES = 1024 * 1024;

export interface IngressDeps {
  /** Its slice of the configuration. */
  config: Pick<Config, 'smtp'>;
  clock: Clock;
  log: Logger;
  spool: MessageSpool;
  backend: Backend;
  policy: RelayPolicy;
  signer: OriginSigner;
  /** How long `close()` lets open sessions finish before dropping them (ms). */
  closeTimeout?: number;
  /** Called after a message is durably accepted. */
  onAccepted?: (id: string) => void;
  /** Makes the AUTH throttle's counters; absent: in this process's memory (one node). */
  authLimiterFactory?: AuthLimiterFactory | undefined;
  /** Called for each SMTP AUTH attempt: accepted and rejected were verified, throttled was not. */
  onAuth?: (result: 'accepted' | 'rejected' | 'throttled') => void;
}

/** Maps a failure while taking a message in to the SMTP reply the client gets. */
export function replyFor(err: unknown, limit: number): SmtpReplyError {
  if (err instanceof SmtpReplyError) return err;
  switch ((err as ZegelError).code) {
    case 'ZEGEL_MESSAGE_TOO_BIG':
      return new SmtpReplyError(552, '5.3.4', `Message size exceeds fixed maximum message size (${limit} bytes)`);
    case 'ZEGEL_BARE_LINE_ENDING':
      return new SmtpReplyError(554, '5.6.0', 'Message contains bare CR or LF line endings; only CRLF is accepted');
    case 'ZEGEL_NUL_BYTE':
      return new SmtpReplyError(554, '5.6.0', 'Message contains NUL bytes; Zegel offers no BINARYMIME');
    case 'ZEGEL_HEADER_TOO_LONG':
      return new SmtpReplyError(554, '5.6.0', 'Message header is too large');
    case 'ZEGEL_TOO_MANY_HOPS':
      return new SmtpReplyError(554, '5.4.6', 'Too many hops: mail loop suspected');
    default:
      return new SmtpReplyError(451, '4.3.0', 'Local error: message not stored, please try again later');
  }
}

function protocolOf(session: SMTPServerSession): string {
  if (session.transmissionType) return session.transmissionType;
  return `ESMTP${session.secure ? 'S' : ''}${session.user ? 'A' : ''}`;
}

/**
 * The SMTP ingress. A message is answered `250` only after its bytes are
 * durably in the spool (file and directory fsynced, or every chunk committed)
 * and its job is committed; any failure before that is a `4xx` or a `5xx`,
 * and what was spooled of it is discarded.
 */
export class Ingress {
  readonly #deps: IngressDeps;
  readonly #server: SMTPServer;
  readonly #hostname: string;
  readonly #throttle: AuthThrottle;
  #address: { host: string; port: number } | undefined;

  constructor(deps: IngressDeps) {
    installSmtpServerPatches();
    this.#deps = deps;
    const { config, policy } = deps;
    this.#hostname = config.smtp.hostname ?? os.hostname();
    const { maxFailures, maxFailuresPerUser, failureWindow, lockFor } = config.smtp.auth;
    this.#throttle = new AuthThrottle({ maxFailures, maxFailuresPerUser, failureWindowMs: failureWindow, lockForMs: lockFor }, deps.authLimiterFactory);
    const tls = config.smtp.tls;
    const disabled = tls ? (config.smtp.auth.users.length ? [] : ['AUTH']) : ['STARTTLS', 'AUTH'];
    this.#server = new SMTPServer({
      name: this.#hostname,
      banner: 'Zegel secure mail relay',
      size: config.smtp.maxMessageSize,
      maxRecipients: config.smtp.maxRecipients,
      authOptional: true,
      hideENHANCEDSTATUSCODES: false,
      hideDSN: false,
      allowInsecureAuth: false,
      disabledCommands: disabled,
      key: tls ? fs.readFileSync(tls.key) : undefined,
      cert: tls ? fs.readFileSync(tls.cert) : undefined,
      socketTimeout: config.smtp.socketTimeout,
      closeTimeout: deps.closeTimeout ?? 30_000,
      logger: false,
      // one reverse lookup per client address a minute, not one per connection
      resolver: { reverse: new ReverseLookupCache().reverse },
      // AUTH only inside TLS: smtp-server would advertise it in cleartext too
      // (and refuse it there); a per-session list hides it until STARTTLS.
      onConnect: (session, callback) => {
        if (tls && !session.secure) (session as { disabledCommands?: string[] }).disabledCommands = [...disabled, 'AUTH'];
        callback();
      },
      onSecure: (_socket, session, callback) => {
        (session as { disabledCommands?: string[] }).disabledCommands = disabled;
        callback();
      },
      onAuth: (auth, session, callback) => {
        this.#authenticate(auth.method, auth.username ?? '', auth.password ?? '', session.remoteAddress).then(
          (user) => callback(null, { user }),
          (err: SmtpReplyError) => callback(err),
        );
      },
      onMailFrom: (address, session, callback) => {
        try {
          if (config.smtp.requireTLS && !session.secure) throw new SmtpReplyError(530, '5.7.0', 'Must issue a STARTTLS command first');
          policy.assertMayRelay(session.remoteAddress, session.user);
          policy.assertSender(address.address);
          callback();
        } catch (err) {
          this.#logRefusal(session, err as SmtpReplyError, address.address);
          callback(err as Error);
        }
      },
      onRcptTo: (_address, session, callback) => {
        try {
          policy.assertMayRelay(session.remoteAddress, session.user);
          callback();
        } catch (err) {
          callback(err as Error);
        }
      },
      onData: (stream, session, callback) => {
        this.#receive(stream, session).then(
          (id) => callback(null, `Ok: queued as ${id}`),
          (err) => callback(err),
        );
      },
    });
    this.#server.on('error', (err) => this.#deps.log.warn({ err: { message: err.message, code: (err as NodeJS.ErrnoException).code } }, 'smtp connection error'));
  }

  async listen(): Promise<{ host: string; port: number }> {
    const { host, port } = this.#deps.config.smtp.listen;
    await new Promise<void>((resolve, reject) => {
      const onError = (err: Error) => reject(err);
      this.#server.server.once('error', onError);
      this.#server.listen(port, host, () => {
        this.#server.server.off('error', onError);
        resolve();
      });
    });
    const address = this.#server.server.address() as { address: string; port: number };
    this.#address = { host: address.address, port: address.port };
    return this.#address;
  }

  get address(): { host: string; port: number } | undefined {
    return this.#address;
  }

  /** Stops accepting connections; open sessions may finish their transaction. */
  close(): Promise<void> {
    return new Promise((resolve) => this.#server.close(() => resolve()));
  }

  /**
   * One SMTP AUTH attempt: throttled per client address and per username
   * before the argon2 verification runs. Resolves with the username, rejects
   * with the reply. Logs the address and the username, never the password.
   */
  async #authenticate(method: string, username: string, password: string, client: string): Promise<string> {
    const { log, policy, onAuth } = this.#deps;
    const user = username.slice(0, 256);
    const admission = await this.#throttle.admit(client, username);
    if (!admission.admitted) {
      onAuth?.('throttled');
      log.warn({ client, user, method, scope: admission.scope, retryAfterS: Math.ceil(admission.retryAfterMs / 1000) }, 'smtp auth throttled');
      // scope error: the counters' store failed (PostgreSQL away): refused unverified, but not blamed on the client
      throw new SmtpReplyError(454, '4.7.0', admission.scope === 'error' ? 'Temporary authentication failure' : 'Too many failed authentication attempts; try again later');
    }
    let ok: boolean;
    try {
      ok = await policy.authenticate(username, password);
    } catch {
      log.warn({ client, user, method }, 'smtp auth error');
      throw new SmtpReplyError(454, '4.7.0', 'Temporary authentication failure');
    }
    if (!ok) {
      onAuth?.('rejected');
      log.warn({ client, user, method }, 'smtp auth failed');
      throw new SmtpReplyError(535, '5.7.8', 'Authentication credentials invalid');
    }
    onAuth?.('accepted');
    await this.#throttle.succeeded(client, username);
    log.info({ client, user, method }, 'smtp auth accepted');
    return username;
  }

  #logRefusal(session: SMTPServerSession, err: SmtpReplyError, from?: string): void {
    this.#deps.log.info({ client: session.remoteAddress, from, reply: `${err.responseCode} ${err.message}` }, 'smtp transaction refused');
  }

  async #receive(stream: SMTPServerDataStream, session: SMTPServerSession): Promise<string> {
    const { config, clock, spool, backend, log } = this.#deps;
    const started = clock.now();
    const id = newQueueId(started);
    const envelope = session.envelope;
    const mailFrom = envelope.mailFrom ? envelope.mailFrom.address : '';
    const rcptTo = envelope.rcptTo;
    // the guards in one pass per chunk, and the spool (src/smtp/intake.ts)
    const intake = new Intake(stream, {
      spool,
      id,
      maxBytes: config.smtp.maxMessageSize,
      bareLineEndings: config.smtp.bareLineEndings,
      header: {
        signer: this.#deps.signer,
        recipients: rcptTo.map((r) => r.address),
        maxHeaderBytes: MAX_HEADER_BYTES,
        received: receivedField({
          helo: session.hostNameAppearsAs,
          clientHostname: session.clientHostname,
          clientIp: session.remoteAddress,
          hostname: this.#hostname,
          protocol: protocolOf(session),
          queueId: id,
          singleRecipient: rcptTo.length === 1 ? rcptTo[0]!.address : undefined,
          at: started,
        }),
      },
    });
    try {
      // the bytes and the spool's durable step (the file's directory entry) are on disk once this resolves
      await intake.done;
      const facts = intake.facts;
      if (facts.hops >= config.smtp.maxHops) throw new ZegelError('ZEGEL_TOO_MANY_HOPS', 'too many Received fields');
      const message: IncomingMessage = {
        id,
        receivedAt: started,
        mailFrom,
        clientIp: session.remoteAddress,
        helo: session.hostNameAppearsAs,
        size: intake.bytes,
        messageId: facts.messageId?.slice(0, 998),
        origin: 'ingress',
        envId: envelope.dsn?.envid ?? undefined,
        ret: envelope.dsn?.ret ?? undefined,
        recipients: rcptTo.map((r) => ({
          address: r.address,
          notify: (r as { dsn?: { notify?: string[] } }).dsn?.notify?.map((n) => n.toUpperCase()),
          orcpt: (r as { dsn?: { orcpt?: string } }).dsn?.orcpt,
        })),
      };
      const small = intake.small;
      if (small) spool.cache.set(id, small);
      try {
        await backend.intake(message, processJob(id, facts.relayOrigin));
      } catch (err) {
        spool.cache.delete(id);
        throw err;
      }
      log.info(
        { queueId: id, client: session.remoteAddress, from: mailFrom, rcpts: rcptTo.length, size: intake.bytes, removedHeaders: facts.removed || undefined, relayOrigin: facts.relayOrigin || undefined, ms: clock.now() - started },
        'message accepted',
      );
      this.#deps.onAccepted?.(id);
      return id;
    } catch (err) {
      const reply = replyFor(err, config.smtp.maxMessageSize);
      log.warn(
        { queueId: id, client: session.remoteAddress, from: mailFrom, rcpts: rcptTo.length, size: intake.bytes, reply: `${reply.responseCode} ${reply.message}`, cause: (err as ZegelError).code ?? (err as NodeJS.ErrnoException).code },
        'message refused',
      );
      // `done` settles only once the writer has nothing in flight
      if (intake.created) await spool.discard(id).catch(() => undefined);
      throw reply;
    }
  }
}
