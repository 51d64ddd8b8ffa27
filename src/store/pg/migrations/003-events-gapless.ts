import type { PgMigration } from './index.js';

/**
 * Version 3: the audit chain's seq without gaps.
 *
 * Schema 001 took each record's seq from the sequence `events_seq`. A
 * sequence is not transactional: a transaction that appended an event and
 * then rolled back (a later statement failed, the node died before COMMIT)
 * used up its number, the next writer took the one after it, and the chain
 * had a hole that `zegel audit verify` reports as a deleted record. SQLite
 * has no such hole (its AUTOINCREMENT counter rolls back with the
 * transaction).
 *
 * The trigger now takes seq as one more than the last record (or, when a
 * retention cut removed every record, the anchor's seq), read under the
 * chain lock it holds until commit: a rolled-back append leaves nothing
 * behind, not even a number. Same lock, same hash; `events_seq` stays (its
 * grants are in 001) but is no longer used.
 */
export const eventsGapless: PgMigration = {
  version: 3,
  name: 'events-gapless',
  sql: `
CREATE OR REPLACE FUNCTION zegel_events_chain() RETURNS trigger LANGUAGE plpgsql AS $fn$
DECLARE
  last_seq bigint;
  prev text;
BEGIN
  IF current_setting('transaction_isolation') <> 'read committed' THEN
    RAISE EXCEPTION 'events are appended at READ COMMITTED only, not %', current_setting('transaction_isolation');
  END IF;
  -- one chain per database: writers take turns from here to their commit;
  -- the reads below run after the lock is granted, so they see the commit of
  -- the writer before (its lock goes only once its rows are visible)
  PERFORM pg_advisory_xact_lock(1514489676, 2);
  SELECT e.seq, e.hash INTO last_seq, prev FROM events e ORDER BY e.seq DESC LIMIT 1;
  IF last_seq IS NULL THEN
    SELECT a.seq, a.hash INTO last_seq, prev FROM audit_anchor a WHERE a.id = 1;
  END IF;
  NEW.seq := COALESCE(last_seq, 0) + 1;
  -- GENESIS_HASH (src/audit/chain.ts)
  NEW.prev_hash := COALESCE(prev, '0000000000000000000000000000000000000000000000000000000000000000');
  NEW.hash := encode(sha256(decode(NEW.prev_hash, 'hex') || convert_to(
    '[' || NEW.seq::text || ',' || NEW.at::text
    || ',' || COALESCE(to_json(NEW.message_id)::text, 'null')
    || ',' || COALESCE(to_json(NEW.recipient)::text, 'null')
    || ',' || to_json(NEW.type)::text
    || ',' || to_json(NEW.detail)::text || ']', 'UTF8')), 'hex');
  RETURN NEW;
END
$fn$;
`,
};
