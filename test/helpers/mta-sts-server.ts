import https from 'node:https';
import type net from 'node:net';
import tls from 'node:tls';
import type { Teardown } from './relay.js';
import type { CertPair, TestPki } from './test-pki.js';

/** What `https://mta-sts.<domain>/.well-known/mta-sts.txt` answers. */
export interface PolicyResponse {
  /** The policy text (RFC 8461 §3.2). */
  body: string;
  /** HTTP status (default 200). */
  status?: number;
  /** Content-Type (default `text/plain`). */
  contentType?: string;
  /** Extra response headers (e.g. `location` for a redirect). */
  headers?: Record<string, string>;
}

interface Site {
  response: PolicyResponse;
  context: tls.SecureContext;
}

/** A policy file in the RFC 8461 §3.2 format. */
export function policyText(mode: 'enforce' | 'testing' | 'none', mx: string[], maxAge = 86_400): string {
  return ['version: STSv1', `mode: ${mode}`, ...mx.map((m) => `mx: ${m}`), `max_age: ${maxAge}`, ''].join('\r\n');
}

/**
 * The HTTPS side of MTA-STS for tests: one server on `<address>:443` serving
 * `/.well-known/mta-sts.txt` for any number of `mta-sts.<domain>` hosts, each
 * with its own certificate chosen by SNI (by default a leaf of `pki`). The
 * response per domain can be changed while it runs; `requests` counts the
 * requests per domain. Unknown SNI names fail the handshake; unknown paths
 * and Host headers answer 404. Closed at teardown.
 */
export class MtaStsServer {
  readonly address: string;
  readonly port = 443;
  /** Policy requests per domain (not per `mta-sts.` name). */
  readonly requests = new Map<string, number>();
  readonly #sites = new Map<string, Site>();
  readonly #pki: TestPki;
  readonly #server: https.Server;
  readonly #sockets = new Set<net.Socket>();

  private constructor(address: string, pki: TestPki) {
    this.address = address;
    this.#pki = pki;
    this.#server = https.createServer(
      {
        SNICallback: (servername, callback) => {
          const site = this.#sites.get(siteKey(servername));
          if (site) callback(null, site.context);
          else callback(new Error(`no certificate for ${servername}`));
        },
      },
      (req, res) => {
        const host = (req.headers.host ?? '').toLowerCase().replace(/:\d+$/, '');
        const site = this.#sites.get(siteKey(host));
        if (!site || req.url !== '/.well-known/mta-sts.txt' || req.method !== 'GET') {
          res.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n');
          return;
        }
        const domain = host.slice('mta-sts.'.length);
        this.requests.set(domain, (this.requests.get(domain) ?? 0) + 1);
        const { body, status = 200, contentType = 'text/plain', headers = {} } = site.response;
        res.writeHead(status, { 'content-type': contentType, 'cache-control': 'no-store', ...headers }).end(body);
      },
    );
    this.#server.on('connection', (socket: net.Socket) => {
      this.#sockets.add(socket);
      socket.once('close', () => this.#sockets.delete(socket));
    });
    // a client that gives up on our certificate aborts the handshake: not a test failure
    this.#server.on('tlsClientError', () => undefined);
    this.#server.on('clientError', (_err, socket) => socket.destroy());
  }

  /** Listens on `address:443` (an address of 127.0.0.0/8 that only this test file uses). */
  static async start(t: Teardown, address: string, pki: TestPki): Promise<MtaStsServer> {
    const server = new MtaStsServer(address, pki);
    await new Promise<void>((resolve, reject) => {
      server.#server.once('error', reject);
      server.#server.listen(443, address, () => {
        server.#server.off('error', reject);
        resolve();
      });
    });
    t.teardown(() => server.close());
    return server;
  }

  /**
   * Serves `response` for `mta-sts.<domain>`; the certificate is a leaf of the
   * server's CA for that name unless `cert` is given (another CA's, a
   * self-signed one, one with the wrong name). Replaces an earlier setting;
   * without `cert` an earlier certificate is kept.
   */
  set(domain: string, response: PolicyResponse, cert?: CertPair): void {
    const name = `mta-sts.${domain.toLowerCase()}`;
    const existing = this.#sites.get(name);
    const pair = cert ?? (existing ? undefined : this.#pki.leaf([name]));
    const context = pair ? tls.createSecureContext({ key: pair.key, cert: pair.cert }) : existing!.context;
    this.#sites.set(name, { response, context });
  }

  /** Changes only what `mta-sts.<domain>` answers, keeping its certificate. */
  respond(domain: string, response: Partial<PolicyResponse>): void {
    const site = this.#sites.get(`mta-sts.${domain.toLowerCase()}`);
    if (!site) throw new Error(`no site for ${domain}: call set() first`);
    site.response = { ...site.response, ...response };
  }

  /** Stops serving `mta-sts.<domain>` (its handshake then fails). */
  remove(domain: string): void {
    this.#sites.delete(`mta-sts.${domain.toLowerCase()}`);
  }

  count(domain: string): number {
    return this.requests.get(domain.toLowerCase()) ?? 0;
  }

  async close(): Promise<void> {
    if (!this.#server.listening) return;
    await new Promise<void>((resolve) => {
      this.#server.close(() => resolve());
      for (const socket of this.#sockets) socket.destroy();
    });
  }
}

function siteKey(name: string): string {
  return name.toLowerCase().replace(/\.$/, '');
}

/** Shorthand for `MtaStsServer.start`. */
export function startMtaStsServer(t: Teardown, address: string, pki: TestPki): Promise<MtaStsServer> {
  return MtaStsServer.start(t, address, pki);
}
