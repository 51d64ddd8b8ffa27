import { randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import t, { type Test } from 'tap';
import { BlobStore } from '../src/store/blobs.js';
import { BLOB_CHUNK_BYTES, PgBlobStore } from '../src/store/pg/blob-chunks.js';
import { migratedDatabase } from './helpers/pg-database.js';
import { tempDir } from './helpers/relay.js';

/**
 * The ciphertext blob store behaves the same in files (src/store/blobs.ts)
 * and in PostgreSQL (src/store/pg/blob-chunks.ts): one contract run against
 * both (sizes around the 1 MiB chunk, failures, removal, the sweep). Then
 * what the chunks add: a blob still being written, or missing a chunk, is
 * not served.
 */
interface Blobs {
  write(secureId: string, blobId: string, source: Readable): Promise<number>;
  open(secureId: string, blobId: string): Readable;
  size(secureId: string, blobId: string): Promise<number | undefined>;
  list(): Promise<string[]>;
  sweep(committed: ReadonlySet<string>, options?: { graceMs?: number }): Promise<number>;
  remove(secureId: string): Promise<void>;
  removeOne(secureId: string, blobId: string): Promise<void>;
}

const id = (): string => randomBytes(12).toString('base64url');

async function collect(stream: Readable): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const part of stream as AsyncIterable<Buffer>) parts.push(part);
  return Buffer.concat(parts);
}

function contract(t: Test, name: string, blobs: Blobs): void {
  t.test(`${name}: blobs of every size around a chunk read back as written`, async (t) => {
    const secureId = id();
    for (const size of [0, 1, BLOB_CHUNK_BYTES - 1, BLOB_CHUNK_BYTES, BLOB_CHUNK_BYTES + 1, 3 * BLOB_CHUNK_BYTES + 12345]) {
      const bytes = randomBytes(size);
      // handed in pieces that do not line up with the chunks
      const pieces = Array.from({ length: Math.ceil(size / 70_000) }, (_, i) => bytes.subarray(i * 70_000, (i + 1) * 70_000));
      t.equal(await blobs.write(secureId, `b${size}`, Readable.from(pieces)), size, `${size} bytes written`);
      t.equal(await blobs.size(secureId, `b${size}`), size);
      t.ok((await collect(blobs.open(secureId, `b${size}`))).equals(bytes), `${size} bytes read back`);
    }
    t.ok((await blobs.list()).includes(secureId));
    t.equal(await blobs.size(secureId, 'absent'), undefined);
    await t.rejects(collect(blobs.open(secureId, 'absent')), 'an absent blob fails its stream');
  });

  t.test(`${name}: a write whose source fails leaves no blob; remove and the sweep`, async (t) => {
    const secureId = id();
    async function* broken(): AsyncGenerator<Buffer> {
      yield randomBytes(BLOB_CHUNK_BYTES + 5);
      throw new Error('encryption failed');
    }
    await t.rejects(blobs.write(secureId, 'x', Readable.from(broken())), { message: 'encryption failed' });
    t.equal(await blobs.size(secureId, 'x'), undefined, 'nothing of it is served');
    await blobs.write(secureId, 'y', Readable.from([Buffer.from('y')]));
    // one blob of a message (a reply copy whose mail was not queued) goes alone, twice without error
    await blobs.write(secureId, 'z', Readable.from([Buffer.from('zz')]));
    await blobs.removeOne(secureId, 'z');
    await blobs.removeOne(secureId, 'z');
    t.same([await blobs.size(secureId, 'y'), await blobs.size(secureId, 'z')], [1, undefined], 'removeOne took z and left y');
    await blobs.remove(secureId);
    await blobs.remove(secureId);
    t.equal(await blobs.size(secureId, 'y'), undefined, 'removed (twice without error)');
    t.notOk((await blobs.list()).includes(secureId));

    const [kept, gone] = [id(), id()];
    await blobs.write(kept, 'a', Readable.from([Buffer.from('a')]));
    await blobs.write(gone, 'a', Readable.from([Buffer.from('a')]));
    const committed = new Set((await blobs.list()).filter((s) => s !== gone));
    t.equal(await blobs.sweep(committed, { graceMs: 0 }), 1, 'one uncommitted message swept');
    t.same([await blobs.size(kept, 'a'), await blobs.size(gone, 'a')], [1, undefined]);
  });
}

// the server first: tests registered before a top-level await would run, and end the file, without the rest
const { server, pool } = await migratedDatabase(t, 'blobs');
const pgBlobs = new PgBlobStore(pool);

contract(t, 'files', new BlobStore(tempDir(t)));
contract(t, 'postgres', pgBlobs);

t.test('postgres: a blob being written, or missing a chunk, is not served; the sweep spares fresh ones', async (t) => {
  const secureId = id();
  let release!: () => void;
  const gate = new Promise<void>((resolve) => (release = resolve));
  async function* slow(): AsyncGenerator<Buffer> {
    yield randomBytes(BLOB_CHUNK_BYTES);
    await gate;
    yield randomBytes(10);
  }
  const writing = pgBlobs.write(secureId, 'w', Readable.from(slow()));
  const deadline = Date.now() + 10_000;
  while ((await server.query('SELECT 1 FROM blob_chunks WHERE secure_id = $1', [secureId], 'blobs')).length === 0) {
    if (Date.now() > deadline) throw new Error('the first chunk never arrived');
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  t.equal(await pgBlobs.size(secureId, 'w'), undefined, 'no size while being written');
  await t.rejects(collect(pgBlobs.open(secureId, 'w')), { code: 'ZEGEL_CHUNKS_INCOMPLETE' }, 'not served while being written');
  t.equal(await pgBlobs.sweep(new Set()), 0, 'the default grace spares a blob another node is writing');
  release();
  t.equal(await writing, BLOB_CHUNK_BYTES + 10);

  await server.query('DELETE FROM blob_chunks WHERE secure_id = $1 AND seq = 0', [secureId], 'blobs');
  await t.rejects(collect(pgBlobs.open(secureId, 'w')), { code: 'ZEGEL_CHUNKS_INCOMPLETE', message: /chunk 0 is missing/ }, 'a missing chunk');
  await pgBlobs.write(secureId, 'v', Readable.from([randomBytes(2 * BLOB_CHUNK_BYTES)]));
  await server.query('DELETE FROM blob_chunks WHERE secure_id = $1 AND blob_id = $2 AND seq = 1', [secureId, 'v'], 'blobs');
  await t.rejects(collect(pgBlobs.open(secureId, 'v')), { code: 'ZEGEL_CHUNKS_INCOMPLETE', message: /1048576 of its 2097152 bytes/ }, 'a missing last chunk');
});
