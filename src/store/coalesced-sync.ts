/**
 * Coalesces fsyncs of one file or directory. Callers that arrive while a sync
 * runs share the next one, so a burst of commits or new files costs two
 * syncs, not one per caller; a caller's promise resolves only after a sync
 * that STARTED after its call, so everything it wrote before calling is on
 * disk when it resolves.
 *
 * The sync itself runs on libuv's thread pool (fs/promises), so the event
 * loop goes on serving sessions while the disk flushes.
 */
export class CoalescedSync {
  readonly #run: () => Promise<void>;
  #current: Promise<void> | undefined;
  #next: Promise<void> | undefined;

  constructor(run: () => Promise<void>) {
    this.#run = run;
  }

  sync(): Promise<void> {
    if (!this.#current) {
      this.#current = this.#run().finally(() => {
        this.#current = undefined;
      });
      return this.#current;
    }
    if (!this.#next) {
      this.#next = this.#current
        .catch(() => undefined)
        .then(() => {
          this.#next = undefined;
          return this.sync();
        });
    }
    return this.#next;
  }

  /** Resolves when no sync is running or waiting (errors are the callers'). */
  async idle(): Promise<void> {
    while (this.#current || this.#next) await (this.#next ?? this.#current)!.catch(() => undefined);
  }
}
