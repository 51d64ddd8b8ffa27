import { randomUUID } from 'node:crypto';
import { Queue, Worker, type Job as BullJob } from 'bullmq';
import type { Clock } from '../clock.js';
import { ZegelError } from '../errors.js';
import type { Logger } from '../log.js';
import type { PgPool } from '../store/pg/connect.js';
import { pgTx, type PgTx } from '../store/pg/tx.js';
import type { Transactor, Tx } from '../store/tx.js';
import { PgJobs, type ClaimedJob, type JobRef } from './pg-jobs.js';
import type { StoredJob } from './sqlite.js';
import type { HeldJob, JobHandler, JobQueue, JobResult, NewJob, QueueCounts } from './types.js';

/**
 * The BullMQ job driver: PostgreSQL holds the jobs, BullMQ carries them.
 *
 * - A job is a row of PostgreSQL's jobs table (src/queue/pg-jobs.ts) from
 *   the commit that adds it to the commit that completes it. BullMQ (one
 *   queue per kind) carries only the row's id to a worker; what Redis holds
 *   can be lost (a restart without persistence, FLUSHALL, a failover)
 *   without losing a job.
 * - After a commit the jobs it added are added to BullMQ, with a job id
 *   made of the row's id, its attempt and its dispatch generation (a retry
 *   is a new BullMQ job) and a delay of runAt − now. An add that fails
 *   (Redis down) is left to the reconciler.
 * - A BullMQ worker claims the row with a lease, runs the handler, and
 *   writes the outcome, the handler's rows and the next jobs in one
 *   PostgreSQL transaction, only while it still owns the lease; then it
 *   adds the next jobs to BullMQ and runs afterCommit. A claim that finds
 *   the row done, gone, not due or leased completes the BullMQ job without
 *   running anything. The lease is renewed while the handler runs; a node
 *   that dies stops renewing, and its jobs are due again once the lease ran
 *   out.
 * - The reconciler (every `reconcileMs`, one node at a time under an
 *   advisory lock) reads the due, unleased rows and makes sure BullMQ
 *   carries each: it adds what BullMQ does not hold, promotes what BullMQ
 *   still delays, and gives a row whose BullMQ job stays active with no
 *   lease in PostgreSQL (its worker is gone) a new dispatch generation.
 *
 * Connections follow BullMQ's production advice: workers retry for ever
 * (`maxRetriesPerRequest: null`, bounded backoff), the producer side fails
 * fast (`enableOfflineQueue: false`), and every add to Redis is bounded by
 * `redisTimeoutMs`. Redis must run with `maxmemory-policy noeviction`.
 */
export interface BullmqQueueOptions {
  /** `redis://host:port[/db]` (`rediss://` for TLS). */
  redisUrl: string;
  /** Redis AUTH password, read by the caller from a file (never from the URL in the config, never logged). */
  redisPassword?: string | undefined;
  /** Key prefix in Redis (default `zegel`). */
  prefix?: string | undefined;
  /** Shown in lease tokens (default: a random id per queue object). */
  node?: string | undefined;
  /** How long a claim holds a job without renewal, ms (default 30 s); renewed every third of it. */
  leaseMs?: number | undefined;
  /** How often the reconciler runs, ms (default 5 s). */
  reconcileMs?: number | undefined;
  /** A job due for less than this is left to BullMQ by the reconciler, ms (default 2 s). */
  reconcileGraceMs?: number | undefined;
  /** Rows one reconciler pass looks at, at most (default 1000). */
  reconcileBatch?: number | undefined;
  /** An add to Redis that takes longer is given up and left to the reconciler, ms (default 2 s). */
  redisTimeoutMs?: number | undefined;
  /** BullMQ's stalled-job check, ms (default 30 s). */
  stalledIntervalMs?: number | undefined;
  /** How long a worker's blocking read for new jobs waits, s (BullMQ's drainDelay, default 5). */
  drainDelaySec?: number | undefined;
  /** How often the worker watchdog looks for a worker that takes no job while jobs wait, ms (default 10 s). */
  workerWatchMs?: number | undefined;
}

