import type crypto from 'node:crypto';
import type { Clock } from '../clock.js';
import type { Logger } from '../log.js';
import type { Db } from '../store/db.js';
import type { EventLog } from '../store/events.js';
import type { Transactor } from '../store/tx.js';
import { keyId, loadSigningKey, publicKeyPem } from './checkpoint.js';
import type { AuditPurgeResult } from './retention.js';
import { AuditTrail } from './trail.js';

/**
 * The periodic audit checkpoint: signs the chain head every
 * audit.checkpointInterval, on a timer of the relay process (not a queue job:
 * nothing needs to survive a restart, as the relay signs at start and at stop
 * too). Each run first removes records past retention.audit from the start of
 * the chain (src/audit/retention.ts), which signs before it removes.
 */
export class AuditCheckpointWorker {
  /** Signing and purging, the same code `zegel audit checkpoint|purge` runs. */
  readonly #trail: AuditTrail;
  readonly #clock: Clock;
  readonly #log: Logger;
  readonly #intervalMs: number;
  readonly #key: crypto.KeyObject;
  readonly #retentionMs: number;
  #timer: NodeJS.Timeout | undefined;

  constructor(deps: { db: Db; committer: Transactor; events: EventLog; clock: Clock; log: Logger; dataDir: string; signingKeyFile?: string | undefined; intervalMs: number; retentionMs: number }) {
    this.#retentionMs = deps.retentionMs;
    this.#trail = new AuditTrail(deps.db, deps.committer, deps.events);
    this.#clock = deps.clock;
    this.#log = deps.log;
    this.#intervalMs = deps.intervalMs;
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

  stop(): void {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = undefined;
  }

  /** Signs the head now, durably; undefined when there is nothing new to sign. */
  checkpoint(options: { force?: boolean } = {}): Promise<{ seq: number; hash: string } | undefined> {
    return this.#trail.checkpoint(this.#key, this.#clock.now(), options);
  }

  /** Removes records past retention.audit from the start of the chain, signing first. */
  purge(): Promise<AuditPurgeResult> {
    return this.#trail.purge(this.#key, this.#clock.now(), this.#retentionMs);
  }

  /** One run: the retention purge, then the checkpoint. Errors are logged, never thrown (a timer calls this). */
  async run(): Promise<void> {
    try {
      const purged = await this.purge();
      if (purged.removed) this.#log.info({ removed: purged.removed, through: purged.anchor?.seq }, 'audit records past retention removed from the start of the chain');
      const cp = await this.checkpoint();
      if (cp) this.#log.debug({ seq: cp.seq }, 'audit checkpoint signed');
    } catch (err) {
      this.#log.error({ err: { message: (err as Error).message } }, 'audit checkpoint failed');
    }
  }
}
