import type { Config } from '../config/schema.js';

/**
 * Which configuration keys a running relay can take over on SIGHUP. Only
 * settings that are read afresh for every use are live: the log level and the
 * rules (the rule service is rebuilt from `rules.dir` and `classify.*`).
 * Everything else (listeners, TLS, data dir, delivery, verification, reader,
 * notification, …) is wired into long-lived objects at start and needs a
 * restart; a reload names those keys in the log instead of half-applying them.
 */
export const LIVE_KEYS = ['log.level', 'rules.', 'classify.'] as const;

export interface ReloadPlan {
  /** Changed keys that the reload applies. */
  applied: string[];
  /** Changed keys that take effect only after a restart. */
  needsRestart: string[];
}

/** Leaf paths of a plain object (`smtp.listen`, `verification.ttl.email`); arrays are leaves. */
function leaves(value: unknown, prefix: string, out: Map<string, string>): void {
  if (value && typeof value === 'object' && !Array.isArray(value)) {
    for (const [key, child] of Object.entries(value)) leaves(child, prefix ? `${prefix}.${key}` : key, out);
    return;
  }
  out.set(prefix, JSON.stringify(value) ?? 'undefined');
}

const isLive = (key: string): boolean => LIVE_KEYS.some((live) => (live.endsWith('.') ? key.startsWith(live) : key === live));

/** The changed keys between two configurations, split into live and restart-only. Values are never returned (they may be secrets). */
export function planReload(current: Config, next: Config): ReloadPlan {
  const before = new Map<string, string>();
  const after = new Map<string, string>();
  leaves(current, '', before);
  leaves(next, '', after);
  const changed = [...new Set([...before.keys(), ...after.keys()])].filter((key) => before.get(key) !== after.get(key)).sort();
  return { applied: changed.filter(isLive), needsRestart: changed.filter((key) => !isLive(key)) };
}
