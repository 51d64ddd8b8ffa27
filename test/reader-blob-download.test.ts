import crypto from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import t from 'tap';
import { CONTENT_SECURITY_POLICY, startReader } from '../src/reader/server.js';
import { Browser, ReaderFixture, type LinkFixture } from './helpers/reader-fixture.js';
import { waitFor } from './helpers/relay.js';

/**
 * What a recipient's download of a blob (GET /api/links/:id/blobs/:blob)
 * delivers, over a real loopback socket: the stored file byte for byte, with
 * the reader's headers, also when the client reads slowly (the reader reuses
 * its read buffers only after the socket took their bytes: src/store/blobs.ts),
 * no file left open when the client leaves, and memory that does not grow
 * with the file.
 */

const MiB = 1024 * 1024;

/** A blob of `bytes` bytes, every MiB different, written through the BlobStore over the link's attachment. */
async function writeBlob(f: ReaderFixture, link: LinkFixture, bytes: number): Promise<{ file: string; sha256: string }> {
  const block = crypto.randomBytes(MiB);
  const hash = crypto.createHash('sha256');
  async function* pieces() {
    for (let at = 0; at < bytes; at += MiB) {
      const piece = Buffer.from(block.subarray(0, Math.min(MiB, bytes - at)));
      piece.writeUInt32BE(at / MiB, 0);
      hash.update(piece);
      yield piece;
    }
  }
  t.equal(await f.blobs.write(link.secureId, link.attachmentBlob, Readable.from(pieces())), bytes);
  return { file: path.join(f.blobs.dir, link.secureId, `${link.attachmentBlob}.pgp`), sha256: hash.digest('hex') };
}

interface Download {
  status: number;
  headers: Map<string, string>;
  bytes: number;
  sha256: string;
}

/**
 * One GET over its own connection, parsed by hand so that the test controls
 * the reading: `paused(bodyBytes)` is asked after every piece of the body;
 * while it returns a promise the socket is paused until that settles.
 * `stopAfter` destroys the connection once that many body bytes arrived.
 * The socket reads into one buffer of its own (net `onread`), so the client
 * allocates nothing per piece.
 */
function download(url: string, urlPath: string, cookie: string, opts: { paused?: (bytes: number) => Promise<void> | undefined; stopAfter?: number } = {}): Promise<Download> {
  const { port, hostname } = new URL(url);
  return new Promise((resolve, reject) => {
    let head = Buffer.alloc(0);
    let result: Download | undefined;
    let length = 0;
    let done = false;
    const hash = crypto.createHash('sha256');
    const finish = () => {
      done = true;
      socket.destroy();
      resolve({ ...result!, sha256: hash.digest('hex') });
    };
    const onData = (n: number, buffer: Buffer): boolean => {
      if (done) return false;
      let body = buffer.subarray(0, n);
      if (!result) {
        head = Buffer.concat([head, body]);
        const end = head.indexOf('\r\n\r\n');
        if (end < 0) return true;
        const lines = head.subarray(0, end).toString('latin1').split('\r\n');
        const headers = new Map<string, string>();
        for (const line of lines.slice(1)) {
          const colon = line.indexOf(':');
          headers.set(line.slice(0, colon).trim().toLowerCase(), line.slice(colon + 1).trim());
        }
        result = { status: Number(lines[0]!.split(' ')[1]), headers, bytes: 0, sha256: '' };
        length = Number(headers.get('content-length') ?? 0);
        body = head.subarray(end + 4);
      }
      result.bytes += body.length;
      hash.update(body);
      if (result.bytes > length) {
        done = true;
        reject(new Error(`more than content-length ${length} bytes`));
        return false;
      }
      if ((opts.stopAfter !== undefined && result.bytes >= opts.stopAfter) || result.bytes === length) {
        finish();
        return false;
      }
      const wait = opts.paused?.(result.bytes);
      if (!wait) return true;
      wait.then(() => socket.resume(), reject);
      return false; // pauses the socket
    };
    const socket = net.connect({ port: Number(port), host: hostname, onread: { buffer: Buffer.alloc(256 * 1024), callback: onData } });
    socket.on('error', reject);
    socket.on('end', () => {
      if (!done) reject(new Error(`connection ended after ${result?.bytes ?? 0} of ${length} body bytes`));
    });
    socket.write(`GET ${urlPath} HTTP/1.1\r\nHost: ${hostname}:${port}\r\nCookie: zegel_rs=${cookie}\r\nRange: bytes=0-9\r\nConnection: close\r\n\r\n`);
  });
}

