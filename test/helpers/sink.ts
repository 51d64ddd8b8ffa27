import { SMTPServer } from 'smtp-server';
import type { Teardown } from './relay.js';

export interface Received {
  from: string;
  to: string[];
  raw: Buffer;
}

export type Verdict = { code: number; message: string } | undefined;

export interface SinkBehaviour {
  /** Reply to RCPT TO for this address (undefined: accept). */
  rcpt?: (address: string) => Verdict;
  /** Reply at the end of DATA (undefined: accept). */
  data?: (message: Received) => Verdict;
  /** Answer DATA this many milliseconds late (a slow next hop). */
  delayMs?: number;
}

/**
 * A next hop for tests: a real SMTP server on a loopback port that stores
 * every message it accepts with its envelope and exact bytes. `down()` closes
 * the listener (connections are refused) and `up()` opens it again on the
 * same port.
 */
export class TestSink {
  readonly messages: Received[] = [];
  behaviour: SinkBehaviour;
  port = 0;
  #server: SMTPServer | undefined;

  constructor(behaviour: SinkBehaviour = {}) {
    this.behaviour = behaviour;
  }

  get url(): string {
    return `smtp://127.0.0.1:${this.port}`;
  }

  async up(): Promise<void> {
    const server = new SMTPServer({
      authOptional: true,
      disabledCommands: ['STARTTLS', 'AUTH'],
      hideENHANCEDSTATUSCODES: false,
      logger: false,
      size: 0,
      onRcptTo: (address, _session, callback) => {
        const verdict = this.behaviour.rcpt?.(address.address);
        if (!verdict) return callback();
        const err = Object.assign(new Error(verdict.message), { responseCode: verdict.code });
        callback(err);
      },
      onData: (stream, session, callback) => {
        const chunks: Buffer[] = [];
        stream.on('data', (chunk: Buffer) => chunks.push(chunk));
        stream.on('end', async () => {
          if (this.behaviour.delayMs) await new Promise((resolve) => setTimeout(resolve, this.behaviour.delayMs));
          const message: Received = {
            from: session.envelope.mailFrom ? session.envelope.mailFrom.address : '',
            to: session.envelope.rcptTo.map((r) => r.address),
            raw: Buffer.concat(chunks),
          };
          const verdict = this.behaviour.data?.(message);
          if (verdict) return callback(Object.assign(new Error(verdict.message), { responseCode: verdict.code }));
          this.messages.push(message);
          callback();
        });
      },
    });
    server.on('error', () => undefined);
    await new Promise<void>((resolve, reject) => {
      server.server.once('error', reject);
      server.listen(this.port, '127.0.0.1', () => resolve());
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
}

/** Stops `server` and drops its client connections at once (pooled ones too), as a crashed host would. */
export function closeSmtpServer(server: SMTPServer): Promise<void> {
  return new Promise<void>((resolve) => {
    server.close(() => resolve());
    for (const connection of (server as unknown as { connections: Set<{ close(): void }> }).connections ?? []) connection.close();
  });
}

export async function startSink(t: Teardown, behaviour: SinkBehaviour = {}): Promise<TestSink> {
  const sink = new TestSink(behaviour);
  await sink.up();
  t.teardown(() => sink.down());
  return sink;
}
