import { HeaderBlock, partFields, type PartFields } from './headers.js';

/**
 * A streaming MIME splitter: turns the bytes of a message, in pieces of any
 * size, into its parts in order: each part when its header block is complete,
 * then the raw (still transfer-encoded) bytes of its body as slices of the
 * input. Nothing is held back but a part's header block (at most `MAX_HEAD`
 * bytes) and, in a multipart, the start of a line that may turn out to be a
 * boundary (a few bytes more than the boundary), so a 200 MB body passes in
 * the pieces it came in.
 *
 * Boundaries are looked for with Buffer.indexOf (`\n--`), not line by line;
 * the body of the message itself, when it is no multipart, is not searched at
 * all. The rules are those of the splitter Zegel used before (mailsplit), so
 * broken messages read the same:
 *
 * - a part's boundaries are its own (when it is a multipart) and its parent's;
 *   a boundary line is `--boundary` followed by a line end, or by `--` and an
 *   optional line end; nothing else may follow on the line;
 * - the line end before a boundary line belongs to the boundary; a body that
 *   runs to the end of the input (no closing boundary) keeps everything;
 * - the preamble and epilogue of a multipart are skipped; after a closing
 *   boundary, an opening one starts further parts;
 * - a part whose header block is cut off by its parent's next boundary is
 *   dropped; one cut off by its parent's closing boundary is a part without
 *   a body; a header block that never ends takes the rest of the input;
 * - a multipart without a boundary parameter has no parts: its body is skipped;
 * - message/rfc822 parts are not opened here (the walker reads them as files);
 * - a header block over `MAX_HEAD` bytes or more than `MAX_PARTS` parts is a
 *   MimeError.
 */

/** Largest header block of one part. */
export const MAX_HEAD = 1024 * 1024;
/** Most parts in one message (the message itself counts as one). */
export const MAX_PARTS = 1000;

/** The MIME structure cannot be parsed (a header block over the limit, too many parts). */
export class MimeError extends Error {
  constructor(message: string) {
    super(`the MIME structure cannot be parsed: ${message}`);
    this.name = 'MimeError';
  }
}

const LF = 0x0a;
const CR = 0x0d;
const DASH = 0x2d;
const EMPTY = Buffer.alloc(0);
const NL_DASHES = Buffer.from('\n--');

/** One part of the message. The fields are set once its header block is complete. */
export class MimeNode implements PartFields {
  readonly type = 'node';
  readonly root: boolean;
  readonly parent: MimeNode | undefined;
  /** The boundary of the enclosing multipart. */
  readonly parentBoundary: Buffer | false;
  headers: HeaderBlock | undefined;
  contentType: string | false = false;
  charset: string | false = false;
  filename: string | false = false;
  disposition: string | false = false;
  encoding = '';
  multipart: string | false = false;
  boundary: Buffer | false = false;
  flowed = false;
  delSp = false;

  /** The raw header block while it is being read. */
  headerChunks: Buffer[] = [];
  headerLength = 0;

  constructor(parent: MimeNode | undefined) {
    this.root = !parent;
    this.parent = parent;
    this.parentBoundary = parent?.boundary ?? false;
  }

  parseHeaders(): void {
    if (this.headers) return;
    this.headers = new HeaderBlock(Buffer.concat(this.headerChunks, this.headerLength));
    this.headerChunks = [];
    Object.assign(this, partFields(this.headers));
  }
}

/** Raw body bytes of a (leaf) part. */
export interface BodySlice {
  type: 'body';
  node: MimeNode;
  value: Buffer;
}

export type SplitItem = MimeNode | BodySlice;

const enum State {
  Head,
  Body,
}

/** `--boundary` + line end: 1; `--boundary--` (+ line end): 2; else 0. From `startpos`. */
function compareBoundary(line: Buffer, startpos: number, boundary: Buffer): number {
  if (line.length < boundary.length + 3 + startpos || line.length > boundary.length + 6 + startpos) return 0;
  for (let i = 0; i < boundary.length; i++) if (line[i + 2 + startpos] !== boundary[i]) return 0;
  let pos = 0;
  for (let i = boundary.length + 2 + startpos; i < line.length; i++) {
    const c = line[i];
    if (pos === 0 && (c === CR || c === LF)) return 1;
    if ((pos === 0 || pos === 1) && c !== DASH) return 0;
    if (pos === 2 && c !== CR && c !== LF) return 0;
    if (pos === 3 && c !== LF) return 0;
    pos++;
  }
  return 2;
}

/** The splitter itself: synchronous, fed piece by piece; see `splitMime`. */
export class MimeSplitter {
  #node: MimeNode;
  #state = State.Head;
  /** Multiparts entered, innermost last (the message itself first). */
  readonly #tree: MimeNode[] = [];
  #parts = 1;
  /** Input not yet dealt with: a partial header line, or a body line that may be a boundary. */
  #pending: Buffer = EMPTY;
  /** In a body: the line end of the last line, given out only once the next line is no boundary. */
  #held: Buffer = EMPTY;
  /** In a body: the line being read was partly given out already (it is no boundary). */
  #midLine = false;
  #out: SplitItem[] = [];
  #failed: MimeError | undefined;