export const BULLMQ_QUEUE_DEFAULTS = {
  prefix: 'zegel',
  leaseMs: 30_000,
  reconcileMs: 5_000,
  reconcileGraceMs: 2_000,
  reconcileBatch: 1_000,
  redisTimeoutMs: 2_000,
  stalledIntervalMs: 30_000,
  drainDelaySec: 5,
  workerWatchMs: 10_000,
} as const;

/** The reconciler's advisory lock ("ZEGL", 3): the migrator holds (…, 1), the audit chain (…, 2). */
export const RECONCILE_LOCK: readonly [number, number] = [1514489676, 3];

/** How long a worker retries a claim while PostgreSQL is unavailable before it lets BullMQ fail the job. */
const CLAIM_PATIENCE_MS = 15_000;

/** Backoff for a handler that threw unexpectedly: 30 s doubling, at most one hour (as on SQLite). */
function crashBackoff(attempts: number): number {
  return Math.min(30_000 * 2 ** Math.min(attempts, 7), 3_600_000);
}

/** The BullMQ job id of a row: its id (base64url: BullMQ refuses `:` in ids), attempt and dispatch generation. */
export function bullJobId(ref: Pick<JobRef, 'id' | 'attempts' | 'dispatch'>): string {
  return `${Buffer.from(ref.id, 'utf8').toString('base64url')}.${ref.attempts}.${ref.dispatch}`;
}

/** Reconnection backoff for every Redis connection: 250 ms more per try, at most 5 s. */
const retryStrategy = (times: number): number => Math.min(250 * times, 5_000);

interface KindWorker {
  kind: string;
  handler: JobHandler<unknown>;
  concurrency: number;
  worker: Worker;
  /** Claims running on this node, by token. */
  running: Map<string, Promise<void>>;
  /** BullMQ jobs handed to this node's processor so far. */
  started: number;
  /** The watchdog's last look: jobs were waiting, and how many had started by then. */
  watch: { started: number } | undefined;
}

interface Carried {
  id: string;
}

function errInfo(err: unknown): { code?: string; message: string } {
  const e = err as { code?: unknown; message?: unknown };
  return { ...(typeof e?.code === 'string' ? { code: e.code } : {}), message: typeof e?.message === 'string' ? e.message : String(err) };
}

export class BullmqQueue implements JobQueue {
  readonly jobs: PgJobs;
  readonly #pool: PgPool;
  readonly #transactor: Transactor;
  readonly #clock: Clock;
  readonly #log: Logger;
  readonly #options: Required<Omit<BullmqQueueOptions, 'node' | 'redisPassword'>> & { node: string };
  /** ioredis options every connection shares. */
  readonly #connection: { url: string; password?: string; retryStrategy: typeof retryStrategy };
  readonly #queues = new Map<string, Queue>();
  readonly #workers = new Map<string, KindWorker>();
  /** Renewal timers of the claims running here, by token. */
  readonly #renewals = new Map<string, NodeJS.Timeout>();
  /** Jobs added in callers' transactions, carried to BullMQ once that transaction has ended. */
  #pending: Array<{ tx: PgTx; refs: JobRef[] }> = [];
  /** Rows seen due and unleased with an active BullMQ job in the reconciler's last pass. */
  #activeSeen = new Set<string>();
  #reconciling: Promise<void> | undefined;
  /** What the reconciler did since start: passes it ran, rows it added to BullMQ, promoted, and re-dispatched. */
  readonly reconcilerStats = { passes: 0, added: 0, promoted: 0, rescued: 0 };
  #lastReconcile = 0;
  #timer: NodeJS.Timeout | undefined;
  #watchTimer: NodeJS.Timeout | undefined;
  /** Workers the watchdog replaced since start. */
  workerRestarts = 0;
  #closed = false;
  #flushScheduled = false;

