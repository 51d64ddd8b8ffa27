import type { Db } from '../../src/store/db.js';
import type { EventRecord, EventType } from '../../src/store/events.js';
import type { MessageRecord, RecipientRecord } from '../../src/store/messages.js';

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

const opt = <T>(value: T | null): T | undefined => (value === null ? undefined : value);

export function storeView(backend: { db: Db }): StoreView {
  const { db } = backend;
  return {
    getMessage(id) {
      const row = db.prepare('SELECT * FROM messages WHERE id = ?').get(id) as Record<string, any> | undefined;
      if (!row) return undefined;
      return {
        id: row.id,
        receivedAt: row.received_at,
        mailFrom: row.mail_from,
        clientIp: opt(row.client_ip),
        helo: opt(row.helo),
        size: row.size,
        messageId: opt(row.message_id),
        origin: row.origin,
        envId: opt(row.env_id),
        ret: opt(row.ret),
        state: row.state,
        spool: row.spool !== null,
      };
    },
    getRecipients(messageId) {
      return (db.prepare('SELECT * FROM recipients WHERE message_id = ? ORDER BY idx').all(messageId) as Array<Record<string, any>>).map((row) => ({
        messageId: row.message_id,
        idx: row.idx,
        address: row.address,
        notify: row.notify ? (row.notify as string).split(',') : undefined,
        orcpt: opt(row.orcpt),
        decision: opt(row.decision),
        state: row.state,
        attempts: row.attempts,
        lastReply: opt(row.last_reply),
        remoteMta: opt(row.remote_mta),
        updatedAt: row.updated_at,
      }));
    },
    events(messageId) {
      return (db.prepare('SELECT * FROM events WHERE message_id = ? ORDER BY seq').all(messageId) as Array<{ seq: number; at: number; message_id: string; recipient: string | null; type: EventType; detail: string }>).map(
        (row) => ({ seq: row.seq, at: row.at, messageId: row.message_id, recipient: opt(row.recipient), type: row.type, detail: JSON.parse(row.detail) as Record<string, unknown> }),
      );
    },
  };
}