  constructor() {
    this.#node = new MimeNode(undefined);
    this.#tree.push(this.#node);
  }

  /**
   * Feeds the next piece of input; returns the parts and body slices it
   * completes. After a MimeError the items before it are returned and
   * `error` is set; further input is ignored.
   */
  write(chunk: Buffer): SplitItem[] {
    if (this.#failed) return [];
    const data = this.#pending.length ? Buffer.concat([this.#pending, chunk]) : chunk;
    this.#pending = EMPTY;
    this.#run(data, false);
    return this.#take();
  }

  /** Ends the input; returns what the last piece completes. */
  end(): SplitItem[] {
    if (this.#failed) return [];
    const data = this.#pending;
    this.#pending = EMPTY;
    this.#run(data, true);
    return this.#take();
  }

  get error(): MimeError | undefined {
    return this.#failed;
  }

  #take(): SplitItem[] {
    const out = this.#out;
    this.#out = [];
    return out;
  }

  #run(data: Buffer, final: boolean): void {
    try {
      let at = 0;
      while (at >= 0) at = this.#state === State.Head ? this.#head(data, at, final) : this.#body(data, at, final);
    } catch (err) {
      if (!(err instanceof MimeError)) throw err;
      this.#failed = err;
    }
  }

  /** Header lines from `at`; returns where the body starts, or -1 when the input is used up. */
  #head(data: Buffer, at: number, final: boolean): number {
    while (this.#state === State.Head) {
      const lf = data.indexOf(LF, at);
      if (lf === -1) {
        const rest = data.subarray(at);
        // (A short rest may still be a boundary line, which is no header.)
        if (this.#node.headerLength + rest.length > MAX_HEAD && rest.length > this.#longestBoundaryLine()) throw new MimeError('a header block is larger than 1 MiB');
        if (final) this.#line(rest, true);
        else this.#pending = rest;
        return -1;
      }
      this.#line(data.subarray(at, lf + 1), false);
      at = lf + 1;
    }
    return at;
  }

