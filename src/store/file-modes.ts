import fs from 'node:fs';
import fsp from 'node:fs/promises';
import { ZegelError } from '../errors.js';

/**
 * File modes of everything under `data.dir`: directories 0700, files 0600,
 * whatever the caller's umask. A mode given to mkdir or open is masked by the
 * umask (and an unusual umask can take the owner's own bits away), so each
 * directory and file is created with the mode and then set to it explicitly.
 */
export const PRIVATE_DIR_MODE = 0o700;
export const PRIVATE_FILE_MODE = 0o600;

/** Creates `dir` (and missing parents, 0700) and sets it to 0700, also when it existed. */
export function ensurePrivateDirSync(dir: string): void {
  try {
    fs.mkdirSync(dir, { recursive: true, mode: PRIVATE_DIR_MODE });
    fs.chmodSync(dir, PRIVATE_DIR_MODE);
  } catch (err) {
    throw new ZegelError('ZEGEL_STORE_WRITE', `${dir}: cannot create it as a private directory (0700): ${(err as Error).message}`, { cause: err });
  }
}

/** The async form of ensurePrivateDirSync, for directories made on the hot path (blobs). */
export async function ensurePrivateDir(dir: string): Promise<void> {
  await fsp.mkdir(dir, { recursive: true, mode: PRIVATE_DIR_MODE });
  await fsp.chmod(dir, PRIVATE_DIR_MODE);
}

/**
 * Creates `file` empty if it does not exist and sets it to 0600. An existing
 * file is only chmod-ed by path, never opened: closing a descriptor of a
 * database file drops every POSIX lock this process holds on it, including
 * those of an SQLite connection open on it here.
 */
export function ensurePrivateFileSync(file: string): void {
  try {
    let fd: number;
    try {
      fd = fs.openSync(file, fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL, PRIVATE_FILE_MODE);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      fs.chmodSync(file, PRIVATE_FILE_MODE);
      return;
    }
    try {
      fs.fchmodSync(fd, PRIVATE_FILE_MODE);
    } finally {
      fs.closeSync(fd);
    }
  } catch (err) {
    throw new ZegelError('ZEGEL_STORE_WRITE', `${file}: cannot create it as a private file (0600): ${(err as Error).message}`, { cause: err });
  }
}

/** Sets an existing file to 0600; a file that does not exist (yet) is left alone. */
export function chmodPrivateIfExistsSync(file: string): void {
  try {
    fs.chmodSync(file, PRIVATE_FILE_MODE);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') {
      throw new ZegelError('ZEGEL_STORE_WRITE', `${file}: cannot make it private (0600): ${(err as Error).message}`, { cause: err });
    }
  }
}
