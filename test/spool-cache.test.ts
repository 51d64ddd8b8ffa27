import t from 'tap';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { Writable } from 'node:stream';
import { CaptureSmall, SpoolCache } from '../src/spool/spool-cache.js';
import { Spool } from '../src/spool/spool.js';
import { tempDir } from './helpers/relay.js';

t.test('the cache holds small messages only and stays within its total size', async (t) => {
  const cache = new SpoolCache({ maxEntryBytes: 10, maxTotalBytes: 25 });
  cache.set('big', Buffer.alloc(11));
  t.equal(cache.get('big'), undefined, 'an entry over the entry limit is not kept');
  cache.set('a', Buffer.alloc(10, 'a'));
  cache.set('b', Buffer.alloc(10, 'b'));
  cache.set('c', Buffer.alloc(10, 'c'));
  t.equal(cache.get('a'), undefined, 'the oldest entry goes first when the total would pass the limit');
  t.equal(cache.get('b')?.toString(), 'b'.repeat(10));
  t.equal(cache.get('c')?.toString(), 'c'.repeat(10));
  cache.delete('b');
  cache.set('d', Buffer.alloc(10, 'd'));
  t.equal(cache.get('c')?.toString(), 'c'.repeat(10), 'deleting frees room');
  t.equal(cache.get('d')?.toString(), 'd'.repeat(10));
});

t.test('CaptureSmall keeps a copy under its limit and gives up above it', async (t) => {
  const run = async (chunks: string[], limit: number) => {
    const capture = new CaptureSmall(limit);
    const out: Buffer[] = [];
    await pipeline(Readable.from(chunks.map((c) => Buffer.from(c))), capture, new Writable({ write: (c, _e, cb) => (out.push(c), cb()) }));
    return { captured: capture.captured?.toString(), passed: Buffer.concat(out).toString() };
  };
  t.same(await run(['abc', 'def'], 6), { captured: 'abcdef', passed: 'abcdef' });
  t.same(await run(['abc', 'defg'], 6), { captured: undefined, passed: 'abcdefg' }, 'bytes still pass when the copy is dropped');
});

t.test('the spool reads a small message from memory and a large one from disk, and remove forgets both', async (t) => {
  const spool = new Spool(tempDir(t));
  await spool.write('small1', Buffer.from('Subject: x\r\n\r\nsmall\r\n'));
  t.ok('bytes' in spool.source('small1'), 'a message the relay wrote itself is cached');
  const large = Buffer.alloc(spool.cache.maxEntryBytes + 1, 'x');
  await spool.write('large1', large);
  t.ok('path' in spool.source('large1'), 'a large message streams from its file');
  const read = async (id: string) => {
    const chunks: Buffer[] = [];
    for await (const chunk of spool.read(id)) chunks.push(chunk as Buffer);
    return Buffer.concat(chunks);
  };
  t.equal((await read('small1')).toString(), 'Subject: x\r\n\r\nsmall\r\n');
  t.ok((await read('large1')).equals(large));
  await spool.remove('small1');
  t.ok('path' in spool.source('small1'), 'removed from the cache too');
  t.same((await spool.list()).sort(), ['large1']);
  await spool.remove('small1'); // removing twice is fine
});
