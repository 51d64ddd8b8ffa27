import { CodeStore } from './codes.js';
import type { Db } from './db.js';
import { LinkStore } from './links.js';
import { ReplyStore } from './replies.js';
import { SecureStore } from './secure.js';
import { SessionStore } from './sessions.js';
import type { Public } from './store.js';

/**
 * The repositories of secure delivery, one per table group, on one SQLite
 * connection: secure_messages (secure.ts), secure_links (links.ts),
 * reader_sessions (sessions.ts), one_time_codes (codes.ts) and
 * secure_replies (replies.ts). src/secure/ uses them; nothing else holds
 * SQL for these tables.
 */
export interface SecureRepositories {
  secure: Public<SecureStore>;
  links: Public<LinkStore>;
  sessions: Public<SessionStore>;
  codes: Public<CodeStore>;
  replies: Public<ReplyStore>;
}

export function secureRepositories(db: Db): SecureRepositories {
  const links = new LinkStore(db);
  return { secure: new SecureStore(db, links), links, sessions: new SessionStore(db), codes: new CodeStore(db), replies: new ReplyStore(db) };
}
