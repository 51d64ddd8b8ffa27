import nodemailer from 'nodemailer';
import type { ConfigInput } from '../../src/config/schema.js';
import { freePort } from './child-relay.js';
import { startDns, type TestDns, type ZoneEntry } from './dns-server.js';
import { merge, type Teardown } from './relay.js';
import { startSink, type TestSink } from './sink.js';
import { createPki, type CertPair, type TestPki } from './test-pki.js';
import { startTlsSink, type TlsSink, type TlsSinkOptions } from './tls-sink.js';

/**
 * A small Internet on loopback for the `delivery.target: mx` tests: a test
 * CA, a DNS server the relay asks (`delivery.mx.dnsServers`), MX hosts as
 * TLS sinks on `<net>.N` that all listen on one port (`delivery.mx.port`),
 * and a plain sink for the internal route (DSNs come back there). Each test
 * file takes its own `net` (e.g. `127.0.18`) so files running side by side
 * never share an address.
 */
export interface MxWorld {
  pki: TestPki;
  dns: TestDns;
  /** The port every MX sink listens on. */
  port: number;
  /** Where DSNs and other internal mail arrive (delivery.internalTarget). */
  internal: TestSink;
  /** An MX host at `address` presenting `pair` (default: a leaf of the test CA for `name`), its A record set. */
  host(name: string, address: string, options?: Omit<Partial<TlsSinkOptions>, "key" | "cert"> & { pair?: CertPair }): Promise<TlsSink>;
  /** MX records of `domain`: `[name, preference]` pairs. */
  mx(domain: string, hosts: Array<[string, number]>, extra?: ZoneEntry): void;
  /** The relay configuration for this world (merged over by `extra`). */
  config(extra?: Record<string, unknown>): ConfigInput;
}

export async function startMxWorld(t: Teardown): Promise<MxWorld> {
  const pki = createPki(t);
  const dns = await startDns(t);
  const port = await freePort();
  const internal = await startSink(t);
  return {
    pki,
    dns,
    port,
    internal,
    async host(name, address, options = {}) {
      const { pair: given, ...rest } = options;
      const pair = given ?? pki.leaf([name]);
      const sink = await startTlsSink(t, { host: address, port, ...rest, key: pair.key, cert: pair.cert });
      dns.zone.set(name, { ...dns.zone.get(name), A: [address] });
      return sink;
    },
    mx(domain, hosts, extra = {}) {
      dns.zone.set(domain, { ...dns.zone.get(domain), ...extra, MX: hosts.map(([exchange, priority]) => ({ exchange, priority })) });
    },
    config(extra = {}) {
      const base = {
        organisation: { name: 'Voorbeeldzorg', domains: ['zorg.test'] },
        delivery: {
          target: 'mx',
          internalTarget: internal.url,
          tls: { ca: pki.ca.certFile },
          mx: { port, dnsServers: dns.servers },
          retry: { schedule: ['1m'], giveUpAfter: '10m' },
        },
      };
      return merge(base, extra) as ConfigInput;
    },
  };
}

/** Submits one message from `from` to `to` over SMTP and returns its queue id. */
export async function submitMail(t: Teardown, port: number, from: string, to: string[], body = 'Gewoon een bericht.', subject = 'Overleg'): Promise<string> {
  const transport = nodemailer.createTransport({ host: '127.0.0.1', port, secure: false, ignoreTLS: true });
  t.teardown(() => transport.close());
  const raw = [`From: <${from}>`, `To: ${to.map((a) => `<${a}>`).join(', ')}`, `Subject: ${subject}`, `Message-ID: <${Math.random().toString(36).slice(2)}@zorg.test>`, '', body, ''].join('\r\n');
  const info = await transport.sendMail({ envelope: { from, to }, raw });
  const match = /queued as (\S+)$/.exec(info.response);
  if (!match) throw new Error(`unexpected reply ${info.response}`);
  return match[1]!;
}
