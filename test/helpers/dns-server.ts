import net from 'node:net';
import dns2 from 'dns2';
import type { Teardown } from './relay.js';

const { Packet } = dns2;
/** RFC 1035 §4.1.1 (dns2 has `Packet.RCODE` at run time, not in its types). */
const RCODE = { FORMERR: 1, SERVFAIL: 2, NXDOMAIN: 3 } as const;

/** The records of one name. A known name without a type answers NOERROR with no records (ENODATA). */
export interface ZoneEntry {
  MX?: Array<{ exchange: string; priority: number }>;
  A?: string[];
  AAAA?: string[];
  /** Each record a list of character-strings, as `resolveTxt` returns them. */
  TXT?: string[][];
  /** Answer every question for this name with SERVFAIL (`true`), or only questions of these types (e.g. `['AAAA']`). */
  servfail?: boolean | string[];
}

export interface TestDns {
  /** For `MxResolver`/`setServers`: `['127.0.0.1:PORT']`. */
  servers: string[];
  host: string;
  port: number;
  /** Name (case-insensitive, no trailing dot) → records; change it while the server runs. Unknown names answer NXDOMAIN. */
  zone: Map<string, ZoneEntry>;
  /** Questions seen, as `name TYPE`, in order. */
  queries: string[];
  close(): Promise<void>;
}

const TYPE_NAMES = new Map<number, string>(Object.entries(Packet.TYPE as Record<string, number>).map(([name, value]) => [value, name]));

/** Keys are matched lower case without a trailing dot, whatever the test wrote. */
class Zone extends Map<string, ZoneEntry> {
  override set(name: string, entry: ZoneEntry): this {
    return super.set(key(name), entry);
  }
  override get(name: string): ZoneEntry | undefined {
    return super.get(key(name));
  }
  override has(name: string): boolean {
    return super.has(key(name));
  }
  override delete(name: string): boolean {
    return super.delete(key(name));
  }
}

function key(name: string): string {
  return name.toLowerCase().replace(/\.$/, '');
}

/** dns2's server keeps its UDP and TCP listeners here (not in its types). */
interface Listeners {
  servers: { udp: { listen(port: number, address: string): Promise<void>; address(): net.AddressInfo }; tcp: net.Server };
}

/**
 * An authoritative DNS server for tests on dns2: UDP and TCP on the same free
 * port of 127.0.0.1, answering from `zone` as it is at the moment of each
 * question, with TTL 0 (so c-ares' query cache in Node's resolver keeps
 * nothing and a changed zone is seen at once). NXDOMAIN for unknown names,
 * an empty NOERROR answer for a known name without the type, SERVFAIL for
 * names marked `servfail`. Closed at teardown.
 */
export async function startDns(t: Teardown, initial: Record<string, ZoneEntry> = {}): Promise<TestDns> {
  const zone = new Zone();
  for (const [name, entry] of Object.entries(initial)) zone.set(name, entry);
  const queries: string[] = [];
  const handle: dns2.DnsHandler = (request, send) => {
    const response = Packet.createResponseFromRequest(request);
    response.header.aa = 1;
    const [question] = request.questions;
    if (!question) {
      response.header.rcode = RCODE.FORMERR;
      void send(response);
      return;
    }
    const type = TYPE_NAMES.get(question.type) ?? String(question.type);
    queries.push(`${key(question.name)} ${type}`);
    const entry = zone.get(question.name);
    if (!entry) response.header.rcode = RCODE.NXDOMAIN;
    else if (entry.servfail === true || (Array.isArray(entry.servfail) && entry.servfail.includes(type))) response.header.rcode = RCODE.SERVFAIL;
    else {
      const base = { name: question.name, class: Packet.CLASS.IN, ttl: 0 };
      if (question.type === Packet.TYPE.MX) {
        for (const mx of entry.MX ?? []) response.answers.push({ ...base, type: Packet.TYPE.MX, exchange: mx.exchange, priority: mx.priority } as dns2.Packet.Resource);
      } else if (question.type === Packet.TYPE.A) {
        for (const address of entry.A ?? []) response.answers.push({ ...base, type: Packet.TYPE.A, address } as dns2.Packet.Resource);
      } else if (question.type === Packet.TYPE.AAAA) {
        for (const address of entry.AAAA ?? []) response.answers.push({ ...base, type: Packet.TYPE.AAAA, address } as dns2.Packet.Resource);
      } else if (question.type === Packet.TYPE.TXT) {
        for (const data of entry.TXT ?? []) response.answers.push({ ...base, type: Packet.TYPE.TXT, data } as dns2.Packet.Resource);
      }
    }
    void send(response);
  };

  // UDP on a free port first, then TCP on the same one; another process may hold that TCP port: try again
  for (let attempt = 0; ; attempt++) {
    const server = dns2.createServer({ udp: true, tcp: true, handle });
    const errors: Error[] = [];
    server.on('error', (error: Error) => errors.push(error));
    server.on('requestError', () => undefined);
    const { udp, tcp } = (server as unknown as Listeners).servers;
    await udp.listen(0, '127.0.0.1');
    const port = udp.address().port;
    const bound = await new Promise<boolean>((resolve) => {
      tcp.once('error', () => resolve(false));
      tcp.listen(port, '127.0.0.1', () => resolve(true));
    });
    if (!bound) {
      void server.close(); // the TCP listener never opened: do not wait for its 'close'
      if (attempt >= 20) throw new Error('no free port for both UDP and TCP on 127.0.0.1');
      continue;
    }
    let closed = false;
    const close = async (): Promise<void> => {
      if (closed) return;
      closed = true;
      // pipelined TCP connections stay open for 10 s: do not wait for them
      for (const socket of tcpSockets) socket.destroy();
      await server.close();
    };
    const tcpSockets = new Set<net.Socket>();
    tcp.on('connection', (socket: net.Socket) => {
      tcpSockets.add(socket);
      socket.once('close', () => tcpSockets.delete(socket));
    });
    t.teardown(close);
    return { servers: [`127.0.0.1:${port}`], host: '127.0.0.1', port, zone, queries, close };
  }
}
