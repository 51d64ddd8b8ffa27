import type { ReplyCounts, ReplyRow } from '../store/replies.js';
import type { SecureContext } from './context.js';

/** A link's replies as the reader lists and serves them, and the counts reader.replyLimit is checked against. */
export class ReplyService {
  readonly #ctx: SecureContext;

  constructor(ctx: SecureContext) {
    this.#ctx = ctx;
  }

  /** The link's replies that still have their copy, oldest first. */
  list(linkId: string): Promise<ReplyRow[]> {
    return this.#ctx.repos.replies.ofLink(linkId);
  }

  get(replyId: string, linkId: string): Promise<ReplyRow | undefined> {
    return this.#ctx.repos.replies.get(replyId, linkId);
  }

  /** Every reply of the link (also one whose copy was purged since), and those after `since`. */
  counts(linkId: string, since: number): Promise<ReplyCounts> {
    return this.#ctx.repos.replies.counts(linkId, since);
  }
}