/** Files under `dir` this process holds open. */
function openFilesUnder(dir: string): string[] {
  const open: string[] = [];
  for (const fd of fs.readdirSync('/proc/self/fd')) {
    try {
      const target = fs.readlinkSync(`/proc/self/fd/${fd}`);
      if (target.startsWith(dir)) open.push(target);
    } catch {
      /* closed meanwhile */
    }
  }
  return open;
}

function vm(key: 'VmHWM' | 'VmRSS'): number {
  return Number(new RegExp(`^${key}:\\s+(\\d+) kB$`, 'm').exec(fs.readFileSync('/proc/self/status', 'utf8'))?.[1] ?? NaN) * 1024;
}

t.test('blob downloads', async (t) => {
  const f = new ReaderFixture(t);
  // the reader as startReader makes it, with its server at hand: the test watches the server side of each connection
  const reader = await startReader(f.deps());
  f.url = reader.url;
  t.teardown(() => reader.close());
  const serverSockets: net.Socket[] = [];
  reader.app.server.on('connection', (s: net.Socket) => serverSockets.push(s));

  const link = await f.link({ method: 'none' });
  const b = new Browser(f);
  await b.open(link.linkId);
  t.equal((await b.verify(link.linkId)).json.state, 'verified');
  const cookie = b.cookie!;
  const urlPath = `/api/links/${link.linkId}/blobs/${link.attachmentBlob}`;

  t.test('the answer is the stored blob byte for byte, whole (a Range header is ignored), with the reader headers', async (t) => {
    // the body blob: one read, smaller than a read buffer
    const small = await download(f.url, `/api/links/${link.linkId}/blobs/${link.bodyBlob}`, cookie);
    t.equal(small.status, 200);
    t.equal(small.bytes, Buffer.byteLength(`body-ciphertext-${link.secureId}`));
    t.equal(small.sha256, crypto.createHash('sha256').update(`body-ciphertext-${link.secureId}`).digest('hex'));

    // several reads of 1 MiB and a short last one
    const blob = await writeBlob(f, link, 5 * MiB + 12_345);
    const res = await download(f.url, urlPath, cookie);
    t.equal(res.status, 200);
    t.equal(res.bytes, 5 * MiB + 12_345);
    t.equal(res.sha256, blob.sha256, 'the same bytes as the stored file');
    t.same(
      Object.fromEntries([...res.headers].filter(([name]) => !['date', 'connection', 'keep-alive'].includes(name))),
      {
        'content-security-policy': CONTENT_SECURITY_POLICY,
        'referrer-policy': 'no-referrer',
        'x-content-type-options': 'nosniff',
        'x-frame-options': 'DENY',
        'cross-origin-opener-policy': 'same-origin',
        'cache-control': 'no-store',
        'content-type': 'application/octet-stream',
        'content-length': String(5 * MiB + 12_345),
      },
      'the headers of every reader answer, the type and the length; no range, no content-disposition',
    );

    const empty = await writeBlob(f, link, 0);
    const none = await download(f.url, urlPath, cookie);
    t.equal(none.status, 200);
    t.equal(none.headers.get('content-length'), '0');
    t.equal(none.sha256, empty.sha256, 'an empty blob is an empty answer');
  });

  t.test('a client that reads slowly gets the same bytes: buffers are reused only after the socket took them', async (t) => {
    const size = 40 * MiB + 777;
    const blob = await writeBlob(f, link, size);
    const before = serverSockets.length;
    let pauses = 0;
    let pending = 0;
    const res = await download(f.url, urlPath, cookie, {
      // from the first piece on and then every 2 MiB, stop reading until the reader's socket holds bytes it
      // could not hand to the kernel yet (its writes wait in the socket while it has more to read), or until
      // the kernel's buffers took all the rest
      paused: (bytes) => {
        if (bytes < pauses * 2 * MiB) return undefined;
        pauses++;
        return waitFor(
          () => {
            const s = serverSockets[before];
            if (s && s.writableLength > 0) return ++pending;
            return s && s.bytesWritten >= size;
          },
          10_000,
          'writes waiting in the server socket',
        ).then(() => undefined);
      },
    });
    t.ok(pending >= 8, `${pending} of ${pauses} pauses found writes waiting in the reader's socket`);
    t.equal(res.bytes, size);
    t.equal(res.sha256, blob.sha256, 'the same bytes as the stored file');
  });

  t.test('a client that leaves mid-download leaves no open blob file; the next download is whole', async (t) => {
    const blob = await writeBlob(f, link, 16 * MiB);
    const dir = path.dirname(blob.file);
    let seenOpen = 0;
    const partial = await download(f.url, urlPath, cookie, {
      paused: () => {
        seenOpen = Math.max(seenOpen, openFilesUnder(dir).length);
        return undefined;
      },
      stopAfter: 2 * MiB,
    });
    t.equal(partial.status, 200);
    t.ok(seenOpen >= 1, 'the blob file is open while it is sent');
    await waitFor(() => openFilesUnder(dir).length === 0, 10_000, 'the blob file to be closed');
    t.pass('the blob file is closed after the client left');
    const whole = await download(f.url, urlPath, cookie);
    t.equal(whole.sha256, blob.sha256);
    await waitFor(() => openFilesUnder(dir).length === 0, 10_000, 'the blob file to be closed');
    t.pass('and closed after a whole download');
  });

  t.test('read any other way, a blob stream hands out fresh buffers that a consumer may keep', async (t) => {
    const blob = await writeBlob(f, link, 3 * MiB + 5);
    const kept: Buffer[] = [];
    await pipeline(
      f.blobs.open(link.secureId, link.attachmentBlob),
      new Writable({
        write(chunk: Buffer, _encoding, callback) {
          kept.push(chunk);
          callback();
        },
      }),
    );
    t.equal(kept.length, 4, 'four reads of at most 1 MiB');
    t.equal(crypto.createHash('sha256').update(Buffer.concat(kept)).digest('hex'), blob.sha256, 'kept chunks are the file');
    const iterated: Buffer[] = [];
    for await (const chunk of f.blobs.open(link.secureId, link.attachmentBlob)) iterated.push(chunk as Buffer);
    t.equal(crypto.createHash('sha256').update(Buffer.concat(iterated)).digest('hex'), blob.sha256, 'async iteration too');
    await t.rejects(pipeline(f.blobs.open(link.secureId, 'missing'), new Writable({ write: (_c, _e, cb) => cb() })), { code: 'ENOENT' }, 'a missing file is an error');
  });

  t.test('a large download does not hold the file in memory', async (t) => {
    const size = 128 * MiB;
    const blob = await writeBlob(f, link, size);
    global.gc?.();
    fs.writeFileSync('/proc/self/clear_refs', '5'); // VmHWM := VmRSS
    const rss = vm('VmRSS');
    const res = await download(f.url, urlPath, cookie);
    const growth = vm('VmHWM') - rss;
    t.equal(res.sha256, blob.sha256);
    t.comment(`peak RSS grew by ${(growth / MiB).toFixed(1)} MiB during a ${size / MiB} MiB download (client and reader in this process)`);
    t.ok(growth < 32 * MiB, `peak RSS grows by ${(growth / MiB).toFixed(1)} MiB, less than 32 MiB for a ${size / MiB} MiB blob`);
  });
});
