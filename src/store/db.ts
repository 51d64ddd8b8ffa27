import Database from 'better-sqlite3';
import fs from 'node:fs';
import path from 'node:path';

export type Db = Database.Database;

/** Schema migrations, applied in order; `user_version` records how far a file is. */
const MIGRATIONS: string[] = [
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
];

/**
 * Opens the SQLite database with the durability settings the relay's promise
 * rests on: WAL with synchronous=FULL, so a committed transaction survives a
 * power cut, not only a process crash.
 */
export function openDb(dataDir: string): Db {
  fs.mkdirSync(dataDir, { recursive: true });
  const db = new Database(path.join(dataDir, 'zegel.db'));
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = FULL');
  db.pragma('foreign_keys = ON');
  db.pragma('busy_timeout = 5000');
  const version = db.pragma('user_version', { simple: true }) as number;
  for (let i = version; i < MIGRATIONS.length; i++) {
    db.transaction(() => {
      db.exec(MIGRATIONS[i]!);
      db.pragma(`user_version = ${i + 1}`);
    })();
  }
  return db;
}
