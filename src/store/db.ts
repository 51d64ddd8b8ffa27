import Database from 'better-sqlite3';
import path from 'node:path';
import { GENESIS_HASH, chainEventsSync, registerAuditFunctions } from '../audit/chain.js';
import { chmodPrivateIfExistsSync, ensurePrivateDirSync, ensurePrivateFileSync } from './file-modes.js';

export type Db = Database.Database;

/** Schema migrations, applied in order; `user_version` records how far a file is. A function runs SQL and JS in the same transaction. */
const MIGRATIONS: Array<string | ((db: Db) => void)> = [
  `
  CREATE TABLE messages (
    id           TEXT PRIMARY KEY,
    received_at  INTEGER NOT NULL,
    mail_from    TEXT NOT NULL,
    client_ip    TEXT,
    helo         TEXT,
    size         INTEGER NOT NULL,
    message_id   TEXT,
    origin       TEXT NOT NULL,
    env_id       TEXT,
    ret          TEXT,
    state        TEXT NOT NULL,
    spool        TEXT
  );
  CREATE TABLE recipients (
    message_id   TEXT NOT NULL REFERENCES messages(id),
    idx          INTEGER NOT NULL,
    address      TEXT NOT NULL,
    notify       TEXT,
    orcpt        TEXT,
    decision     TEXT,
    state        TEXT NOT NULL,
    attempts     INTEGER NOT NULL DEFAULT 0,
    last_reply   TEXT,
    remote_mta   TEXT,
    updated_at   INTEGER NOT NULL,
    PRIMARY KEY (message_id, idx)
  );
  CREATE INDEX recipients_pending ON recipients(message_id, state);
  CREATE TABLE events (
    seq          INTEGER PRIMARY KEY AUTOINCREMENT,
    at           INTEGER NOT NULL,
    message_id   TEXT,
    recipient    TEXT,
    type         TEXT NOT NULL,
    detail       TEXT NOT NULL
  );
  CREATE INDEX events_message ON events(message_id);
  CREATE TRIGGER events_no_update BEFORE UPDATE ON events
    BEGIN SELECT RAISE(ABORT, 'events are append-only'); END;
  CREATE TRIGGER events_no_delete BEFORE DELETE ON events
    BEGIN SELECT RAISE(ABORT, 'events are append-only'); END;
  CREATE TABLE jobs (
    id           TEXT PRIMARY KEY,
    kind         TEXT NOT NULL,
    payload      TEXT NOT NULL,
    run_at       INTEGER NOT NULL,
    attempts     INTEGER NOT NULL DEFAULT 0,
    state        TEXT NOT NULL,
    created_at   INTEGER NOT NULL
  );
  CREATE INDEX jobs_ready ON jobs(kind, state, run_at);
  `,
  // REPLACE INTO deletes and re-inserts without firing DELETE triggers
  `
  CREATE TRIGGER events_no_replace BEFORE INSERT ON events
    WHEN EXISTS (SELECT 1 FROM events WHERE seq = NEW.seq)
    BEGIN SELECT RAISE(ABORT, 'events are append-only'); END;
  `,
  // the due-jobs query: kind = ? AND run_at <= ? ORDER BY run_at, created_at, without a sort
  `
  DROP INDEX jobs_ready;
  CREATE INDEX jobs_due ON jobs(kind, run_at, created_at);
  `,
  // secure delivery (DESIGN "Key schedule"): no content and no K_link is ever stored here
  `
  CREATE TABLE secure_messages (
    id           TEXT PRIMARY KEY,            -- 128-bit base64url; part of the HKDF info
    queue_id     TEXT NOT NULL UNIQUE REFERENCES messages(id),
    sender       TEXT NOT NULL,               -- envelope sender: forgot-code notices, status
    created_at   INTEGER NOT NULL,
    expires_at   INTEGER NOT NULL,
    state        TEXT NOT NULL,               -- active | revoked | expired | purged
    body_blob    TEXT,                        -- blob id of the encrypted SecureContent; NULL once purged
    blobs        TEXT NOT NULL                -- JSON [{id, bytes}] of every ciphertext blob
  );
  CREATE TABLE secure_links (
    id             TEXT PRIMARY KEY,          -- the <id> of /m/<id>, 128-bit base64url
    message_id     TEXT NOT NULL REFERENCES secure_messages(id),
    recipient_idx  INTEGER NOT NULL,          -- recipients.idx of the queued message
    address        TEXT NOT NULL,
    method         TEXT NOT NULL,             -- none | access-code | email-code | sms-code
    phone          TEXT,                      -- E.164, sms-code only
    language       TEXT NOT NULL,             -- nl | en
    wrap           BLOB,                      -- W_r; NULL once revoked or expired
    k_srv          BLOB,                      -- K_srv_r; NULL once revoked or expired
    state          TEXT NOT NULL,             -- active | revoked | expired | replaced
    created_at     INTEGER NOT NULL,
    first_opened_at INTEGER,
    last_opened_at  INTEGER,
    failures       INTEGER NOT NULL DEFAULT 0, -- wrong tries since the last lock or success
    locked_until   INTEGER
  );
  CREATE INDEX secure_links_message ON secure_links(message_id, recipient_idx);
  CREATE TABLE reader_sessions (
    id_hash      TEXT PRIMARY KEY,            -- SHA-256 of the cookie value, hex
    link_id      TEXT NOT NULL REFERENCES secure_links(id),
    created_at   INTEGER NOT NULL,
    verified_at  INTEGER,
    expires_at   INTEGER NOT NULL
  );
  CREATE INDEX reader_sessions_link ON reader_sessions(link_id);
  CREATE TABLE one_time_codes (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    link_id      TEXT NOT NULL REFERENCES secure_links(id),
    session_hash TEXT NOT NULL,
    channel      TEXT NOT NULL,               -- email | sms
    code_hash    TEXT NOT NULL,               -- HMAC-SHA256(relay secret, link ‖ session ‖ code), hex
    created_at   INTEGER NOT NULL,
    expires_at   INTEGER NOT NULL,
    state        TEXT NOT NULL                -- live | used | void
  );
  CREATE INDEX one_time_codes_live ON one_time_codes(link_id, session_hash, state);
  CREATE TABLE directory (
    target       TEXT PRIMARY KEY,            -- lower-case address, or @domain
    method       TEXT,                        -- NULL: not set at this level
    phone        TEXT,
    access_code  TEXT,                        -- argon2id hash
    language     TEXT,
    updated_at   INTEGER NOT NULL
  );
  `,
  // mails the relay made itself, so that a verified X-Zegel-Origin counts once, for the recipients it was made for
  `
  CREATE TABLE relay_mail (
    message_id   TEXT PRIMARY KEY,            -- the Message-ID header the origin HMAC covers
    recipients   TEXT NOT NULL,               -- JSON array of lower-case envelope recipients
    created_at   INTEGER NOT NULL,
    returned_as  TEXT                         -- queue id of the one message that came back with it
  );
  `,
  // sender controls and the secure conversation (revoke, expiry, purge, receipt and status page, replies)
  `
  ALTER TABLE secure_messages ADD COLUMN revoke_at INTEGER;          -- scheduled revocation of every link
  ALTER TABLE secure_messages ADD COLUMN purged_at INTEGER;          -- blobs and keys destroyed
  ALTER TABLE secure_messages ADD COLUMN thread_id TEXT;             -- conversation: the first secure message's id
  ALTER TABLE secure_messages ADD COLUMN origin_message_id TEXT;     -- Message-ID of the original, for threading
  ALTER TABLE secure_messages ADD COLUMN status_id TEXT;             -- the sender's status link id (/s/<id>)
  ALTER TABLE secure_messages ADD COLUMN status_token_hash TEXT;     -- SHA-256 of the status token, hex
  ALTER TABLE secure_messages ADD COLUMN sender_wrap BLOB;           -- W_s: K wrapped for the sender's status link
  ALTER TABLE secure_messages ADD COLUMN sender_k_srv BLOB;          -- K_srv_s
  CREATE UNIQUE INDEX secure_messages_status ON secure_messages(status_id);
  CREATE INDEX secure_messages_thread ON secure_messages(thread_id);
  CREATE INDEX secure_messages_origin ON secure_messages(origin_message_id);
  CREATE INDEX secure_messages_expiry ON secure_messages(state, expires_at);
  ALTER TABLE secure_links ADD COLUMN revoke_at INTEGER;             -- scheduled revocation of this link
  ALTER TABLE secure_links ADD COLUMN notification_id TEXT;          -- queue id of its notification (delivered / failed)
  ALTER TABLE secure_links ADD COLUMN replaced_by TEXT;              -- a resent link's successor
  CREATE TABLE secure_replies (
    id            TEXT PRIMARY KEY,           -- 128-bit base64url
    message_id    TEXT NOT NULL REFERENCES secure_messages(id),
    link_id       TEXT NOT NULL REFERENCES secure_links(id),
    created_at    INTEGER NOT NULL,
    blob          TEXT,                       -- the reply copy the browser encrypted under K; NULL once purged
    queue_id      TEXT                        -- the plain copy handed to the delivery queue (removed once delivered)
  );
  CREATE INDEX secure_replies_message ON secure_replies(message_id);
  `,
  // the purge job's due-revocation scans
  `
  CREATE INDEX secure_links_revoke ON secure_links(revoke_at) WHERE revoke_at IS NOT NULL;
  CREATE INDEX secure_messages_revoke ON secure_messages(revoke_at) WHERE revoke_at IS NOT NULL;
  `,
  // the audit trail (src/audit): a hash chain over events, signed chain heads, the anchor a retention purge leaves
  (db) => {
    db.exec(`
      DROP TRIGGER events_no_update;
      ALTER TABLE events ADD COLUMN prev_hash TEXT;
      ALTER TABLE events ADD COLUMN hash TEXT;
      CREATE TABLE audit_anchor (
        id           INTEGER PRIMARY KEY CHECK (id = 1),
        seq          INTEGER NOT NULL,            -- the last record removed from the start of the chain
        hash         TEXT NOT NULL,               -- its hash: the prev_hash of the first record kept
        at           INTEGER NOT NULL
      );
      CREATE TABLE audit_checkpoints (
        id           INTEGER PRIMARY KEY AUTOINCREMENT,
        seq          INTEGER NOT NULL,            -- the chain head this checkpoint signs
        hash         TEXT NOT NULL,
        at           INTEGER NOT NULL,
        key_id       TEXT NOT NULL,               -- SHA-256 of the public key (SPKI DER), hex, first 16
        signature    TEXT NOT NULL                -- Ed25519 over checkpointBytes (src/audit/checkpoint.ts), base64
      );
      CREATE TRIGGER audit_checkpoints_no_update BEFORE UPDATE ON audit_checkpoints
        BEGIN SELECT RAISE(ABORT, 'audit checkpoints are append-only'); END;
      CREATE TRIGGER audit_checkpoints_no_delete BEFORE DELETE ON audit_checkpoints
        BEGIN SELECT RAISE(ABORT, 'audit checkpoints are append-only'); END;
    `);
    chainEventsSync(db);
    // the only update an event may see: its hashes, once, by the chain trigger right after its insert
    db.exec(`
      CREATE TRIGGER events_no_update BEFORE UPDATE ON events
        WHEN OLD.hash IS NOT NULL OR NEW.seq IS NOT OLD.seq OR NEW.at IS NOT OLD.at OR NEW.message_id IS NOT OLD.message_id
          OR NEW.recipient IS NOT OLD.recipient OR NEW.type IS NOT OLD.type OR NEW.detail IS NOT OLD.detail
        BEGIN SELECT RAISE(ABORT, 'events are append-only'); END;
      CREATE TRIGGER events_chain AFTER INSERT ON events WHEN NEW.hash IS NULL
        BEGIN
          UPDATE events SET prev_hash = COALESCE(
              (SELECT e.hash FROM events e WHERE e.seq < NEW.seq ORDER BY e.seq DESC LIMIT 1),
              (SELECT a.hash FROM audit_anchor a WHERE a.id = 1),
              '${GENESIS_HASH}')
            WHERE seq = NEW.seq;
          UPDATE events SET hash = zegel_audit_hash(prev_hash, seq, at, message_id, recipient, type, detail) WHERE seq = NEW.seq;
        END;
    `);
  },
];