  constructor(pool: PgPool, transactor: Transactor, clock: Clock, log: Logger, options: BullmqQueueOptions) {
    this.#pool = pool;
    this.#transactor = transactor;
    this.#clock = clock;
    this.#log = log;
    this.#options = {
      redisUrl: options.redisUrl,
      prefix: options.prefix ?? BULLMQ_QUEUE_DEFAULTS.prefix,
      node: options.node ?? randomUUID().slice(0, 8),
      leaseMs: options.leaseMs ?? BULLMQ_QUEUE_DEFAULTS.leaseMs,
      reconcileMs: options.reconcileMs ?? BULLMQ_QUEUE_DEFAULTS.reconcileMs,
      reconcileGraceMs: options.reconcileGraceMs ?? BULLMQ_QUEUE_DEFAULTS.reconcileGraceMs,
      reconcileBatch: options.reconcileBatch ?? BULLMQ_QUEUE_DEFAULTS.reconcileBatch,
      redisTimeoutMs: options.redisTimeoutMs ?? BULLMQ_QUEUE_DEFAULTS.redisTimeoutMs,
      stalledIntervalMs: options.stalledIntervalMs ?? BULLMQ_QUEUE_DEFAULTS.stalledIntervalMs,
      drainDelaySec: options.drainDelaySec ?? BULLMQ_QUEUE_DEFAULTS.drainDelaySec,
      workerWatchMs: options.workerWatchMs ?? BULLMQ_QUEUE_DEFAULTS.workerWatchMs,
    };
    this.#connection = { url: options.redisUrl, ...(options.redisPassword === undefined ? {} : { password: options.redisPassword }), retryStrategy };
    this.jobs = new PgJobs(pool, clock, { leaseMs: this.#options.leaseMs });
    this.#timer = setInterval(() => {
      this.#flush();
      void this.reconcile();
    }, this.#options.reconcileMs);
    this.#watchTimer = setInterval(() => void this.#watchWorkers(), this.#options.workerWatchMs);
  }

  // ---- adding jobs

  /**
   * Adds jobs in the caller's transaction (a message and its first job
   * commit together). Call `poke()` after the commit: it carries them to
   * BullMQ (the reconciler does, if no one pokes).
   */
  async insert(tx: Tx, jobs: NewJob[]): Promise<void> {
    const refs = await this.jobs.insert(tx, jobs);
    if (refs.length) this.#pending.push({ tx: pgTx(tx), refs });
  }

  async add(jobs: NewJob[]): Promise<void> {
    if (!jobs.length) return;
    const refs = await this.#transactor.transaction((tx) => this.jobs.insert(tx, jobs));
    await this.#dispatch(refs);
  }

