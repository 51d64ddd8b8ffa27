import type crypto from 'node:crypto';
import type Database from 'better-sqlite3';
import { GENESIS_HASH, chainHash, type ChainFields } from './chain.js';
import { verifyCheckpoint, type CheckpointRow } from './checkpoint.js';

interface EventRow extends ChainFields {
  prev_hash: string | null;
  hash: string | null;
}

export interface VerifyResult {
  ok: boolean;
  records: number;
  checkpoints: number;
  lastCheckpoint: CheckpointRow | undefined;
  /** Records after the last checkpoint: a cut there is not detectable. */
  unsigned: number;
  /** The first problem found, one line; undefined when intact. */
  problem: string | undefined;
  /** The seq of the first bad record, when the problem is a record. */
  badSeq?: number | undefined;
}

/**
 * Walks the chain from the anchor (or the genesis hash) and then every
 * checkpoint; stops at the first problem. Reads in one snapshot.
 */
export function verifyChain(db: Database.Database, publicKey: crypto.KeyObject): VerifyResult {
  return db.transaction(() => walk(db, publicKey))();
}

function walk(db: Database.Database, publicKey: crypto.KeyObject): VerifyResult {
  const rows = db.prepare('SELECT seq, at, message_id, recipient, type, detail, prev_hash, hash FROM events ORDER BY seq').all() as EventRow[];
  const checkpoints = db.prepare('SELECT id, seq, hash, at, key_id, signature FROM audit_checkpoints ORDER BY id').all() as CheckpointRow[];
  const anchor = db.prepare('SELECT seq, hash FROM audit_anchor WHERE id = 1').get() as { seq: number; hash: string } | undefined;
  const lastCheckpoint = checkpoints.at(-1);
  const result = (problem: string | undefined, badSeq?: number): VerifyResult => ({
    ok: problem === undefined,
    records: rows.length,
    checkpoints: checkpoints.length,
    lastCheckpoint,
    unsigned: lastCheckpoint ? rows.filter((r) => r.seq > lastCheckpoint.seq).length : rows.length,
    problem,
    badSeq,
  });

  // where a record's contents belong: their own hashes name another seq (moved with them), or another record's hashes fit them
  const belongsAt = (r: EventRow): number | undefined => {
    for (const other of rows) {
      if (other.seq === r.seq) continue;
      if (r.prev_hash !== null && chainHash(r.prev_hash, { ...r, seq: other.seq }) === r.hash) return other.seq;
      if (other.prev_hash !== null && chainHash(other.prev_hash, { ...r, seq: other.seq }) === other.hash) return other.seq;
    }
    return undefined;
  };

  let prevHash = anchor?.hash ?? GENESIS_HASH;
  let prevSeq = anchor?.seq ?? 0;
  const hashAt = new Map<number, string>();
  if (anchor) hashAt.set(anchor.seq, anchor.hash);
  for (const r of rows) {
    if (r.seq <= prevSeq) return result(`order broken at record ${r.seq}: it comes before the anchor or a previous record (${prevSeq})`, r.seq);
    if (r.seq !== prevSeq + 1) return result(`missing record between ${prevSeq} and ${r.seq} (deleted?)`, r.seq);
    if (r.hash === null || r.prev_hash === null) return result(`record ${r.seq}: not chained (no hash)`, r.seq);
    if (r.prev_hash !== prevHash) {
      const at = belongsAt(r);
      if (at !== undefined) return result(`order broken at record ${r.seq}: its contents belong at record ${at} (reordered?)`, r.seq);
      return result(`record ${r.seq}: link to record ${prevSeq} broken (prev_hash does not match; edited or deleted before it?)`, r.seq);
    }
    if (chainHash(r.prev_hash, r) !== r.hash) {
      const at = belongsAt(r);
      if (at !== undefined) return result(`order broken at record ${r.seq}: its contents belong at record ${at} (reordered?)`, r.seq);
      return result(`record ${r.seq}: hash mismatch (edited?)`, r.seq);
    }
    hashAt.set(r.seq, r.hash);
    prevHash = r.hash;
    prevSeq = r.seq;
  }

  let anchorSigned = false;
  for (const cp of checkpoints) {
    const when = new Date(cp.at).toISOString();
    if (!verifyCheckpoint(cp, publicKey)) return result(`checkpoint ${cp.id} (record ${cp.seq}, ${when}): signature invalid (rewritten, or signed with another key?)`);
    if (anchor && cp.seq === anchor.seq && cp.hash === anchor.hash) anchorSigned = true;
    if (anchor && cp.seq < anchor.seq) continue; // removed by a retention purge; the anchor carries on from a later one
    if (cp.seq > prevSeq) return result(`chain ends at record ${prevSeq} but checkpoint ${cp.id} (${when}) names record ${cp.seq} (truncated?)`, prevSeq + 1);
    if (hashAt.get(cp.seq) !== cp.hash) return result(`checkpoint ${cp.id} (${when}): record ${cp.seq} does not have the hash it signed (chain rewritten?)`, cp.seq);
  }
  // records removed from the start only by a retention purge, which signs the last record it removes
  if (anchor && !anchorSigned) return result(`the chain starts after record ${anchor.seq}, but no signed checkpoint names that record (records removed from the start?)`, anchor.seq + 1);
  return result(undefined);
}
