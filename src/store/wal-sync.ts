import fsp from 'node:fs/promises';
import { CoalescedSync } from './coalesced-sync.js';

/**
 * Makes committed SQLite transactions durable off the event loop.
 *
 * Every connection runs WAL with `synchronous = NORMAL` (db.ts): a COMMIT
 * writes its frames to the `-wal` file but does not flush it. SQLite's own
 * `synchronous = FULL` differs from NORMAL in exactly one step, a sync of the
 * WAL after each commit (https://sqlite.org/pragma.html#pragma_synchronous);
 * this class is that step, run on libuv's thread pool with `fdatasync` (what
 * SQLite itself calls on Linux) instead of on the main thread inside COMMIT.
 * The group committer resolves no caller before the sync that started after
 * its COMMIT has finished, so "250 after fsync and commit" holds as before,
 * while the event loop keeps serving sessions during the flush and the next
 * group can commit while the previous one syncs.
 *
 * The `-wal` file keeps its inode while any connection is open (a TRUNCATE
 * checkpoint cuts it to zero bytes, a reset re-uses it from the start), so
 * one handle, opened at the first sync, serves the connection's lifetime.
 * Checkpoints sync the WAL and the database file themselves, as with FULL.
 */
export class WalSync {
  readonly #walPath: string;
  readonly #syncer: CoalescedSync;
  #handle: Promise<fsp.FileHandle> | undefined;
  #closed = false;

  constructor(dbFile: string, options: { fdatasync?: (handle: fsp.FileHandle) => Promise<void> } = {}) {
    this.#walPath = `${dbFile}-wal`;
    const fdatasync = options.fdatasync ?? ((handle) => handle.datasync());
    this.#syncer = new CoalescedSync(async () => {
      if (this.#closed) throw new Error('WAL sync after close');
      this.#handle ??= fsp.open(this.#walPath, 'r');
      await fdatasync(await this.#handle);
    });
  }

  /** Resolves after an fdatasync of the WAL that started after this call. */
  sync(): Promise<void> {
    return this.#syncer.sync();
  }

  /** Waits for running syncs, then closes the handle. */
  async close(): Promise<void> {
    await this.#syncer.idle();
    this.#closed = true;
    const handle = this.#handle;
    this.#handle = undefined;
    if (handle) await (await handle.catch(() => undefined))?.close();
  }
}
