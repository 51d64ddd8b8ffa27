import { ZegelError } from '../../errors.js';

/**
 * Cuts a byte stream into chunks of exactly `size` bytes (the last one
 * shorter, never empty), reusing one buffer: each chunk handed to `take` is
 * valid only until `take` resolves, so at most one chunk of the stream is
 * held here at a time. `take` is awaited before the source is read on, so a
 * slow store pauses the source (backpressure). Resolves to the bytes read.
 */
export async function forEachChunk(
  source: AsyncIterable<Uint8Array> | Iterable<Uint8Array>,
  size: number,
  take: (chunk: Buffer, seq: number) => Promise<void>,
): Promise<number> {
  const buffer = Buffer.allocUnsafeSlow(size);
  let filled = 0;
  let seq = 0;
  let total = 0;
  try {
    for await (const piece of source) {
      const data = Buffer.isBuffer(piece) ? piece : Buffer.from(piece.buffer, piece.byteOffset, piece.byteLength);
      total += data.length;
      let at = 0;
      while (at < data.length) {
        const n = Math.min(size - filled, data.length - at);
        data.copy(buffer, filled, at, at + n);
        filled += n;
        at += n;
        if (filled === size) {
          await take(buffer, seq++);
          filled = 0;
        }
      }
    }
    if (filled > 0) await take(buffer.subarray(0, filled), seq++);
    return total;
  } finally {
    // the plaintext of a spooled message does not linger in a buffer the GC frees later
    buffer.fill(0);
  }
}

/** The refusal for chunks that are not 0, 1, 2, … or do not add up to the recorded size. */
export function chunksIncomplete(what: string, detail: string): ZegelError {
  return new ZegelError('ZEGEL_CHUNKS_INCOMPLETE', `${what}: ${detail}`);
}
