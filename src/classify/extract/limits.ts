import type { ExtractLimits, UnscannableReason } from '../types.js';

/**
 * Why extraction of one item (an attachment, an archive entry, a forwarded
 * message) stopped. Thrown inside the extractors and turned into one
 * `unscannable` event by the item it belongs to (see `extractFile`).
 *
 * - `fatal` errors (the message-wide byte budget, the per-attachment clock)
 *   stop every enclosing item up to the top-level attachment; the others stop
 *   only the item they belong to and its siblings continue.
 * - `origin` is the attachment path the error belongs to when it is raised by
 *   a byte source (an inflating ZIP entry, a decoding MIME part) that an inner
 *   item happens to be reading from; without it the innermost item claims it.
 */
export class ExtractError extends Error {
  reported = false;
  constructor(
    readonly reason: UnscannableReason,
    readonly fatal: boolean,
    readonly origin?: string,
    options?: { cause?: unknown },
  ) {
    super(`extraction stopped: ${reason}${origin === undefined ? '' : ` (${origin})`}`, options);
    this.name = 'ExtractError';
  }

  /** True when this error is the item at `path`'s own to report (not an enclosing item's). */
  belongsTo(path: string): boolean {
    return this.origin === undefined || this.origin === path || this.origin.startsWith(`${path}/`);
  }
}

export function corrupt(cause?: unknown, origin?: string): ExtractError {
  return new ExtractError('corrupt', false, origin, { cause });
}

/**
 * The uncompressed-byte budget of one message (`limits.totalBytes`). Counted:
 * the decoded bytes of every attachment of the message itself and every byte
 * inflated from an archive entry at any depth (OOXML/ODF parts included).
 * Not counted: the top-level text bodies, which are streamed in chunks and
 * bounded by the relay's message size limit, and the parts of a forwarded
 * message, whose bytes were already counted as its enclosing attachment/entry.
 */
export class Budget {
  private used = 0;
  constructor(private readonly limit: number) {}

  /** Counts `n` more bytes produced for `origin`; throws once the budget is exceeded. */
  consume(n: number, origin: string): void {
    this.used += n;
    if (this.used > this.limit) throw new ExtractError('limit:totalBytes', true, origin);
  }
}

/**
 * The clock of one top-level attachment (`limits.timeout`), shared by all
 * items nested in it. Only time spent extracting counts: the top-level loop
 * pauses the clock while the consumer holds an event, so a slow rules engine
 * does not make an attachment unscannable. Waiting for input bytes counts.
 */
export class Deadline {
  private spent = 0;
  private since: number | undefined = performance.now();

  constructor(private readonly limitMs: number) {}

  pause(): void {
    if (this.since !== undefined) {
      this.spent += performance.now() - this.since;
      this.since = undefined;
    }
  }

  resume(): void {
    if (this.since === undefined) this.since = performance.now();
  }

  remaining(): number {
    const running = this.since === undefined ? 0 : performance.now() - this.since;
    return this.limitMs - this.spent - running;
  }

  /** Throws `limit:timeout` when the attachment's time is used up. */
  check(): void {
    if (this.remaining() <= 0) throw new ExtractError('limit:timeout', true);
  }

  /**
   * Awaits `work` but gives up when the time runs out meanwhile (for library
   * calls that cannot check the clock themselves, e.g. parsing a PDF page).
   * `onTimeout` cancels the abandoned work.
   */
  async race<T>(work: Promise<T>, onTimeout?: () => void): Promise<T> {
    // Abandoned work may still fail later (e.g. pdfjs once destroyed): never an unhandled rejection.
    work.catch(() => undefined);
    this.check();
    let timer: NodeJS.Timeout | undefined;
    const expired = new Promise<never>((_resolve, reject) => {
      timer = setTimeout(() => {
        onTimeout?.();
        reject(new ExtractError('limit:timeout', true));
      }, Math.max(1, Math.ceil(this.remaining())));
    });
    try {
      return await Promise.race([work, expired]);
    } finally {
      clearTimeout(timer);
    }
  }
}

/** Message-wide extraction state. */
export interface ExtractContext {
  limits: ExtractLimits;
  budget: Budget;
}

/** Where an item sits: its attachment path, how many containers enclose it, its attachment's clock. */
export interface Place {
  /** `verslag.pdf`, `archief.zip/map/overdracht.docx` (the location without `attachment:`). */
  path: string;
  /** Archives and forwarded messages enclosing this item below the message (a top-level attachment: 0). */
  depth: number;
  deadline: Deadline;
}

/** Throws `limit:depth` when opening the container at `place` would put its contents too deep. */
export function checkDepth(place: Place, ctx: ExtractContext): void {
  if (place.depth + 1 > ctx.limits.depth) throw new ExtractError('limit:depth', false, place.path);
}

/** The place of an item inside the container at `place`. */
export function childPlace(place: Place, name: string): Place {
  return { path: `${place.path}/${name}`, depth: place.depth + 1, deadline: place.deadline };
}
