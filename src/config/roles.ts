/**
 * Which parts of the relay one process runs (`zegel start --role`). `all` is
 * the embedded default; the others split a cluster's nodes: `smtp` takes
 * mail in, `worker` runs the jobs and the periodic work, `reader` serves
 * recipients and senders. Only `all` runs on SQLite (one process owns the
 * file); the split roles need the PostgreSQL store, and each may log in with
 * the database role of its grants (docs/cluster.md, "Roles and grants").
 */
export const RELAY_ROLES = ['all', 'smtp', 'worker', 'reader'] as const;
export type RelayRole = (typeof RELAY_ROLES)[number];

/** What a role runs. */
export interface RoleParts {
  smtp: boolean;
  workers: boolean;
  reader: boolean;
}

export function roleParts(role: RelayRole): RoleParts {
  return { smtp: role === 'all' || role === 'smtp', workers: role === 'all' || role === 'worker', reader: role === 'all' || role === 'reader' };
}