  /** Carries the jobs of callers' transactions that have ended (committed or not: a rolled-back one's job is found gone and dropped). */
  poke(_kinds?: string | readonly string[]): void {
    if (this.#closed || this.#flushScheduled) return;
    this.#flushScheduled = true;
    setImmediate(() => {
      this.#flushScheduled = false;
      this.#flush();
    });
  }

  #flush(): void {
    if (!this.#pending.length) return;
    const ended = this.#pending.filter((p) => !p.tx.open);
    if (!ended.length) return;
    this.#pending = this.#pending.filter((p) => p.tx.open);
    void this.#dispatch(ended.flatMap((p) => p.refs));
  }

  #queue(kind: string): Queue {
    let queue = this.#queues.get(kind);
    if (!queue) {
      if (this.#closed) throw new Error('the queue is closed');
      queue = new Queue(kind, {
        connection: { ...this.#connection, enableOfflineQueue: false, connectionName: `zegel-${this.#options.node}-q` },
        prefix: this.#options.prefix,
        defaultJobOptions: { removeOnComplete: true, removeOnFail: true, attempts: 1 },
      });
      queue.on('error', (err: Error) => this.#log.warn({ kind, err: errInfo(err) }, 'BullMQ queue connection error'));
      this.#queues.set(kind, queue);
    }
    return queue;
  }

  /**
   * Whether Redis answers a read within redisTimeoutMs (readiness detail). A
   * node without Redis still takes mail in (the job rows are in PostgreSQL),
   * so this is reported, not a reason to leave the load balancer.
   */
  async carrierReachable(): Promise<boolean> {
    if (this.#closed) return false;
    try {
      // one read of a key: answers only when Redis does (the queue's connection has no offline queue)
      const queue = this.#queue('process');
      await this.#redis(() => queue.getVersion());
      return true;
    } catch {
      return false;
    }
  }

  /** A Redis call bounded by redisTimeoutMs. */
  async #redis<T>(call: () => Promise<T>): Promise<T> {
    let timer: NodeJS.Timeout | undefined;
    try {
      return await Promise.race([
        call(),
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(new Error(`Redis did not answer within ${this.#options.redisTimeoutMs} ms`)), this.#options.redisTimeoutMs);
        }),
      ]);
    } finally {
      clearTimeout(timer);
    }
  }

  /** Adds rows to BullMQ; a failure is logged and left to the reconciler (the rows are safe in PostgreSQL). */
  async #dispatch(refs: readonly JobRef[]): Promise<void> {
    if (!refs.length || this.#closed) return;
    const byKind = new Map<string, JobRef[]>();
    for (const ref of refs) byKind.set(ref.kind, [...(byKind.get(ref.kind) ?? []), ref]);
    const now = this.#clock.now();
    await Promise.all(
      [...byKind].map(async ([kind, list]) => {
        try {
          const queue = this.#queue(kind);
          await this.#redis(() => queue.addBulk(list.map((ref) => ({ name: kind, data: { id: ref.id } satisfies Carried, opts: { jobId: bullJobId(ref), delay: Math.max(0, ref.runAt - now) } }))));
        } catch (err) {
          this.#log.warn({ kind, jobs: list.length, err: errInfo(err) }, 'could not hand jobs to BullMQ; the reconciler will');
        }
      }),
    );
  }

  // ---- running jobs

  work<P>(kind: string, handler: JobHandler<P>, options: { concurrency: number }): void {
    if (this.#workers.has(kind)) throw new Error(`a worker for ${kind} is already registered`);
    if (this.#closed) throw new Error('the queue is closed');
    const entry = { kind, handler: handler as JobHandler<unknown>, concurrency: options.concurrency, running: new Map(), started: 0, watch: undefined } as Omit<KindWorker, 'worker'> as KindWorker;
    entry.worker = this.#newWorker(entry);
    this.#workers.set(kind, entry);
  }

  #newWorker(entry: KindWorker): Worker {
    const { kind } = entry;
    const worker = new Worker(kind, (job: BullJob) => this.#process(entry, job), {
      connection: { ...this.#connection, maxRetriesPerRequest: null, connectionName: `zegel-${this.#options.node}-w` },
      prefix: this.#options.prefix,
      concurrency: entry.concurrency,
      lockDuration: this.#options.leaseMs,
      stalledInterval: this.#options.stalledIntervalMs,
      drainDelay: this.#options.drainDelaySec,
      autorun: true,
    });
    worker.on('error', (err: Error) => this.#log.warn({ kind, err: errInfo(err) }, 'BullMQ worker error'));
    worker.on('failed', (job: BullJob | undefined, err: Error) => this.#log.warn({ kind, bullJob: job?.id, err: errInfo(err) }, 'BullMQ job failed; the reconciler adds its row again'));
    return worker;
  }

  /**
   * The worker watchdog: BullMQ's workers have stopped taking jobs after a
   * Redis outage in several releases (taskforcesh/bullmq#4585, #4479, #4378)
   * while reporting themselves running. An idle worker of this node (no job
   * of its kind running here) that was handed no job between two looks while
   * jobs waited in its queue at both is replaced by a new one.
   */
  async #watchWorkers(): Promise<void> {
    for (const entry of this.#workers.values()) {
      if (this.#closed) return;
      if (entry.running.size > 0) {
        entry.watch = undefined;
        continue;
      }
      let waiting: number;
      try {
        waiting = await this.#redis(() => this.#queue(entry.kind).getWaitingCount());
      } catch {
        entry.watch = undefined; // Redis away: nothing to judge
        continue;
      }
      const before = entry.watch;
      entry.watch = waiting > 0 ? { started: entry.started } : undefined;
      if (waiting > 0 && before && before.started === entry.started && !this.#closed) {
        this.#log.warn({ kind: entry.kind, waiting }, 'BullMQ worker took no job while jobs waited; replacing it');
        const old = entry.worker;
        entry.worker = this.#newWorker(entry);
        entry.watch = undefined;
        this.workerRestarts++;
        void old.close(true).catch(() => undefined);
      }
    }
  }

  /** BullMQ's processor: claim the row, run it, store the outcome. Throws only when the claim itself could not be made (PostgreSQL down). */
  async #process(worker: KindWorker, bull: BullJob): Promise<void> {
    if (this.#closed) return;
    worker.started++;
    const id = (bull.data as Partial<Carried> | undefined)?.id;
    if (typeof id !== 'string') return;
    const token = `${this.#options.node}:${randomUUID()}`;
    const job = await this.#claim(id, token);
    if (!job) return; // done, gone, not yet due, held, or running elsewhere
    const run = this.#run(worker, job);
    worker.running.set(token, run);
    try {
      await run;
    } finally {
      worker.running.delete(token);
    }
  }

  /**
   * Claims a row, waiting out a short PostgreSQL outage (up to
   * CLAIM_PATIENCE_MS): a worker whose claims fail at once would otherwise
   * drain its whole BullMQ queue into failures, for the reconciler to add
   * again. Past that, the error goes to BullMQ (the job fails and is
   * dropped; the row stays due).
   */
  async #claim(id: string, token: string): Promise<ClaimedJob | undefined> {
    const began = Date.now();
    for (let tries = 0; ; tries++) {
      try {
        return await this.jobs.claim(id, token);
      } catch (err) {
        const unavailable = err instanceof ZegelError && err.code === 'ZEGEL_STORE_UNAVAILABLE';
        const pause = Math.min(250 * 2 ** tries, 2_000);
        if (!unavailable || this.#closed || Date.now() - began + pause > CLAIM_PATIENCE_MS) throw err;
        await new Promise((resolve) => setTimeout(resolve, pause));
      }
    }
  }

  async #run(worker: KindWorker, job: ClaimedJob): Promise<void> {
    /** Set once the outcome is being written: a renewal that then finds the row gone is no news. */
    let ending = false;
    const renewal = setInterval(() => {
      this.jobs.renew(job.id, job.token).then(
        (held) => {
          if (!held && !ending) this.#log.warn({ job: job.id, kind: job.kind }, 'job lease lost while running; its outcome will not be written');
        },
        (err: unknown) => this.#log.warn({ job: job.id, kind: job.kind, err: errInfo(err) }, 'could not renew a job lease'),
      );
    }, Math.max(50, Math.floor(this.#options.leaseMs / 3)));
    this.#renewals.set(job.token, renewal);
    try {
      let result: JobResult;
      try {
        const { token: _token, runAt: _runAt, ...visible } = job;
        result = await worker.handler(visible);
      } catch (err) {
        this.#log.error({ job: job.id, kind: job.kind, err: errInfo(err) }, 'job failed unexpectedly; will retry');
        result = { status: 'retry', runAt: this.#clock.now() + crashBackoff(job.attempts) };
      }
      if (this.#halted) return;
      ending = true;
      let dispatch: JobRef[];
      try {
        // the job's new state first: it locks the row and proves the lease is still ours
        dispatch = await this.#transactor.transaction(async (tx) => {
          if (result.status === 'done') {
            await this.jobs.complete(tx, job.id, job.token, []);
            if (result.record) await result.record(tx);
            return this.jobs.insert(tx, result.next ?? []);
          }
          if (result.status === 'held') {
            await this.jobs.hold(tx, job.id, job.token);
            if (result.record) await result.record(tx);
            return [];
          }
          const again = await this.jobs.reschedule(tx, job.id, job.token, result.runAt);
          if (result.record) await result.record(tx);
          return [again];
        });
      } catch (err) {
        // Nothing was written. The lease is left to run out: the job runs
        // again after it (a pause that keeps a failing store from a busy loop).
        const lost = err instanceof ZegelError && err.code === 'ZEGEL_JOB_LEASE_LOST';
        this.#log[lost ? 'warn' : 'error']({ job: job.id, kind: job.kind, err: errInfo(err) }, lost ? 'job outcome dropped: another node took the job over' : 'could not store job outcome');
        return;
      }
      await this.#dispatch(dispatch);
      if (result.afterCommit) {
        await result.afterCommit().catch((err: unknown) => this.#log.warn({ job: job.id, kind: job.kind, err: errInfo(err) }, 'job clean-up after its commit failed; start-up sweeps what is left'));
      }
    } finally {
      clearInterval(renewal);
      this.#renewals.delete(job.token);
    }
  }

  // ---- the reconciler

  /**
   * One reconciler pass (also run by the timer): makes BullMQ carry every
   * due, unleased row. Skipped when another node's pass holds the lock.
   */
  reconcile(): Promise<void> {
    if (this.#closed) return Promise.resolve();
    this.#reconciling ??= this.#reconcileOnce().finally(() => {
      this.#reconciling = undefined;
      this.#lastReconcile = Date.now();
    });
    return this.#reconciling;
  }

  async #reconcileOnce(): Promise<void> {
    let checkout;
    try {
      checkout = await this.#pool.checkout();
    } catch (err) {
      this.#log.warn({ err: errInfo(err) }, 'job reconciler: PostgreSQL unavailable');
      return;
    }
    let locked = false;
    try {
      const { rows } = await checkout.client.query<{ ok: boolean }>('SELECT pg_try_advisory_lock($1, $2) AS ok', [...RECONCILE_LOCK]);
      locked = rows[0]?.ok === true;
      if (!locked) return;
      const refs = await this.jobs.dueUnleased(this.#options.reconcileBatch, this.#options.reconcileGraceMs);
      const seen = new Set<string>();
      const add: JobRef[] = [];
      let promoted = 0;
      let rescued = 0;
      await Promise.all(
        refs.map(async (ref) => {
          const queue = this.#queue(ref.kind);
          const jobId = bullJobId(ref);
          try {
            const state = await this.#redis(() => queue.getJobState(jobId));
            if (state === 'unknown') add.push(ref);
            else if (state === 'delayed') {
              const job = await this.#redis(() => queue.getJob(jobId));
              await this.#redis(async () => job?.promote());
              promoted++;
            } else if (state === 'completed' || state === 'failed') {
              await this.#redis(() => queue.remove(jobId));
              add.push(ref);
            } else if (state === 'active') {
              // active in BullMQ, unleased in PostgreSQL: about to be claimed, or its worker is gone
              seen.add(jobId);
              if (this.#activeSeen.has(jobId)) {
                const next = await this.jobs.redispatch(ref.id, ref.dispatch);
                if (next) {
                  add.push(next);
                  rescued++;
                }
              }
            }
          } catch (err) {
            this.#log.warn({ kind: ref.kind, err: errInfo(err) }, 'job reconciler: Redis call failed');
          }
        }),
      );
      this.#activeSeen = seen;
      await this.#dispatch(add);
      this.reconcilerStats.passes++;
      this.reconcilerStats.added += add.length - rescued;
      this.reconcilerStats.promoted += promoted;
      this.reconcilerStats.rescued += rescued;
      if (add.length || promoted) this.#log.info({ added: add.length - rescued, promoted, rescued }, 'job reconciler handed due jobs to BullMQ');
    } catch (err) {
      this.#log.warn({ err: errInfo(err) }, 'job reconciler pass failed');
    } finally {
      if (locked) await checkout.client.query('SELECT pg_advisory_unlock($1, $2)', [...RECONCILE_LOCK]).catch(() => undefined);
      checkout.release();
    }
  }

  // ---- reads

  /** Jobs running on this node now (claimed here, outcome not yet written). */
  get runningHere(): number {
    let n = 0;
    for (const w of this.#workers.values()) n += w.running.size;
    return n;
  }

  async counts(): Promise<QueueCounts[]> {
    return (await this.jobs.counts()).map((c) => ({
      kind: c.kind,
      ready: c.due,
      delayed: c.delayed,
      running: c.running,
      ...(c.held ? { held: c.held } : {}),
      oldestCreatedAt: c.oldest,
    }));
  }

  held(): Promise<HeldJob[]> {
    return this.jobs.held();
  }

  list(tx?: Tx): Promise<StoredJob[]> {
    return this.jobs.list(tx);
  }

  get(id: string, tx?: Tx): Promise<StoredJob | undefined> {
    return this.jobs.get(id, tx);
  }

  /** Makes a job due at `at` and ready (a held one too); false when there is no such job. Call `poke()` after the commit. */
  async retryAt(tx: Tx, id: string, at: number): Promise<boolean> {
    const ref = await this.jobs.retryAt(tx, id, at);
    if (ref) this.#pending.push({ tx: pgTx(tx), refs: [ref] });
    return ref !== undefined;
  }

  remove(tx: Tx, id: string): Promise<boolean> {
    return this.jobs.remove(tx, id);
  }

  /** Resolves when no job of a kind worked here is due or running anywhere (tests and benchmarks). */
  async idle(): Promise<void> {
    for (;;) {
      this.#flush();
      const counts = await this.jobs.counts();
      const busy = [...this.#workers.values()].some((w) => w.running.size > 0);
      if (!busy && !this.#pending.length && counts.every((c) => !this.#workers.has(c.kind) || (c.due === 0 && c.running === 0))) return;
      if (Date.now() - this.#lastReconcile >= 100) void this.reconcile();
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
  }

  // ---- stopping

  #halted = false;

  #stopTimers(): void {
    this.#closed = true;
    if (this.#timer) clearInterval(this.#timer);
    if (this.#watchTimer) clearInterval(this.#watchTimer);
    this.#timer = undefined;
    this.#watchTimer = undefined;
  }

  /**
   * Stops taking jobs and waits up to `timeoutMs` for running ones. A job
   * still running then gives up its lease (due again at once, for any node)
   * and its outcome, should it come later, is not written.
   */
  async close(timeoutMs: number): Promise<void> {
    if (this.#closed) return;
    this.#stopTimers();
    this.#flush();
    await Promise.all([...this.#workers.values()].map((w) => w.worker.pause(true).catch(() => undefined)));
    const running = [...this.#workers.values()].flatMap((w) => [...w.running.values()]);
    if (running.length) {
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([Promise.allSettled(running), new Promise((resolve) => (timer = setTimeout(resolve, timeoutMs)))]);
      clearTimeout(timer);
    }
    const left = [...this.#renewals.keys()];
    for (const timer of this.#renewals.values()) clearInterval(timer);
    this.#renewals.clear();
    if (left.length) {
      this.#halted = true;
      await this.jobs.release(left).catch((err: unknown) => this.#log.warn({ err: errInfo(err) }, 'could not release the leases of jobs still running; they run again once the leases run out'));
    }
    await this.#closeRedis();
  }

  /**
   * Stops at once, as a crash would: no job is finished or released, no
   * lease renewed, nothing more written; what ran here is due again once its
   * lease runs out. For tests of a node's death, and for a node that must
   * stop without touching the store.
   */
  async halt(): Promise<void> {
    if (this.#halted) return;
    this.#halted = true;
    this.#stopTimers();
    for (const timer of this.#renewals.values()) clearInterval(timer);
    this.#renewals.clear();
    this.#pending = [];
    await this.#closeRedis();
  }

  async #closeRedis(): Promise<void> {
    await Promise.all([...this.#workers.values()].map((w) => w.worker.close(true).catch(() => undefined)));
    await Promise.all([...this.#queues.values()].map((q) => q.close().catch(() => undefined)));
  }
}
