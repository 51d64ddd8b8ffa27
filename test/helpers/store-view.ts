import type { Db } from '../../src/store/db.js';
import { toEventRecord, type EventRecord, type EventRow } from '../../src/store/events.js';
import { toMessageRecord, toRecipientRecord, type MessageRecord, type MessageRow, type RecipientRecord, type RecipientRow } from '../../src/store/messages.js';

/**
 * A synchronous read-only view of the relay's messages, recipients and
 * events for test assertions (waitFor predicates are synchronous). It reads
 * the SQLite file the way an auditor would, through the same connection the
 * relay writes on, so it sees every committed write at once. The relay itself
 * reads through the async repositories (src/store/).
 */
export interface StoreView {
  getMessage(id: string): MessageRecord | undefined;
  getRecipients(messageId: string): RecipientRecord[];
  events(messageId: string): EventRecord[];
}

export function storeView(backend: { db: Db }): StoreView {
  const { db } = backend;
  return {
    getMessage(id) {
      const row = db.prepare('SELECT * FROM messages WHERE id = ?').get(id) as MessageRow | undefined;
      return row ? toMessageRecord(row) : undefined;
    },
    getRecipients(messageId) {
      return (db.prepare('SELECT * FROM recipients WHERE message_id = ? ORDER BY idx').all(messageId) as RecipientRow[]).map(toRecipientRecord);
    },
    events(messageId) {
      return (db.prepare('SELECT * FROM events WHERE message_id = ? ORDER BY seq').all(messageId) as EventRow[]).map(toEventRecord);
    },
  };
}
