import type { PeriodicLeader } from '../../audit/leader.js';
import type { Logger } from '../../log.js';
import type { PgCheckout, PgPool } from './connect.js';

/**
 * The audit checkpoint's advisory lock ("ZEGL", 4): the migrator holds
 * (…, 1), the audit chain (…, 2), the job reconciler (…, 3).
 */
export const AUDIT_LEADER_LOCK: readonly [number, number] = [1514489676, 4];

/**
 * Server-side TCP keep-alive of the leader's session, seconds: a node whose
 * host vanishes (power, network) leaves no FIN, and the server would keep its
 * session, and so the lead, until the kernel's keep-alive gives up (two hours
 * by default). With these the server drops it after about 30 + 3 × 10 s.
 */
const KEEPALIVE = { idle: 30, interval: 10, count: 3 } as const;

/**
 * Leads periodic work across a cluster with a session-level advisory lock
 * (`pg_try_advisory_lock`) on a connection of its own, taken from the
 * node's pool and kept while it leads.
 *
 * - `lead()` on a node that does not lead tries the lock once (never
 *   waits): one node of the cluster gets it, the others are told no and
 *   ask again at their next run.
 * - `lead()` on the node that leads checks its connection with one
 *   statement: a session-level lock can only end with its session, so a
 *   connection that answers still holds it. One that fails (the server
 *   restarted, the network broke) is destroyed and the node no longer
 *   leads; it tries again at once, like any other node.
 * - A node that dies ends its session (the kernel closes its sockets; a host
 *   that vanishes is dropped by the server's keep-alive, set on this
 *   session), and the lock goes with it: the next node to ask leads.
 * - `release()` destroys the connection (the lock never goes back to the
 *   pool), so the pool can close.
 *
 * The held connection is one of the pool's (`max`) for as long as the node leads.
 */
export class PgSessionLeader implements PeriodicLeader {
  readonly #pool: PgPool;
  readonly #lock: readonly [number, number];
  readonly #log: Logger | undefined;
  #held: PgCheckout | undefined;
  #asking: Promise<boolean> | undefined;
  #released = false;

  constructor(pool: PgPool, options: { lock?: readonly [number, number]; log?: Logger | undefined } = {}) {
    this.#pool = pool;
    this.#lock = options.lock ?? AUDIT_LEADER_LOCK;
    this.#log = options.log;
  }

  /** Whether this node holds the lock now (as of its last `lead()`). */
  get leading(): boolean {
    return this.#held !== undefined;
  }

  lead(): Promise<boolean> {
    // one question at a time: two runs at once must not take two connections
    this.#asking ??= this.#ask().finally(() => {
      this.#asking = undefined;
    });
    return this.#asking;
  }

  async #ask(): Promise<boolean> {
    if (this.#released) return false;
    if (this.#held) {
      const held = this.#held;
      try {
        if (held.broken()) throw held.broken();
        await held.client.query('SELECT 1');
        return true;
      } catch (err) {
        this.#drop();
        this.#log?.warn({ err: { message: this.#pool.redact((err as Error).message) } }, 'periodic work: lost the connection that held the lead; asking again');
      }
    }
    let checkout: PgCheckout;
    try {
      checkout = await this.#pool.checkout();
    } catch {
      return false;
    }
    try {
      const { rows } = await checkout.client.query<{ ok: boolean }>('SELECT pg_try_advisory_lock($1, $2) AS ok', [...this.#lock]);
      if (rows[0]?.ok !== true || this.#released) {
        // a lock taken after release() is given up with its session
        checkout.release(rows[0]?.ok === true);
        return false;
      }
      await checkout.client.query(`SET tcp_keepalives_idle = ${KEEPALIVE.idle}; SET tcp_keepalives_interval = ${KEEPALIVE.interval}; SET tcp_keepalives_count = ${KEEPALIVE.count}`);
      this.#held = checkout;
      this.#log?.info({ lock: this.#lock[1] }, 'periodic work: this node leads');
      return true;
    } catch {
      checkout.release(true);
      return false;
    }
  }

  #drop(): void {
    const held = this.#held;
    this.#held = undefined;
    // destroyed, not returned: the lock and the session settings must not go back to the pool
    held?.release(true);
  }

  release(): void {
    this.#released = true;
    this.#drop();
  }
}
