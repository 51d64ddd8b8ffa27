import type { SecureContext } from './context.js';
import { LinkService } from './links.js';
import { ReplyService } from './replies.js';

export type { SecureContext } from './context.js';
export type { LinkView } from './links.js';

/** What the reader (src/reader/) asks of the secure-delivery domain. */
export interface SecureReader {
  links: LinkService;
  replies: ReplyService;
}

export function createSecureReader(ctx: SecureContext): SecureReader {
  return { links: new LinkService(ctx), replies: new ReplyService(ctx) };
}
