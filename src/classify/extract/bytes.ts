/** Byte streams as the extractors pass them around: pulled, in order, never all at once unless collected. */
export type Bytes = AsyncIterable<Buffer>;

/**
 * Largest piece handed on at once; bigger input buffers are cut so decoders
 * and parsers work in steps. 32 KiB: the text decoded from one piece stays
 * well below V8's large-object size (128 KiB, 64 Ki two-byte characters).
 */
export const PIECE = 32 * 1024;

/** Cuts a buffer into pieces of at most `PIECE` bytes (views, no copies). */
export function* pieces(buf: Buffer): Generator<Buffer> {
  for (let at = 0; at < buf.length; at += PIECE) yield buf.subarray(at, Math.min(buf.length, at + PIECE));
}

/**
 * Reads at least `n` bytes (or everything, if shorter) and returns them with
 * a stream that replays them before the rest. Used to look at magic bytes
 * before choosing an extractor.
 */
export async function peek(source: Bytes, n: number): Promise<{ head: Buffer; rest: AsyncGenerator<Buffer>; close: () => Promise<void> }> {
  const it = source[Symbol.asyncIterator]();
  const seen: Buffer[] = [];
  let size = 0;
  let done = false;
  while (size < n) {
    const step = await it.next();
    if (step.done) {
      done = true;
      break;
    }
    seen.push(step.value);
    size += step.value.length;
  }
  const head = Buffer.concat(seen, size);
  async function* rest(): AsyncGenerator<Buffer> {
    try {
      if (head.length) yield head;
      while (!done) {
        const step = await it.next();
        if (step.done) {
          done = true;
          return;
        }
        yield step.value;
      }
    } finally {
      // Stop the underlying source when the consumer stops early.
      if (!done) {
        done = true;
        await it.return?.();
      }
    }
  }
  const replay = rest();
  /** Stops the source even when `rest` was never read. */
  const close = async (): Promise<void> => {
    await replay.return(undefined);
    if (!done) {
      done = true;
      await it.return?.();
    }
  };
  return { head: head.subarray(0, Math.min(n, head.length)), rest: replay, close };
}

/**
 * Reads a whole stream into one buffer, for formats that must be parsed
 * whole (PDF, ZIP). The bytes were counted against the message's byte budget
 * where they were produced, so the buffer is bounded by `limits.totalBytes`.
 */
export async function collect(source: Bytes): Promise<Buffer> {
  const parts: Buffer[] = [];
  let size = 0;
  for await (const part of source) {
    parts.push(part);
    size += part.length;
  }
  return parts.length === 1 && parts[0] ? parts[0] : Buffer.concat(parts, size);
}
