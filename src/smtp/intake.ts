import type { Readable } from 'node:stream';
import { ZegelError } from '../errors.js';
import type { MessageSpool, SpoolIntakeWriter } from '../spool/types.js';
import { HeaderScan, type HeaderFacts, type HeaderGuardOptions } from './header-guard.js';
import { LineEndings, type BareLineEndingMode } from './line-endings.js';
import { assertNoNul } from './nul-guard.js';

export interface IntakeOptions {
  spool: MessageSpool;
  /** The queue id: the message's name in the spool. */
  id: string;
  /** DATA bytes allowed (as they arrive, before line endings are repaired). */
  maxBytes: number;
  bareLineEndings: BareLineEndingMode;
  header: HeaderGuardOptions;
}

/**
 * Takes one message's DATA into the spool in a single synchronous pass per
 * chunk: the size limit, the NUL refusal, the bare CR/LF policy and the
 * header guard run one after the other on each chunk as it arrives (the same
 * classes, in the same order, with the same errors as when each was a piped
 * Transform), with no stream between them.
 *
 * A message that stays within the spool cache's entry size is collected in
 * memory and written in one go (`spool.writeNew`); a larger one is streamed
 * to the spool's writer (`spool.openNew`) as it arrives, the source paused
 * while the writer says enough waits for storage. Either way `done` resolves
 * only after the whole DATA was read, every byte is durably stored and the
 * spool's `durable` step resolved; it rejects with the first error once the
 * client has finished sending (the reply comes at the end of DATA) and the
 * writer has nothing in flight. Discarding what was stored (`created`) on a
 * later failure is the caller's (`spool.discard`).
 *
 * On the file spool (src/spool/spool.ts): one open (O_DSYNC), write and close
 * for a small message, with the directory's fsync running while the data is
 * written (the entry exists once open returns); a file written with writev,
 * a quarter megabyte at most waiting for the disk, fdatasync-ed at its end,
 * then the directory synced, for a large one. On PostgreSQL
 * (src/store/pg/pg-spool.ts): sealed chunks, each committed on its own.
 */
export class Intake {
  /** DATA bytes received. */
  bytes = 0;
  /** True once something of the message may be in the spool (the caller's to discard on failure). */
  created = false;
  readonly done: Promise<void>;
  readonly #options: IntakeOptions;
  readonly #stream: Readable;
  readonly #lineEndings: LineEndings;
  readonly #header: HeaderScan;
  readonly #limit: number;
  /** The message so far while it fits the spool cache; undefined once it went to the writer. */
  #memory: Buffer[] | undefined = [];
  #memoryBytes = 0;
  #small: Buffer | undefined;
  #file: SpoolIntakeWriter | undefined;
  #error: unknown;
  #resolve!: () => void;
  #reject!: (err: unknown) => void;
  readonly #out: Buffer[] = [];

  constructor(stream: Readable, options: IntakeOptions) {
    this.#options = options;
    this.#stream = stream;
    this.#lineEndings = new LineEndings(options.bareLineEndings);
    this.#header = new HeaderScan(options.header);
    this.#limit = options.spool.cache.maxEntryBytes;
    this.done = new Promise((resolve, reject) => {
      this.#resolve = resolve;
      this.#reject = reject;
    });
    if (stream.readableEnded) {
      this.#end();
      return;
    }
    stream.on('data', (chunk: Buffer) => this.#data(chunk));
    stream.once('end', () => this.#end());
    // the client went away in the middle of DATA: smtp-server destroys the stream, which never ends
    stream.once('close', () => {
      if (!stream.readableEnded) {
        this.#fail(Object.assign(new Error('the connection closed before the end of DATA'), { code: 'ECONNECTION' }));
        void this.#finishFailed();
      }
    });
    stream.on('error', () => undefined);
  }

  /** The header guard's findings (complete once `done` resolved). */
  get facts(): HeaderFacts {
    return this.#header.facts;
  }

  /** The message as spooled, when it was small enough to be held in memory (for the spool cache). */
  get small(): Buffer | undefined {
    return this.#small;
  }

  #data(chunk: Buffer): void {
    if (this.#error !== undefined || !chunk.length) return;
    try {
      this.bytes += chunk.length;
      if (this.bytes > this.#options.maxBytes) throw new ZegelError('ZEGEL_MESSAGE_TOO_BIG', 'message exceeds the size limit');
      assertNoNul(chunk);
      const data = this.#lineEndings.process(chunk);
      if (!data.length) return;
      const out = this.#out;
      this.#header.process(data, out);
      for (let i = 0; i < out.length; i++) this.#keep(out[i]!);
      out.length = 0;
    } catch (err) {
      this.#out.length = 0;
      this.#fail(err);
    }
  }

  /** Passes guarded bytes on: to memory while the message fits the cache, else to the spool's writer. */
  #keep(data: Buffer): void {
    if (this.#memory) {
      this.#memoryBytes += data.length;
      if (this.#memoryBytes <= this.#limit) {
        this.#memory.push(data);
        return;
      }
      const file = this.#options.spool.openNew(this.#options.id);
      this.#file = file;
      file.onError = (err) => this.#fail(err);
      file.onDrain = () => this.#stream.resume();
      this.#memory.push(data);
      file.write(Buffer.concat(this.#memory, this.#memoryBytes));
      this.#memory = undefined;
      return;
    }
    if (!this.#file!.write(data)) this.#stream.pause();
  }

  /** Notes the first error; the rest of DATA is read and dropped so that the reply comes at its end. */
  #fail(err: unknown): void {
    if (this.#error !== undefined) return;
    this.#error = err;
    this.#memory = undefined;
    this.#small = undefined;
    this.#stream.resume();
  }

  async #end(): Promise<void> {
    if (this.#error === undefined) {
      try {
        const tail = this.#lineEndings.finish();
        const out = this.#out;
        if (tail.length) this.#header.process(tail, out);
        this.#header.finish(out);
        for (const data of out) this.#keep(data);
        out.length = 0;
        await this.#header.settle();
        if (this.#error === undefined) {
          const { spool, id } = this.#options;
          if (this.#memory) {
            const bytes = Buffer.concat(this.#memory, this.#memoryBytes);
            this.#memory = undefined;
            this.#small = bytes;
            // the message exists once `onCreated` runs: its durable step (a directory sync) runs while the data is written
            let entry: Promise<void> | undefined;
            try {
              await spool.writeNew(id, bytes, () => {
                this.created = true;
                entry = spool.durable(id);
                entry.catch(() => undefined);
              });
            } finally {
              await entry?.catch(() => undefined);
            }
            await entry;
          } else {
            await this.#file!.end();
            await spool.durable(id);
          }
        }
      } catch (err) {
        this.#fail(err);
      }
    }
    if (this.#error === undefined) {
      this.created = this.created || (this.#file?.created ?? false);
      this.#resolve();
      return;
    }
    await this.#finishFailed();
  }

  async #finishFailed(): Promise<void> {
    const file = this.#file;
    if (file) {
      await file.destroy();
      this.created = this.created || file.created;
    }
    this.#reject(this.#error);
  }
}
