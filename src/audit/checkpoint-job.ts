import type crypto from 'node:crypto';
import type { Clock } from '../clock.js';
import type { Logger } from '../log.js';
import { keyId, loadSigningKey, publicKeyPem } from './checkpoint.js';
import { soleLeader, type PeriodicLeader } from './leader.js';
import type { AuditPurgeResult } from './retention.js';
import type { AuditTrailStore } from './trail.js';

/** What the worker runs on. */
export interface AuditCheckpointDeps {
  /** Signing and purging: AuditTrail on SQLite, PgAuditTrail on PostgreSQL (Store.audit). */
  trail: AuditTrailStore;
  clock: Clock;
  log: Logger;
  dataDir: string;
  /** audit.signingKeyFile; without it data.dir/audit-signing.pem, made at the first start (SQLite only: a cluster names the file). */
  signingKeyFile?: string | undefined;
  intervalMs: number;
  retentionMs: number;
  /**
   * Who runs the periodic work in a cluster (src/audit/leader.ts): on
   * PostgreSQL a PgSessionLeader, so one node signs and purges per interval;
   * by default this node always does (SQLite).
   */
  leader?: PeriodicLeader | undefined;
}

/**
 * The periodic audit checkpoint: signs the chain head every
 * audit.checkpointInterval, on a timer of the relay process (not a queue job:
 * nothing needs to survive a restart, as the relay signs at start and at stop
 * too). Each run first removes records past retention.audit from the start of
 * the chain (src/audit/retention.ts), which signs before it removes.
 *
 * Once per cluster: every node runs the timer, but a run does its work only
 * on the node that leads (`leader`, asked at each run), so with three nodes
 * there is one checkpoint and one purge per interval, and when the leading
 * node dies another takes over at its next run (docs/cluster.md, "Periodic
 * work: once per cluster"). `checkpoint()` and `purge()` themselves are not
 * guarded: the relay signs at stop, and the admin commands sign on demand.
 */
export class AuditCheckpointWorker {
  /** Signing and purging, the same code `zegel audit checkpoint|purge` runs. */
  readonly #trail: AuditTrailStore;
  readonly #clock: Clock;
  readonly #log: Logger;
  readonly #intervalMs: number;
  readonly #key: crypto.KeyObject;
  readonly #retentionMs: number;
  readonly #leader: PeriodicLeader;
  #timer: NodeJS.Timeout | undefined;
  #running: Promise<void> | undefined;
  /** Runs this node did the work of, and runs it left to the leading node. */
  readonly stats = { led: 0, skipped: 0 };

  constructor(deps: AuditCheckpointDeps) {
    this.#retentionMs = deps.retentionMs;
    this.#trail = deps.trail;
    this.#clock = deps.clock;
    this.#log = deps.log;
    this.#intervalMs = deps.intervalMs;
    this.#leader = deps.leader ?? soleLeader;
    const { key, file, created } = loadSigningKey({ signingKeyFile: deps.signingKeyFile, dataDir: deps.dataDir, create: true });
    this.#key = key;
    if (created) {
      this.#log.warn(
        { file, keyId: keyId(key), publicKey: publicKeyPem(key) },
        'made an audit signing key; keep its public key (zegel audit public-key) outside the data directory, for zegel audit verify --public-key',
      );
    }
  }

  /** Runs now (signs what the last run left unsigned) and then every interval. */
  start(): void {
    if (this.#timer) return;
    void this.run();
    this.#timer = setInterval(() => void this.run(), this.#intervalMs);
    this.#timer.unref();
  }

  /** Stops the timer and gives up the lead, so another node takes it at its next run. */
  stop(): void {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = undefined;
    this.#leader.release();
  }

  /** Signs the head now, durably; undefined when there is nothing new to sign. */
  checkpoint(options: { force?: boolean } = {}): Promise<{ seq: number; hash: string } | undefined> {
    return this.#trail.checkpoint(this.#key, this.#clock.now(), options);
  }

  /** Removes records past retention.audit from the start of the chain, signing first. */
  purge(): Promise<AuditPurgeResult> {
    return this.#trail.purge(this.#key, this.#clock.now(), this.#retentionMs);
  }

  /**
   * One run: on the leading node the retention purge, then the checkpoint;
   * elsewhere nothing. One run at a time. Errors are logged, never thrown (a timer calls this).
   */
  run(): Promise<void> {
    this.#running ??= this.#runOnce().finally(() => {
      this.#running = undefined;
    });
    return this.#running;
  }

  async #runOnce(): Promise<void> {
    try {
      if (!(await this.#leader.lead())) {
        this.stats.skipped++;
        return;
      }
      this.stats.led++;
      const purged = await this.purge();
      if (purged.removed) this.#log.info({ removed: purged.removed, through: purged.anchor?.seq }, 'audit records past retention removed from the start of the chain');
      const cp = await this.checkpoint();
      if (cp) this.#log.debug({ seq: cp.seq }, 'audit checkpoint signed');
    } catch (err) {
      this.#log.error({ err: { message: (err as Error).message } }, 'audit checkpoint failed');
    }
  }
}
