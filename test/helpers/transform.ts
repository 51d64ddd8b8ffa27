import type { Transform } from 'node:stream';

/**
 * Feeds `chunks` into a transform, one write per chunk, and collects what
 * comes out, or the error it failed with (the output up to the error is kept).
 */
export function feed(stream: Transform, chunks: Array<string | Buffer>): Promise<{ out: Buffer; error: unknown }> {
  const parts: Buffer[] = [];
  stream.on('data', (chunk: Buffer) => parts.push(chunk));
  return new Promise((resolve) => {
    let settled = false;
    const done = (error: unknown) => {
      if (settled) return;
      settled = true;
      resolve({ out: Buffer.concat(parts), error });
    };
    stream.on('error', done);
    stream.on('end', () => done(undefined));
    for (const chunk of chunks) stream.write(typeof chunk === 'string' ? Buffer.from(chunk, 'latin1') : chunk);
    stream.end();
  });
}
