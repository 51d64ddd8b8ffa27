import type { Clock } from '../clock.js';
import type { EventInput } from '../store/events.js';
import type { EventRepository } from '../store/store.js';
import type { SecureRepositories } from '../store/secure-repositories.js';
import type { Transactor } from '../store/tx.js';

/**
 * What the secure-delivery domain (src/secure/) works with: the store's
 * transactions, the event log (the one writer of the audit trail), the
 * secure-delivery repositories (src/store/secure-repositories.ts) and the
 * clock. No SQL and no HTTP here: the reader (src/reader/) calls this layer,
 * this layer calls the repositories.
 */
export interface SecureContext {
  store: Transactor;
  events: EventRepository;
  repos: SecureRepositories;
  clock: Clock;
  /** Told about every event the reader and status page record (metrics). */
  onEvent?: ((event: EventInput) => void) | undefined;
}

/** Records one event in its own transaction; resolves after the commit. */
export async function recordEvent(ctx: SecureContext, event: EventInput): Promise<void> {
  ctx.onEvent?.(event);
  await ctx.store.transaction((tx) => ctx.events.append(tx, event));
}
