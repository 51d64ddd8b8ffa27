import type { PgMigration } from './index.js';

/**
 * Version 5: `rate_limits` UNLOGGED. Every counted request (each page load,
 * API call and check of the reader, each SMTP AUTH attempt) is a write to
 * this table; logged, each one waits for its WAL flush (fsync) at commit,
 * which on the 2-core test machine made a counted page load (two counts)
 * cost about 7 ms instead of under 1 ms (docs/cluster.md, "Rate limits
 * across nodes"). The counters are worth less than that: after a server
 * crash an unlogged table comes back empty, and a standby has none of it
 * after a failover, so windows and AUTH locks start over. Nothing else is
 * lost: link lockouts (five wrong codes) live in `secure_links`, which stays
 * logged. Grants and the index are kept.
 */
export const rateLimitsUnlogged: PgMigration = {
  version: 5,
  name: 'rate-limits-unlogged',
  sql: `
ALTER TABLE rate_limits SET UNLOGGED;
`,
};
