import type { SecureRepositories } from '../store/secure-repositories.js';

/**
 * Which conversation a new secure message belongs to: the sender's answer to
 * a reader reply names the reply's Message-ID (`<replyId@host>`, see
 * src/secure/reply-mail.ts) or the original's in In-Reply-To/References. The first
 * Message-ID found (In-Reply-To first, then References from the newest back)
 * that is a reply's or a secure message's original decides; none: undefined
 * (the message starts its own thread).
 */

const MSG_ID = /<[^<>\s]{1,998}>/g;
const REPLY_LOCAL = /^<([A-Za-z0-9_-]{22})@[^<>\s]*>$/;

/** The values of one header field in a raw header block (unfolded), or []. */
function fieldValues(headerBlock: string, name: string): string[] {
  const unfolded = headerBlock.replace(/\r?\n[ \t]+/g, ' ');
  const out: string[] = [];
  const re = new RegExp(`^${name}[ \\t]*:(.*)$`, 'gim');
  for (let m = re.exec(unfolded); m; m = re.exec(unfolded)) out.push(m[1]!);
  return out;
}

/** Message-IDs named by In-Reply-To and References, most specific first, at most 50. */
export function referencedIds(headerBlock: Buffer | string): string[] {
  const text = typeof headerBlock === 'string' ? headerBlock : headerBlock.toString('latin1');
  const inReplyTo = fieldValues(text, 'In-Reply-To').flatMap((v) => v.match(MSG_ID) ?? []);
  const references = fieldValues(text, 'References').flatMap((v) => v.match(MSG_ID) ?? []).reverse();
  return [...new Set([...inReplyTo, ...references])].slice(0, 50);
}

export class ThreadFinder {
  readonly #repos: Pick<SecureRepositories, 'replies' | 'secure'>;

  constructor(repos: Pick<SecureRepositories, 'replies' | 'secure'>) {
    this.#repos = repos;
  }

  /** The thread id of the first referenced reply or original, or undefined. */
  async find(headerBlock: Buffer | string): Promise<string | undefined> {
    for (const id of referencedIds(headerBlock)) {
      const local = REPLY_LOCAL.exec(id)?.[1];
      const replied = local ? await this.#repos.replies.messageOf(local) : undefined;
      const message = replied ? await this.#repos.secure.get(replied) : undefined;
      if (message) return message.thread_id ?? message.id;
      const thread = await this.#repos.secure.threadOfOrigin(id);
      if (thread) return thread;
    }
    return undefined;
  }
}
