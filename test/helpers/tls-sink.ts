import type { TLSSocket } from 'node:tls';
import { SMTPServer, type SMTPServerOptions, type SMTPServerSession } from 'smtp-server';
import type { Teardown } from './relay.js';
import { closeSmtpServer, type Verdict } from './sink.js';

/** One accepted message with what the sink saw of the session it came over. */
export interface TlsReceived {
  from: string;
  to: string[];
  raw: Buffer;
  /** smtp-server's `session.secure`: STARTTLS done, or smtps. */
  secure: boolean;
  /** `getProtocol()` of the server side, e.g. `TLSv1.3`; undefined without TLS. */
  protocol: string | undefined;
  /** `getCipher().name` of the server side, e.g. `TLS_AES_256_GCM_SHA384`; undefined without TLS. */
  cipher: string | undefined;
  /** The SNI name the client sent, if any. */
  servername: string | undefined;
  /** The user that logged in with AUTH, undefined without AUTH. */
  user: string | undefined;
  /** smtp-server's session id: messages over one connection share it. */
  sessionId: string;
}

export interface TlsSinkOptions {
  /** Address of 127.0.0.0/8 to bind (default 127.0.0.1). */
  host?: string;
  /** Port (default 0: a free one). The MX tests give every sink the same port on different addresses. */
  port?: number;
  /** PEM key and certificate the server presents. */
  key: string;
  cert: string;
  /** Implicit TLS (smtps) instead of STARTTLS. */
  secure?: boolean;
  /** Do not offer STARTTLS, and refuse it when tried anyway (a host without TLS). */
  hideSTARTTLS?: boolean;
  /** Offer AUTH PLAIN/LOGIN (only over TLS) and accept only this user and password; without it, no AUTH. */
  auth?: { user: string; password: string };
  /** Answer every connection with `421 4.3.2 …` (true) or the given reply, and close. */
  refuseConnect?: boolean | { code: number; message: string };
  /** Reply to RCPT TO for this address (undefined: accept). */
  rcpt?: (address: string) => Verdict;
}

interface TlsFactsSeen {
  protocol: string | undefined;
  cipher: string | undefined;
  servername: string | undefined;
}

/**
 * A TLS-capable next hop for tests, like TestSink (sink.ts): a real
 * smtp-server on `host:port` with the given key and certificate, STARTTLS (or
 * smtps with `secure`), optional AUTH PLAIN/LOGIN against one user. Every
 * accepted message is kept with its envelope, exact bytes and what the server
 * saw of the session: TLS or not, protocol and cipher, SNI name, logged-in
 * user. Failed logins are counted in `authFailures`; connections in
 * `connections`. Stopped at teardown (open client connections are dropped).
 */
export class TlsSink {
  readonly messages: TlsReceived[] = [];
  readonly options: TlsSinkOptions;
  /** Connections accepted (refused ones included). */
  connections = 0;
  authFailures = 0;
  /** Errors the server emitted (e.g. a client that aborted the TLS handshake). */
  readonly errors: Error[] = [];
  port = 0;
  #server: SMTPServer | undefined;
  readonly #tls = new Map<string, TlsFactsSeen>();

  constructor(options: TlsSinkOptions) {
    this.options = options;
  }

  get host(): string {
    return this.options.host ?? '127.0.0.1';
  }

  get url(): string {
    return `${this.options.secure ? 'smtps' : 'smtp'}://${this.host}:${this.port}`;
  }

  async up(): Promise<void> {
    const options = this.options;
    const serverOptions: SMTPServerOptions = {
      secure: options.secure ?? false,
      key: options.key,
      cert: options.cert,
      hideSTARTTLS: options.hideSTARTTLS ?? false,
      authMethods: ['PLAIN', 'LOGIN'],
      authOptional: !options.auth,
      allowInsecureAuth: false,
      // smtp-server's hideSTARTTLS only leaves it out of EHLO; a client that tries anyway would get TLS
      disabledCommands: [...(options.auth ? [] : ['AUTH']), ...(options.hideSTARTTLS ? ['STARTTLS'] : [])],
      hideENHANCEDSTATUSCODES: false,
      logger: false,
      size: 0,
      onConnect: (_session, callback) => {
        this.connections += 1;
        const refusal = options.refuseConnect;
        if (!refusal) return callback();
        if (refusal === true) return callback(Object.assign(new Error('4.3.2 Service not available, closing transmission channel'), { responseCode: 421 }));
        callback(Object.assign(new Error(refusal.message), { responseCode: refusal.code }));
      },
      onSecure: (socket, session, callback) => {
        const tlsSocket = socket as TLSSocket;
        this.#tls.set(session.id, {
          protocol: tlsSocket.getProtocol?.() ?? undefined,
          cipher: tlsSocket.getCipher?.()?.name,
          servername: typeof tlsSocket.servername === 'string' ? tlsSocket.servername : undefined,
        });
        callback();
      },
      onAuth: (auth, _session, callback) => {
        const expected = options.auth;
        if (expected && auth.username === expected.user && auth.password === expected.password) return callback(null, { user: auth.username });
        this.authFailures += 1;
        callback(Object.assign(new Error('Authentication credentials invalid'), { responseCode: 535 }));
      },
      onRcptTo: (address, _session, callback) => {
        const verdict = options.rcpt?.(address.address);
        if (!verdict) return callback();
        callback(Object.assign(new Error(verdict.message), { responseCode: verdict.code }));
      },
      onData: (stream, session, callback) => {
        const chunks: Buffer[] = [];
        stream.on('data', (chunk: Buffer) => chunks.push(chunk));
        stream.on('end', () => {
          this.messages.push(this.#received(session, Buffer.concat(chunks)));
          callback();
        });
      },
      onClose: (session) => {
        this.#tls.delete(session.id);
      },
    };
    const server = new SMTPServer(serverOptions);
    // a client that refuses our certificate aborts the handshake and the server emits 'error'
    server.on('error', (err: Error) => this.errors.push(err));
    await new Promise<void>((resolve, reject) => {
      server.server.once('error', reject);
      server.listen(options.port ?? this.port, this.host, () => {
        server.server.off('error', reject);
        resolve();
      });
    });
    this.port = (server.server.address() as { port: number }).port;
    this.#server = server;
  }

  async down(): Promise<void> {
    const server = this.#server;
    this.#server = undefined;
    if (!server) return;
    await closeSmtpServer(server);
  }

  #received(session: SMTPServerSession, raw: Buffer): TlsReceived {
    const seen = this.#tls.get(session.id);
    const user = (session as { user?: unknown }).user;
    return {
      from: session.envelope.mailFrom ? session.envelope.mailFrom.address : '',
      to: session.envelope.rcptTo.map((r) => r.address),
      raw,
      secure: session.secure,
      protocol: session.secure ? seen?.protocol : undefined,
      cipher: session.secure ? (seen?.cipher ?? (session.tlsOptions as { name?: string } | undefined)?.name) : undefined,
      servername: seen?.servername,
      user: typeof user === 'string' && user ? user : undefined,
      sessionId: session.id,
    };
  }
}

export async function startTlsSink(t: Teardown, options: TlsSinkOptions): Promise<TlsSink> {
  const sink = new TlsSink(options);
  await sink.up();
  t.teardown(() => sink.down());
  return sink;
}
