import fs from 'node:fs';
import { ZegelError, isErrnoException, type ZegelErrorCode } from '../errors.js';

/**
 * Reading a secret key file (the relay key, the storage key): a regular file,
 * mode 0600 or stricter (no permission for group or others, no execute bit),
 * checked on the open descriptor so the file read is the file checked. The
 * key's bytes never appear in an error.
 */

/** Permission bits a key file must not have: anything beyond owner read and write. */
export const LOOSE_KEY_MODE_BITS = 0o177;

export interface KeyFileRules {
  /** The error code every refusal carries. */
  code: ZegelErrorCode;
  /** What the file holds, for messages ("relay key"). */
  what: string;
  /** The exact length the file must have, in bytes. */
  bytes?: number;
}

/** The key file's bytes, or undefined when it does not exist. Refuses a loose mode, a non-file and a wrong length. */
export function readKeyFileIfPresent(file: string, rules: KeyFileRules): Buffer | undefined {
  let fd: number;
  try {
    fd = fs.openSync(file, 'r');
  } catch (err) {
    if (isErrnoException(err) && err.code === 'ENOENT') return undefined;
    throw new ZegelError(rules.code, `${file}: cannot read the ${rules.what}: ${(err as Error).message}`, { cause: err });
  }
  try {
    const stat = fs.fstatSync(fd);
    if (!stat.isFile()) throw new ZegelError(rules.code, `${file}: the ${rules.what} must be a regular file`);
    const mode = stat.mode & 0o777;
    if (mode & LOOSE_KEY_MODE_BITS) {
      throw new ZegelError(rules.code, `${file}: the ${rules.what} has mode ${mode.toString(8).padStart(4, '0')}; it must be 0600 or stricter, readable by the relay's user only (chmod 600 ${file})`);
    }
    const bytes = fs.readFileSync(fd);
    if (rules.bytes !== undefined && bytes.length !== rules.bytes) {
      throw new ZegelError(rules.code, `${file}: the ${rules.what} must hold exactly ${rules.bytes} bytes, it holds ${bytes.length}`);
    }
    return bytes;
  } finally {
    fs.closeSync(fd);
  }
}

/** The key file's bytes; a missing file is refused too. */
export function readKeyFile(file: string, rules: KeyFileRules & { missing: string }): Buffer {
  const bytes = readKeyFileIfPresent(file, rules);
  if (!bytes) throw new ZegelError(rules.code, `${file}: no ${rules.what}: ${rules.missing}`);
  return bytes;
}

/**
 * Writes a new key file: created exclusively (EEXIST when it is there) with
 * mode 0600, written and fsynced before it is closed, so a key file is never
 * seen half written under its own name when `file` is a temporary name that
 * the caller renames.
 */
export function writeNewKeyFile(file: string, bytes: Buffer): void {
  const fd = fs.openSync(file, 'wx', 0o600);
  try {
    fs.writeSync(fd, bytes);
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}
