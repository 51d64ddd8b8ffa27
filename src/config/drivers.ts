import { ZegelError } from '../errors.js';
import type { Config } from './schema.js';

/**
 * Which store and queue drivers this build can run. The configuration
 * contract names more (src/config/schema.ts); a driver that is valid there but
 * not built yet is refused by `zegel start` before anything is opened or made,
 * never run half (docs/architecture.md, "Configuration").
 */
export const AVAILABLE_DRIVERS: { readonly store: readonly Config['store']['driver'][]; readonly queue: readonly Config['queue']['driver'][] } = {
  store: ['sqlite', 'postgres'],
  queue: ['sqlite', 'bullmq'],
};

const NAMES: Record<string, string> = { postgres: 'PostgreSQL store', bullmq: 'BullMQ queue' };

/** One line per configured driver this build does not have. */
export function unavailableDrivers(config: Config): string[] {
  const problems: string[] = [];
  if (!AVAILABLE_DRIVERS.store.includes(config.store.driver)) {
    problems.push(`store.driver: the ${NAMES[config.store.driver] ?? config.store.driver} driver is not available in this build yet (available: ${AVAILABLE_DRIVERS.store.join(', ')})`);
  }
  if (!AVAILABLE_DRIVERS.queue.includes(config.queue.driver)) {
    problems.push(`queue.driver: the ${NAMES[config.queue.driver] ?? config.queue.driver} driver is not available in this build yet (available: ${AVAILABLE_DRIVERS.queue.join(', ')})`);
  }
  return problems;
}

/** Throws ZEGEL_DRIVER_UNAVAILABLE naming every such driver. */
export function assertDriversAvailable(config: Config, source = 'configuration'): void {
  const problems = unavailableDrivers(config);
  if (problems.length) throw new ZegelError('ZEGEL_DRIVER_UNAVAILABLE', `${source} cannot start, refused:\n  ${problems.join('\n  ')}`);
}
