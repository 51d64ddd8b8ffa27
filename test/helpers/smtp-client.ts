import { spawn } from 'node:child_process';
import net from 'node:net';
import path from 'node:path';
import { tempDir, type Teardown } from './relay.js';

/**
 * A raw SMTP conversation over a real socket, for probes a polite client
 * cannot send (bare line endings, smuggling, oversized DATA).
 */
export class RawSmtp {
  readonly #socket: net.Socket;
  #buffer = '';
  #waiters: Array<() => void> = [];

  private constructor(socket: net.Socket) {
    this.#socket = socket;
    socket.on('data', (chunk) => {
      this.#buffer += chunk.toString('latin1');
      for (const wake of this.#waiters.splice(0)) wake();
    });
    socket.on('close', () => {
      for (const wake of this.#waiters.splice(0)) wake();
    });
  }

  static async connect(port: number, host = '127.0.0.1'): Promise<RawSmtp> {
    const socket = net.connect(port, host);
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', () => resolve());
      socket.once('error', reject);
    });
    socket.on('error', () => undefined);
    const client = new RawSmtp(socket);
    await client.reply();
    return client;
  }

  /** The next complete reply (all its lines), e.g. `250 2.0.0 Ok`. */
  async reply(timeoutMs = 15_000): Promise<string> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const match = /^(?:\d{3}-[^\r\n]*\r\n)*\d{3}(?: [^\r\n]*)?\r\n/.exec(this.#buffer);
      if (match) {
        this.#buffer = this.#buffer.slice(match[0].length);
        return match[0].trimEnd();
      }
      if (this.#socket.destroyed) throw new Error(`connection closed; got ${JSON.stringify(this.#buffer)}`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no SMTP reply; got ${JSON.stringify(this.#buffer)}`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.#waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }

  write(data: string | Buffer): void {
    this.#socket.write(data);
  }

  /** Writes a chunk and waits for 'drain' when the socket buffer is full (for streaming large DATA). */
  async send(chunk: string | Buffer): Promise<void> {
    if (this.#socket.write(chunk)) return;
    await new Promise<void>((resolve, reject) => {
      const onDrain = () => {
        this.#socket.off('close', onClose);
        resolve();
      };
      const onClose = () => {
        this.#socket.off('drain', onDrain);
        reject(new Error('connection closed while sending'));
      };
      this.#socket.once('drain', onDrain);
      this.#socket.once('close', onClose);
    });
  }

  async command(line: string): Promise<string> {
    this.write(`${line}\r\n`);
    return this.reply();
  }

  /** EHLO, MAIL FROM and RCPT TO, failing on any refusal. */
  async envelope(from: string, to: string[]): Promise<void> {
    for (const line of [`EHLO probe.test`, `MAIL FROM:<${from}>`, ...to.map((r) => `RCPT TO:<${r}>`)]) {
      const reply = await this.command(line);
      if (!reply.startsWith('250')) throw new Error(`${line} -> ${reply}`);
    }
  }

  close(): void {
    this.#socket.end('QUIT\r\n');
    this.#socket.destroy();
  }

  /**
   * One raw transaction on a fresh connection: envelope, DATA, then the payload
   * (exactly these bytes, end of data included) and QUIT in one write. Resolves to
   * the reply to DATA and every reply after the 354, up to QUIT's 221 or the close.
   */
  static async transaction(port: number, from: string, to: string[], payload: Buffer): Promise<{ dataReply: string; replies: string[] }> {
    const client = await RawSmtp.connect(port);
    try {
      await client.envelope(from, to);
      const dataReply = await client.command('DATA');
      const replies: string[] = [];
      if (!dataReply.startsWith('354')) return { dataReply, replies };
      client.write(Buffer.concat([payload, Buffer.from('QUIT\r\n')]));
      for (;;) {
        let reply: string;
        try {
          reply = await client.reply(20_000);
        } catch {
          break; // connection closed
        }
        replies.push(reply);
        if (reply.startsWith('221')) break;
      }
      return { dataReply, replies };
    } finally {
      client.close();
    }
  }
}

/** A self-signed key and certificate for CN=localhost, made by openssl in a temporary directory. */
export async function selfSigned(t: Teardown): Promise<{ key: string; cert: string }> {
  const dir = tempDir(t, 'zegel-tls-');
  const key = path.join(dir, 'key.pem');
  const cert = path.join(dir, 'cert.pem');
  const result = await run('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-subj', '/CN=localhost', '-days', '1', '-keyout', key, '-out', cert]);
  if (result.code !== 0) throw new Error(`openssl failed: ${result.stderr}`);
  return { key, cert };
}

/** Runs a command to completion and returns its exit code and output. */
export function run(command: string, args: string[], options: { input?: string | Buffer; timeoutMs?: number; env?: NodeJS.ProcessEnv } = {}): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { stdio: ['pipe', 'pipe', 'pipe'], env: options.env ?? process.env });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? 60_000);
    child.on('error', reject);
    child.stdin.on('error', () => undefined);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
    child.stdin.end(options.input ?? '');
  });
}

/** swaks against a port; returns its transcript. */
export function swaks(port: number, args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return run('swaks', ['--server', `127.0.0.1:${port}`, '--hide-informational', ...args], { timeoutMs: 60_000 });
}
