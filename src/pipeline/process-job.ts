import type { Logger } from '../log.js';
import type { Job, JobResult, NewJob } from '../queue/types.js';
import type { Spool } from '../spool/spool.js';
import type { Backend } from '../store/sqlite-backend.js';
import { ZegelError } from '../errors.js';
import { deliverJob } from '../deliver/deliver-job.js';
import type { RelayPolicy } from '../smtp/policy.js';
import type { DecideFn, RecipientDecision } from './decide.js';
import { outlineMessage } from './walk.js';

export interface ProcessPayload {
  messageId: string;
  /** X-Zegel-Origin verified at ingress: the relay made this message, do not classify it again. */
  relayOrigin?: boolean;
}

export function processJob(messageId: string, relayOrigin: boolean): NewJob {
  return { id: `process:${messageId}`, kind: 'process', payload: { messageId, relayOrigin } satisfies ProcessPayload };
}

export interface ProcessDeps {
  log: Logger;
  spool: Spool;
  backend: Backend;
  policy: RelayPolicy;
  decide: DecideFn;
}

/**
 * The process job, the one place that knows the order of things: read the
 * spooled message (streaming), decide per recipient, record the decisions,
 * and hand over to delivery. Internal recipients always get the original.
 * Running it twice records the same decisions and adds the same jobs.
 */
export class Processor {
  readonly #deps: ProcessDeps;

  constructor(deps: ProcessDeps) {
    this.#deps = deps;
  }

  readonly handle = async (job: Job<ProcessPayload>): Promise<JobResult> => {
    const { backend, spool, policy, log } = this.#deps;
    const { messageId, relayOrigin } = job.payload;
    const message = backend.store.getMessage(messageId);
    if (!message) {
      log.error({ job: job.id, queueId: messageId }, 'process job for an unknown message; dropped');
      return { status: 'done' };
    }
    if (!message.spool) throw new ZegelError('ZEGEL_SPOOL_MISSING', `spool file of ${messageId} is gone`);
    const recipients = backend.store.getRecipients(messageId);
    const outline = await outlineMessage(spool.read(messageId, message.size));
    const decisions: Array<{ idx: number; address: string } & RecipientDecision> = [];
    for (const recipient of recipients) {
      let decision: RecipientDecision;
      if (policy.isInternal(recipient.address)) decision = { decision: 'deliver', reason: 'internal-recipient' };
      else if (relayOrigin) decision = { decision: 'deliver', reason: 'relay-origin' };
      else decision = await this.#deps.decide({ message, recipient, outline });
      decisions.push({ idx: recipient.idx, address: recipient.address, ...decision });
    }
    await backend.store.recordDecisions(messageId, decisions);
    log.info({ queueId: messageId, recipients: decisions.length, parts: outline.parts.length, deliver: decisions.filter((d) => d.decision === 'deliver').length }, 'message processed');
    const toDeliver = decisions.filter((d) => d.decision === 'deliver').map((d) => d.idx);
    return { status: 'done', next: toDeliver.length ? [deliverJob(messageId, 'target', toDeliver)] : [] };
  };
}