  /** One whole line (or the last, unterminated one) outside the fast body path. */
  #line(line: Buffer, final: boolean): void {
    const boundary = this.#checkBoundary(line);
    if (boundary) {
      this.#switch(boundary);
      return;
    }
    const node = this.#node;
    if (this.#state === State.Head) {
      node.headerChunks.push(line);
      node.headerLength += line.length;
      if (node.headerLength > MAX_HEAD) throw new MimeError('a header block is larger than 1 MiB');
      const blank = (line.length === 1 && line[0] === LF) || (line.length === 2 && line[0] === CR && line[1] === LF);
      if (final || blank) this.#headersDone(node);
      return;
    }
    this.#emit(line);
  }

  #headersDone(node: MimeNode): void {
    node.parseHeaders();
    this.#out.push(node);
    this.#state = State.Body;
    this.#held = EMPTY;
    this.#midLine = false;
    if (node.multipart && node.boundary) this.#tree.push(node);
  }

  /** The longest line #checkBoundary may take for a boundary. */
  #longestBoundaryLine(): number {
    const { boundary, parentBoundary } = this.#node;
    return Math.max(boundary ? boundary.length : 0, parentBoundary ? parentBoundary.length : 0) + 8;
  }

  /** 1 next part, 2 end of this multipart, 3 next sibling, 4 end of the parent; 0: no boundary. */
  #checkBoundary(line: Buffer): number {
    let startpos = 0;
    if (line.length >= 1 && (line[0] === CR || line[0] === LF)) {
      startpos++;
      if (line.length >= 2 && (line[0] === CR || line[1] === LF)) startpos++;
    }
    if (line.length < 4 || line[startpos] !== DASH || line[startpos + 1] !== DASH) return 0;
    const node = this.#node;
    let found: number;
    if (node.boundary && (found = compareBoundary(line, startpos, node.boundary))) return found;
    if (node.parentBoundary && (found = compareBoundary(line, startpos, node.parentBoundary))) return found + 2;
    return 0;
  }

  #switch(boundary: number): void {
    this.#held = EMPTY;
    this.#midLine = false;
    switch (boundary) {
      case 1:
        this.#newNode(this.#node);
        break;
      case 2:
        // The epilogue of this multipart follows.
        break;
      case 3:
        this.#newNode(this.#node.parent);
        break;
      case 4: {
        const node = this.#node;
        if (node.headerLength && !node.headers) {
          // A header block cut off by the closing boundary: a part without a body.
          node.parseHeaders();
          this.#out.push(node);
        }
        this.#node = this.#tree.pop() ?? node;
        this.#state = State.Body;
        break;
      }
    }
  }

  #newNode(parent: MimeNode | undefined): void {
    this.#node = new MimeNode(parent);
    this.#state = State.Head;
    if (++this.#parts > MAX_PARTS) throw new MimeError(`more than ${MAX_PARTS} parts`);
  }

  /** Body bytes of the current part (dropped in a multipart's preamble and epilogue). */
  #emit(value: Buffer): void {
    if (!value.length || this.#node.multipart) return;
    this.#out.push({ type: 'body', node: this.#node, value });
  }

  /** Gives out the held line end, then `data[from, to)`. */
  #emitRange(data: Buffer, from: number, to: number): void {
    if (this.#held.length) {
      this.#emit(this.#held);
      this.#held = EMPTY;
    }
    if (to > from) this.#emit(data.subarray(from, to));
  }

  /**
   * Body bytes from `at` (a line start, unless `#midLine`). Returns where the
   * next part's header starts after a boundary, or -1 when the input is used up.
   */
  #body(data: Buffer, at: number, final: boolean): number {
    const node = this.#node;
    const own = node.boundary;
    const parent = node.parentBoundary;
    if (!own && !parent) {
      // Nothing can end this body: everything to the end of the input is body.
      this.#emitRange(data, at, data.length);
      return -1;
    }
    const maxLine = Math.max(own ? own.length : 0, parent ? parent.length : 0) + 6;
    const start = at;
    if (this.#midLine) {
      const lf = data.indexOf(LF, at);
      if (lf === -1) {
        this.#emitToEnd(data, start, final);
        return -1;
      }
      this.#midLine = false;
      at = lf + 1;
    }
    for (;;) {
      // The next line that starts with `--`.
      let c: number;
      if (data[at] === DASH && data[at + 1] === DASH) c = at;
      else {
        const nl = data.indexOf(NL_DASHES, at);
        c = nl === -1 ? -1 : nl + 1;
      }
      if (c === -1) break;
      const lf = data.indexOf(LF, c);
      const end = lf === -1 ? data.length : lf + 1;
      if (end - c <= maxLine) {
        if (lf === -1 && !final) {
          // Maybe a boundary, maybe not: wait for the rest of the line.
          this.#holdFrom(data, start, c);
          return -1;
        }
        const boundary = this.#checkBoundary(data.subarray(c, end));
        if (boundary) {
          this.#endBody(data, start, c);
          this.#switch(boundary);
          return end < data.length || !final ? end : -1;
        }
      }
      if (lf === -1) {
        // A long unterminated line: no boundary; the rest of it is body too.
        this.#emitToEnd(data, start, final);
        return -1;
      }
      at = lf + 1;
    }
    // No boundary in what is left. Keep back what may start one: the last line end, and a lone `-` after it.
    if (final) {
      this.#emitRange(data, start, data.length);
      return -1;
    }
    const last = data.lastIndexOf(LF);
    if (last < start) {
      // No line end at all since `start`.
      if (data.length - start === 1 && data[start] === DASH) this.#holdFrom(data, start, start);
      else this.#emitToEnd(data, start, false);
      return -1;
    }
    const tail = data.length - (last + 1);
    if (tail === 0 || (tail === 1 && data[last + 1] === DASH)) this.#holdFrom(data, start, last + 1);
    else this.#emitToEnd(data, start, false);
    return -1;
  }

  /**
   * Gives out everything from `start` up to the middle of the line the input
   * ends in (no boundary, whatever follows) but a last CR: it may start the
   * line end before a boundary, which is not body.
   */
  #emitToEnd(data: Buffer, start: number, final: boolean): void {
    let to = data.length;
    if (!final && to > start && data[to - 1] === CR) to--;
    this.#emitRange(data, start, to);
    if (to < data.length) this.#pending = data.subarray(to);
    this.#midLine = !final && data.length > start;
  }

  /** Gives out the body before the line at `c` except its line end (held), and keeps the line itself. */
  #holdFrom(data: Buffer, start: number, c: number): void {
    if (c > start) {
      const brk = c - 1 > start && data[c - 2] === CR ? 2 : 1;
      this.#emitRange(data, start, c - brk);
      this.#held = data.subarray(c - brk, c);
    }
    this.#pending = data.subarray(c);
  }

  /** Gives out the body before the boundary line at `c`, without the line end before it. */
  #endBody(data: Buffer, start: number, c: number): void {
    if (c > start) {
      const brk = c - 1 > start && data[c - 2] === CR ? 2 : 1;
      this.#emitRange(data, start, c - brk);
    }
    this.#held = EMPTY;
  }
}

/**
 * Splits a message read from `source` (a stream or any byte iterable). The
 * source is read as the items are pulled; its errors are thrown as they are;
 * a MimeError is thrown after the items before it.
 */
export async function* splitMime(source: AsyncIterable<Buffer | string>): AsyncGenerator<SplitItem> {
  const splitter = new MimeSplitter();
  for await (const chunk of source) {
    const items = splitter.write(typeof chunk === 'string' ? Buffer.from(chunk) : chunk);
    for (const item of items) yield item;
    if (splitter.error) throw splitter.error;
  }
  for (const item of splitter.end()) yield item;
  if (splitter.error) throw splitter.error;
}
