import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import type { Command } from 'commander';
import { stringify } from 'yaml';
import { SIGNING_KEY_FILE } from '../audit/checkpoint.js';
import { writeNewKeyFile } from '../crypto/key-file.js';
import { RELAY_KEY_FILE } from '../crypto/relay-secret.js';
import { STORAGE_KEY_BYTES } from '../crypto/storage-key.js';
import { ZegelError, isErrnoException } from '../errors.js';
import { withWork } from './context.js';

/**
 * `zegel keys generate DIR`: the key files every node of a cluster shares
 * (docs/architecture.md, "Key schedule"), made once by an operator and copied
 * to each node, instead of each node making its own:
 *
 *   relay.key          32 random bytes  data.relayKeyFile
 *   storage.key        32 random bytes  store.keyFile
 *   audit-signing.pem  Ed25519, PKCS#8  audit.signingKeyFile
 *
 * Each file mode 0600; DIR is made mode 0700 when missing. When any of the
 * three exists nothing is written (ZEGEL_KEY_EXISTS, exit 1): replacing a key
 * in use would make stored data, codes or checkpoints unreadable. The keys are
 * never printed, only their paths and the configuration lines that name them.
 */

export const STORAGE_KEY_FILE = 'storage.key';

interface KeyFile {
  name: string;
  /** The configuration key that names it. */
  setting: readonly [section: string, key: string];
  make(): Buffer;
}

const KEY_FILES: readonly KeyFile[] = [
  { name: RELAY_KEY_FILE, setting: ['data', 'relayKeyFile'], make: () => crypto.randomBytes(32) },
  { name: STORAGE_KEY_FILE, setting: ['store', 'keyFile'], make: () => crypto.randomBytes(STORAGE_KEY_BYTES) },
  {
    name: SIGNING_KEY_FILE,
    setting: ['audit', 'signingKeyFile'],
    make: () => Buffer.from(crypto.generateKeyPairSync('ed25519').privateKey.export({ type: 'pkcs8', format: 'pem' })),
  },
];

function exists(file: string): boolean {
  try {
    fs.lstatSync(file);
    return true;
  } catch (err) {
    if (isErrnoException(err) && err.code === 'ENOENT') return false;
    throw err;
  }
}

/** Makes the three key files in `dir`; all or none. Returns their absolute paths in KEY_FILES order. */
export function generateKeys(dir: string): string[] {
  const target = path.resolve(dir);
  if (exists(target) && !fs.statSync(target).isDirectory()) throw new ZegelError('ZEGEL_CLI_INPUT', `${target} is not a directory`);
  const files = KEY_FILES.map((k) => path.join(target, k.name));
  const present = files.filter(exists);
  if (present.length) {
    throw new ZegelError('ZEGEL_KEY_EXISTS', `${present.join(', ')} already exist${present.length === 1 ? 's' : ''}; nothing written (a key in use must not be replaced: choose an empty directory)`);
  }
  fs.mkdirSync(target, { recursive: true, mode: 0o700 });
  const written: string[] = [];
  try {
    KEY_FILES.forEach((k, i) => {
      writeNewKeyFile(files[i]!, k.make());
      written.push(files[i]!);
    });
  } catch (err) {
    // all or none: take back what this run wrote (a file that appeared meanwhile is not ours)
    for (const file of written) fs.rmSync(file, { force: true });
    if (isErrnoException(err) && err.code === 'EEXIST') {
      throw new ZegelError('ZEGEL_KEY_EXISTS', `${(err as NodeJS.ErrnoException).path ?? target} appeared while writing; nothing written`, { cause: err });
    }
    throw err;
  }
  const dirFd = fs.openSync(target, 'r');
  try {
    fs.fsyncSync(dirFd);
  } finally {
    fs.closeSync(dirFd);
  }
  return files;
}

/** The YAML that names the files (merge it into the sections of the same name). */
function configLines(files: string[]): string {
  const sections: Record<string, Record<string, string>> = {};
  KEY_FILES.forEach((k, i) => {
    const [section, key] = k.setting;
    (sections[section] ??= {})[key] = files[i]!;
  });
  return stringify(sections).trimEnd();
}

export function registerKeysCommands(program: Command): void {
  const keys = program.command('keys').description('key files shared by every node of a cluster');
  keys
    .command('generate')
    .description('write a new relay key, storage key and audit signing key (mode 0600) into DIR')
    .argument('<dir>', 'directory for relay.key, storage.key and audit-signing.pem (made mode 0700 if missing); none of them may exist')
    .addHelpText(
      'after',
      `
The files hold secrets: copy them to every node with mode 0600, owned by the
relay's user, and keep a copy outside the nodes and their backups. Existing
files are never replaced (exit 1, nothing written).`,
    )
    .action((dir: string) =>
      withWork(() => {
        const files = generateKeys(dir);
        const described = KEY_FILES.map((k, i) => `${files[i]}  (${k.setting.join('.')})`).join('\n');
        process.stdout.write(
          `wrote, mode 0600:\n${described}\n\nAdd to the configuration of every node (with store.driver: postgres all three are required):\n\n${configLines(files)}\n`,
        );
      }),
    );
}
