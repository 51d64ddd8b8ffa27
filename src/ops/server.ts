import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Logger } from '../log.js';
import type { Health } from './health.js';
import type { Metrics } from './metrics.js';

export interface OpsServerOptions {
  listen: { host: string; port: number };
  health: Health;
  metrics: Metrics;
  log: Logger;
}

export interface OpsServer {
  url: string;
  address: { host: string; port: number };
  close(): Promise<void>;
}

/**
 * The operations listener (`metrics.listen`, loopback by default): GET
 * /healthz (the process is up), /readyz (store, queue and rules loaded; 503
 * otherwise, with the failing checks) and /metrics (Prometheus text format).
 * A separate small server, never the public reader port: metrics and
 * readiness details are for the operator's network only.
 */
export async function startOpsServer(options: OpsServerOptions): Promise<OpsServer> {
  const { health, metrics, log } = options;
  const server = http.createServer((req, res) => {
    const path = (req.url ?? '/').split('?', 1)[0];
    const send = (status: number, type: string, body: string) => {
      res.writeHead(status, { 'content-type': type, 'cache-control': 'no-store', 'content-length': Buffer.byteLength(body) });
      res.end(req.method === 'HEAD' ? undefined : body);
    };
    if (req.method !== 'GET' && req.method !== 'HEAD') return send(405, 'text/plain; charset=utf-8', 'method not allowed\n');
    if (path === '/healthz') return send(200, 'application/json', `${JSON.stringify({ status: 'ok' })}\n`);
    if (path === '/readyz') {
      void health.readiness().then((readiness) => {
        metrics.ready(readiness.ready);
        const status = !readiness.ready ? 'not ready' : readiness.degraded ? 'degraded' : 'ready';
        const body = readiness.degraded ? { status, checks: readiness.checks, details: readiness.details } : { status, checks: readiness.checks };
        send(readiness.ready ? 200 : 503, 'application/json', `${JSON.stringify(body)}\n`);
      });
      return;
    }
    if (path === '/metrics') {
      void health
        .readiness()
        .then((readiness) => metrics.ready(readiness.ready))
        .then(() => metrics.scrape())
        .then(
        ({ contentType, body }) => send(200, contentType, body),
        (err: Error) => {
          log.error({ err: { message: err.message } }, 'metrics scrape failed');
          send(500, 'text/plain; charset=utf-8', 'metrics unavailable\n');
        },
      );
      return;
    }
    send(404, 'text/plain; charset=utf-8', 'not found\n');
  });
  server.keepAliveTimeout = 5_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.listen.port, options.listen.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const info = server.address() as AddressInfo;
  const host = info.family === 'IPv6' ? `[${info.address}]` : info.address;
  return {
    url: `http://${host}:${info.port}`,
    address: { host: info.address, port: info.port },
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
