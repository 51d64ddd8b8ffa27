/**
 * Who does periodic work that must happen once per cluster, not once per
 * node (docs/cluster.md, "Periodic work: once per cluster"): the audit
 * checkpoint and the audit retention purge. Each node asks before each run;
 * only the node that leads runs.
 *
 * On SQLite one relay owns the data directory, so it always leads
 * (`soleLeader`). On PostgreSQL the leader is the node whose session holds
 * an advisory lock (src/store/pg/leader.ts): when that node dies its
 * session ends, the lock goes with it, and the next node to ask takes it.
 */
export interface PeriodicLeader {
  /** Whether this node leads now: it holds the lead, or just took it. Never throws (a store that does not answer: false). */
  lead(): Promise<boolean>;
  /** Gives the lead up (at stop), so another node can take it at its next run. */
  release(): void;
}

/** The one relay of a SQLite data directory: always leads. */
export const soleLeader: PeriodicLeader = {
  lead: () => Promise.resolve(true),
  release: () => undefined,
};
