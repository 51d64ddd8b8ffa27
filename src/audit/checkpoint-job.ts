import type crypto from 'node:crypto';
import type { Clock } from '../clock.js';
import type { Logger } from '../log.js';
import type { Job, JobQueue, JobResult } from '../queue/types.js';
import type { Db } from '../store/db.js';
import type { GroupCommitter } from '../store/group-commit.js';
import { checkpointSync, keyId, loadSigningKey, publicKeyPem } from './checkpoint.js';
import { purgeAuditSync, type AuditPurgeResult } from './retention.js';

/**
 * The periodic audit checkpoint (kind `audit-checkpoint`): signs the chain
 * head every interval. One chain of jobs with deterministic ids
 * `audit-checkpoint:<slot>`, like the purge job (src/pipeline/purge-job.ts).
 * Each run first removes records past retention.audit from the start of the
 * chain (src/audit/retention.ts), which signs before it removes.
 */
export class AuditCheckpointWorker {
  readonly #db: Db;
  readonly #committer: GroupCommitter;
  readonly #clock: Clock;
  readonly #log: Logger;
  readonly #intervalMs: number;
  readonly #key: crypto.KeyObject;
  readonly #retentionMs: number;

  constructor(deps: { db: Db; committer: GroupCommitter; clock: Clock; log: Logger; dataDir: string; signingKeyFile?: string | undefined; intervalMs: number; retentionMs: number }) {
    this.#retentionMs = deps.retentionMs;
    this.#db = deps.db;
    this.#committer = deps.committer;
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

  async ensureScheduled(queue: JobQueue): Promise<void> {
    const now = this.#clock.now();
    await queue.add([{ id: `audit-checkpoint:${Math.floor(now / this.#intervalMs)}`, kind: 'audit-checkpoint', payload: {}, runAt: now }]);
  }

  /** Signs the head now, durably; undefined when there is nothing new to sign. */
  checkpoint(options: { force?: boolean } = {}): Promise<{ seq: number; hash: string } | undefined> {
    return this.#committer.write(() => checkpointSync(this.#db, this.#key, this.#clock.now(), options));
  }

  /** Removes records past retention.audit from the start of the chain, signing first. */
  purge(): Promise<AuditPurgeResult> {
    return this.#committer.write(() => purgeAuditSync(this.#db, this.#key, this.#clock.now(), this.#retentionMs));
  }

  readonly handle = async (job: Job): Promise<JobResult> => {
    const purged = await this.purge();
    if (purged.removed) this.#log.info({ job: job.id, removed: purged.removed, through: purged.anchor?.seq }, 'audit records past retention removed from the start of the chain');
    const cp = await this.checkpoint();
    if (cp) this.#log.debug({ job: job.id, seq: cp.seq }, 'audit checkpoint signed');
    const slot = Math.floor(this.#clock.now() / this.#intervalMs) + 1;
    return { status: 'done', next: [{ id: `audit-checkpoint:${slot}`, kind: 'audit-checkpoint', payload: {}, runAt: slot * this.#intervalMs }] };
  };
}
