import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import type Database from 'better-sqlite3';
import { ZegelError, isErrnoException } from '../errors.js';

/**
 * Signed chain heads. A checkpoint is (seq, hash, at) of the chain's last
 * record, signed with Ed25519; kept in the append-only `audit_checkpoints`
 * table. Someone who rewrites the whole chain with recomputed hashes cannot
 * make the checkpoints match without the private key; someone who cuts the
 * tail leaves a checkpoint that names a record no longer there.
 */

export const SIGNING_KEY_FILE = 'audit-signing.pem';

export interface CheckpointRow {
  id: number;
  seq: number;
  hash: string;
  at: number;
  key_id: string;
  signature: string;
}

/** The bytes a checkpoint's signature covers. */
export function checkpointBytes(cp: { seq: number; hash: string; at: number }): Buffer {
  return Buffer.from(`zegel-audit-checkpoint v1\n${cp.seq}\n${cp.hash}\n${cp.at}\n`, 'utf8');
}

/** SHA-256 of the public key's SPKI DER, hex, first 16 characters. */
export function keyId(key: crypto.KeyObject): string {
  const pub = key.type === 'private' ? crypto.createPublicKey(key) : key;
  return crypto.createHash('sha256').update(pub.export({ type: 'spki', format: 'der' })).digest('hex').slice(0, 16);
}

export function publicKeyPem(key: crypto.KeyObject): string {
  const pub = key.type === 'private' ? crypto.createPublicKey(key) : key;
  return pub.export({ type: 'spki', format: 'pem' }).toString();
}

function ed25519(key: crypto.KeyObject, file: string): crypto.KeyObject {
  if (key.asymmetricKeyType !== 'ed25519') throw new ZegelError('ZEGEL_AUDIT_KEY', `${file}: expected an Ed25519 key, got ${key.asymmetricKeyType ?? 'unknown'}`);
  return key;
}

/**
 * The signing key: `audit.signingKeyFile` (PEM, PKCS#8), or data.dir/audit-signing.pem,
 * made at the first start (mode 0600) when `create` is set. `created` tells the
 * caller to log that the public key belongs outside the data directory.
 */
export function loadSigningKey(options: { signingKeyFile?: string | undefined; dataDir: string; create: boolean }): { key: crypto.KeyObject; file: string; created: boolean } {
  const file = options.signingKeyFile ?? path.join(options.dataDir, SIGNING_KEY_FILE);
  try {
    return { key: ed25519(crypto.createPrivateKey(fs.readFileSync(file)), file), file, created: false };
  } catch (err) {
    if (!(isErrnoException(err) && err.code === 'ENOENT')) {
      if (err instanceof ZegelError) throw err;
      throw new ZegelError('ZEGEL_AUDIT_KEY', `${file}: not a readable PEM private key: ${(err as Error).message}`, { cause: err });
    }
    if (!options.create || options.signingKeyFile) throw new ZegelError('ZEGEL_AUDIT_KEY', `${file}: no audit signing key`, { cause: err });
  }
  const { privateKey } = crypto.generateKeyPairSync('ed25519');
  fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
  try {
    fs.writeFileSync(file, privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600, flag: 'wx' });
  } catch (err) {
    // another process made it first: use theirs
    if (isErrnoException(err) && err.code === 'EEXIST') return { key: ed25519(crypto.createPrivateKey(fs.readFileSync(file)), file), file, created: false };
    throw err;
  }
  return { key: privateKey, file, created: true };
}

/** A public key from a PEM file (SPKI; a private key file works too). */
export function loadPublicKey(file: string): crypto.KeyObject {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    throw new ZegelError('ZEGEL_AUDIT_KEY', `${file}: ${(err as Error).message}`, { cause: err });
  }
  try {
    const key = text.includes('PRIVATE KEY') ? crypto.createPublicKey(crypto.createPrivateKey(text)) : crypto.createPublicKey(text);
    return ed25519(key, file);
  } catch (err) {
    if (err instanceof ZegelError) throw err;
    throw new ZegelError('ZEGEL_AUDIT_KEY', `${file}: not a PEM public key: ${(err as Error).message}`, { cause: err });
  }
}

export function verifyCheckpoint(cp: CheckpointRow, publicKey: crypto.KeyObject): boolean {
  try {
    return crypto.verify(null, checkpointBytes(cp), publicKey, Buffer.from(cp.signature, 'base64'));
  } catch {
    return false;
  }
}

/**
 * Signs the current chain head into `audit_checkpoints`, inside the caller's
 * transaction (or its own). Nothing is written when the chain is empty or the
 * last checkpoint already names the head, unless `force`.
 */
export function checkpointSync(
  db: Database.Database,
  key: crypto.KeyObject,
  now: number,
  options: { force?: boolean; record?: { seq: number; hash: string } | undefined } = {},
): CheckpointRow | undefined {
  if (options.record) return insertCheckpoint(db, key, { ...options.record, at: now });
  const head = db.prepare('SELECT seq, hash FROM events ORDER BY seq DESC LIMIT 1').get() as { seq: number; hash: string | null } | undefined;
  const anchor = db.prepare('SELECT seq, hash FROM audit_anchor WHERE id = 1').get() as { seq: number; hash: string } | undefined;
  const top = head && head.hash !== null ? { seq: head.seq, hash: head.hash } : anchor;
  if (!top) return undefined;
  const last = db.prepare('SELECT seq FROM audit_checkpoints ORDER BY id DESC LIMIT 1').get() as { seq: number } | undefined;
  if (!options.force && last?.seq === top.seq) return undefined;
  return insertCheckpoint(db, key, { seq: top.seq, hash: top.hash, at: now });
}

function insertCheckpoint(db: Database.Database, key: crypto.KeyObject, cp: { seq: number; hash: string; at: number }): CheckpointRow {
  const signature = crypto.sign(null, checkpointBytes(cp), key).toString('base64');
  const kid = keyId(key);
  const info = db.prepare('INSERT INTO audit_checkpoints (seq, hash, at, key_id, signature) VALUES (?, ?, ?, ?, ?)').run(cp.seq, cp.hash, cp.at, kid, signature);
  return { id: Number(info.lastInsertRowid), ...cp, key_id: kid, signature };
}

export function createCheckpoint(db: Database.Database, key: crypto.KeyObject, now: number, options: { force?: boolean } = {}): CheckpointRow | undefined {
  return db.transaction(() => checkpointSync(db, key, now, options)).immediate();
}