/** The database file's name under data.dir (with its `-wal` and `-shm` beside it). */
export const DB_FILE = 'zegel.db';

/**
 * The WAL is cut back to this size (bytes) when it is reset after a
 * checkpoint, so a burst does not leave a large file of stale page images
 * behind. Shredding does not rest on it: every shred truncates the WAL to
 * zero bytes (shred.ts).
 */
export const JOURNAL_SIZE_LIMIT = 4 * 1024 * 1024;

/**
 * Opens the SQLite database; the one opener of every process (the relay and
 * each CLI command), so that none forgets a setting the relay's promises rest on:
 *
 * - WAL with synchronous=NORMAL, and every write goes through a group
 *   committer that flushes the WAL (fdatasync) before any caller hears of
 *   its commit (group-commit.ts, wal-sync.ts): together what synchronous=FULL
 *   promises, a committed transaction survives a power cut, with the flush
 *   off the main thread;
 * - secure_delete=ON: deleted cells and freed pages are overwritten with
 *   zeros, so a shredded wrap or K_srv leaves no copy in the file's free
 *   space (the WAL is truncated after each shred, shred.ts);
 * - data.dir 0700 and the database, -wal and -shm 0600, whatever the umask:
 *   the file is created 0600 before SQLite opens it (SQLite gives the -wal
 *   and -shm the database file's mode), and all three are set to 0600 after.
 */
