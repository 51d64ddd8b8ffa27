import net from 'node:net';
import type { Teardown } from './relay.js';

export interface WireMessage {
  from: string;
  to: string[];
  /**
   * The exact bytes the client sent after the 354 reply, up to and including
   * the `.\r\n` of the end-of-data line: dot-stuffing, line endings and the
   * terminator as they were on the wire.
   */
  wire: Buffer;
}

const END = Buffer.from('\r\n.\r\n');

/**
 * A next hop that records DATA as it arrives on the wire. TestSink (sink.ts)
 * is an smtp-server, which removes dot-stuffing before the test sees the
 * message; this one speaks just enough SMTP over a raw socket (EHLO, MAIL,
 * RCPT, DATA, RSET, NOOP, QUIT) to show what a sender really put on the wire.
 * DATA ends only at CRLF.CRLF (the CRLF of the DATA command line counts, so an
 * empty message is `.\r\n`), exactly as RFC 5321 has it.
 */
export class WireSink {
  readonly messages: WireMessage[] = [];
  readonly #server: net.Server;
  readonly #sockets = new Set<net.Socket>();
  port = 0;

  constructor() {
    this.#server = net.createServer((socket) => this.#session(socket));
  }

  get url(): string {
    return `smtp://127.0.0.1:${this.port}`;
  }

  async listen(): Promise<void> {
    await new Promise<void>((resolve, reject) => {
      this.#server.once('error', reject);
      this.#server.listen(0, '127.0.0.1', () => resolve());
    });
    this.port = (this.#server.address() as net.AddressInfo).port;
  }

  close(): Promise<void> {
    for (const socket of this.#sockets) socket.destroy();
    return new Promise((resolve) => this.#server.close(() => resolve()));
  }

  #session(socket: net.Socket): void {
    this.#sockets.add(socket);
    socket.on('close', () => this.#sockets.delete(socket));
    socket.on('error', () => undefined);
    let buffer = Buffer.alloc(0);
    let inData = false;
    let from = '';
    let to: string[] = [];
    const reply = (line: string) => socket.write(`${line}\r\n`);
    reply('220 wire-sink.test ESMTP');
    socket.on('data', (chunk: Buffer) => {
      buffer = Buffer.concat([buffer, chunk]);
      for (;;) {
        if (inData) {
          // the CRLF that ended the DATA command line precedes the first data byte
          const at = Buffer.concat([Buffer.from('\r\n'), buffer]).indexOf(END);
          if (at === -1) return;
          const length = at + END.length - 2;
          this.messages.push({ from, to, wire: Buffer.from(buffer.subarray(0, length)) });
          buffer = buffer.subarray(length);
          inData = false;
          from = '';
          to = [];
          reply('250 2.0.0 Ok: captured');
          continue;
        }
        const eol = buffer.indexOf('\r\n');
        if (eol === -1) return;
        const line = buffer.subarray(0, eol).toString('latin1');
        buffer = buffer.subarray(eol + 2);
        const verb = line.slice(0, 4).toUpperCase();
        if (verb === 'EHLO') reply('250-wire-sink.test\r\n250-8BITMIME\r\n250 SMTPUTF8');
        else if (verb === 'HELO') reply('250 wire-sink.test');
        else if (verb === 'MAIL') {
          from = /<([^>]*)>/.exec(line)?.[1] ?? '';
          reply('250 2.1.0 Ok');
        } else if (verb === 'RCPT') {
          to.push(/<([^>]*)>/.exec(line)?.[1] ?? '');
          reply('250 2.1.5 Ok');
        } else if (verb === 'DATA') {
          inData = true;
          reply('354 End data with <CR><LF>.<CR><LF>');
        } else if (verb === 'RSET') {
          from = '';
          to = [];
          reply('250 2.0.0 Ok');
        } else if (verb === 'NOOP') reply('250 2.0.0 Ok');
        else if (verb === 'QUIT') {
          reply('221 2.0.0 Bye');
          socket.end();
          return;
        } else reply('502 5.5.2 Command not implemented');
      }
    });
  }
}

export async function startWireSink(t: Teardown): Promise<WireSink> {
  const sink = new WireSink();
  await sink.listen();
  t.teardown(() => sink.close());
  return sink;
}
