import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { readKeyFile, readKeyFileIfPresent, writeNewKeyFile } from './key-file.js';

/**
 * The relay secret (32 random bytes) signs what the relay makes itself
 * (X-Zegel-Origin) and keys the one-time code hashes. It never opens a
 * message: the key schedule keeps link keys out of the data directory.
 *
 * Without `data.relayKeyFile` it is `<data.dir>/relay.key`, made once at the
 * first start. With it (every node of a cluster needs the same secret) the
 * file is only read: a missing file is refused, never made. Either way a file
 * readable by group or others is refused (src/crypto/key-file.ts).
 */

export const RELAY_KEY_FILE = 'relay.key';
const RULES = { code: 'ZEGEL_RELAY_KEY', what: 'relay key', bytes: 32 } as const;

export function loadRelaySecret(options: { dataDir: string; relayKeyFile?: string | undefined }): Buffer {
  if (options.relayKeyFile) {
    return readKeyFile(options.relayKeyFile, { ...RULES, missing: 'data.relayKeyFile names a file that must exist (zegel keys generate DIR writes one); it is never made at start' });
  }
  const file = path.join(options.dataDir, RELAY_KEY_FILE);
  const existing = readKeyFileIfPresent(file, RULES);
  if (existing) return existing;
  const secret = crypto.randomBytes(32);
  fs.mkdirSync(options.dataDir, { recursive: true });
  const tmp = `${file}.${process.pid}.tmp`;
  writeNewKeyFile(tmp, secret);
  fs.renameSync(tmp, file);
  return secret;
}