export function openDb(dataDir: string): Db {
  ensurePrivateDirSync(dataDir);
  const file = path.join(dataDir, DB_FILE);
  ensurePrivateFileSync(file);
  const db = new Database(file);
  try {
    db.pragma('journal_mode = WAL');
    db.pragma('synchronous = NORMAL');
    db.pragma('foreign_keys = ON');
    db.pragma('busy_timeout = 5000');
    db.pragma('secure_delete = ON');
    db.pragma(`journal_size_limit = ${JOURNAL_SIZE_LIMIT}`);
    if (db.pragma('secure_delete', { simple: true }) !== 1) throw new Error('SQLite refused secure_delete = ON');
    // the audit chain's hash runs in a trigger on every insert into events, from any connection opened here
    registerAuditFunctions(db);
    const version = db.pragma('user_version', { simple: true }) as number;
    for (let i = version; i < MIGRATIONS.length; i++) {
      db.transaction(() => {
        const migration = MIGRATIONS[i]!;
        if (typeof migration === 'string') db.exec(migration);
        else migration(db);
        db.pragma(`user_version = ${i + 1}`);
      })();
    }
    for (const suffix of ['-wal', '-shm']) chmodPrivateIfExistsSync(`${file}${suffix}`);
  } catch (err) {
    db.close();
    throw err;
  }
  return db;
}
