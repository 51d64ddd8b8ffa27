import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';

/**
 * The relay secret (32 random bytes) signs what the relay makes itself
 * (X-Zegel-Origin). Created once in `<data.dir>/relay.key`, readable by the
 * relay's user only. It never opens a message: the key schedule keeps link
 * keys out of the data directory.
 */
export function loadRelaySecret(dataDir: string): Buffer {
  const file = path.join(dataDir, 'relay.key');
  try {
    const existing = fs.readFileSync(file);
    if (existing.length === 32) return existing;
    throw new Error(`${file} must hold exactly 32 bytes`);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  const secret = crypto.randomBytes(32);
  fs.mkdirSync(dataDir, { recursive: true });
  const tmp = `${file}.${process.pid}.tmp`;
  const fd = fs.openSync(tmp, 'wx', 0o600);
  try {
    fs.writeSync(fd, secret);
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
  fs.renameSync(tmp, file);
  return secret;
}
