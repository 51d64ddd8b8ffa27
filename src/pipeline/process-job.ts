import { newJob } from '../queue/registry.js';
import type { Logger } from '../log.js';
import type { Job, JobResult, NewJob } from '../queue/types.js';
import type { MessageSpool } from '../spool/types.js';
import type { Store as Backend } from '../store/store.js';
import type { Decision } from '../store/messages.js';
import { ZegelError } from '../errors.js';
import { deliverJob } from '../deliver/deliver-job.js';
import type { DsnSender } from '../deliver/dsn-sender.js';
import type { RelayPolicy } from '../smtp/policy.js';
import type { ClassifyMessage, Verdict } from './decide.js';
import { secureJob } from './secure-job.js';
import type { RelayMetrics } from '../ops/metrics.js';
import type { Tx } from '../store/tx.js';

export interface ProcessPayload {
  messageId: string;
  /** X-Zegel-Origin verified at ingress (Message-ID, recipients, body): the relay made this mail; consumed once here. */
  relayOrigin?: boolean;
}

export function processJob(messageId: string, relayOrigin: boolean): NewJob {
  return newJob('process', `process:${messageId}`, { messageId, relayOrigin });
}

export interface ProcessDeps {
  log: Logger;
  spool: MessageSpool;
  backend: Backend;
  policy: RelayPolicy;
  classify: ClassifyMessage;
  dsn: DsnSender;
  metrics?: RelayMetrics | undefined;
}

const RELAY_ORIGIN: Verdict = { decision: 'deliver', subjectSensitive: false, matches: [] };

/**
 * The process job, the one place that knows the order of things: classify the
 * spooled message (streaming), decide per recipient, record the decisions,
 * and hand over. `deliver` goes to the delivery queue; `encrypt` goes to the secure
 * job (encrypted store and notifications); `block` stops the whole message, internal recipients
 * included, and the sender gets a DSN naming the rule. Internal recipients
 * otherwise always get the original. Running it twice records the same
 * decisions and adds the same jobs.
 */
export class Processor {
  readonly #deps: ProcessDeps;

  constructor(deps: ProcessDeps) {
    this.#deps = deps;
  }

  readonly handle = async (job: Job<ProcessPayload>): Promise<JobResult> => {
    const { backend, spool, policy, log } = this.#deps;
    const { messageId } = job.payload;
    const message = await backend.messages.get(messageId);
    if (!message) {
      log.error({ job: job.id, queueId: messageId }, 'process job for an unknown message; dropped');
      return { status: 'done' };
    }
    if (!message.spool) throw new ZegelError('ZEGEL_SPOOL_MISSING', `spool file of ${messageId} is gone`);
    const recipients = await backend.messages.recipients(messageId);
    let relayOrigin = job.payload.relayOrigin ?? false;
    if (relayOrigin && !(await backend.transaction((tx) => backend.messages.claimRelayOrigin(tx, messageId, message.messageId, recipients.map((r) => r.address))))) {
      log.warn({ queueId: messageId }, 'X-Zegel-Origin verifies but does not match a mail the relay made for these recipients (replayed?): classified as usual');
      relayOrigin = false;
    }
    const started = Date.now();
    // a classifier failure throws: the job is retried and the message never leaves unchecked
    const verdict = relayOrigin ? RELAY_ORIGIN : await this.#deps.classify({ message, open: () => spool.read(messageId, message.size) });
    const rules = [...new Set(verdict.matches.map((m) => m.rule))];
    const decisions = recipients.map((recipient) => {
      let decision: Decision;
      let reason: string;
      if (verdict.decision === 'block') [decision, reason] = ['block', `rule:${verdict.blockedBy?.rule ?? 'block'}`];
      else if (relayOrigin) [decision, reason] = ['deliver', 'relay-origin'];
      else if (policy.isInternal(recipient.address)) [decision, reason] = ['deliver', 'internal-recipient'];
      else [decision, reason] = [verdict.decision, rules.length ? `rules:${rules.join(',')}` : 'no-findings'];
      return { idx: recipient.idx, address: recipient.address, decision, reason };
    });
    // the classification and the decisions; on the normal path they commit with the job's completion and its next jobs
    const record = async (tx: Tx): Promise<void> => {
      if (!relayOrigin && message.state === 'queued') {
        await backend.events.append(tx, {
          messageId,
          type: 'classified',
          detail: { decision: verdict.decision, subjectSensitive: verdict.subjectSensitive, matches: verdict.matches },
        });
      }
      await backend.messages.recordDecisions(tx, messageId, decisions);
    };
    this.#deps.metrics?.decided(decisions, verdict.matches);
    const idxOf = (d: Decision) => decisions.filter((x) => x.decision === d).map((x) => x.idx);
    const deliver = idxOf('deliver');
    const encrypt = idxOf('encrypt');
    const internal = decisions.filter((d) => d.reason === 'internal-recipient').length;
    const blocked = decisions.length - deliver.length - encrypt.length;
    log.info(
      {
        queueId: messageId,
        decision: verdict.decision,
        rules,
        recipients: decisions.length,
        internal,
        delivered: deliver.length,
        encrypted: encrypt.length,
        blocked,
        ms: Date.now() - started,
      },
      processedInWords(verdict.decision, relayOrigin, { recipients: decisions.length, internal, delivered: deliver.length, encrypted: encrypt.length }),
    );
    if (verdict.decision === 'block') {
      // the decisions first: the DSN names the blocking rule, then every recipient bounces
      await backend.transaction(record);
      await this.#block(messageId, verdict);
      return { status: 'done' };
    }
    const next: NewJob[] = [];
    if (deliver.length) next.push(deliverJob(messageId, 'target', deliver));
    if (encrypt.length) next.push(secureJob(messageId, encrypt, verdict.subjectSensitive));
    return { status: 'done', next, record };
  };

  /** Bounces every recipient of a blocked message and tells the sender which rule stopped it. */
  async #block(messageId: string, verdict: Verdict): Promise<void> {
    const { backend, spool } = this.#deps;
    const message = (await backend.messages.get(messageId))!;
    const pending = (await backend.messages.recipients(messageId)).filter((r) => r.state === 'pending');
    const rule = verdict.blockedBy?.rule ?? 'block';
    const reply = `550 5.7.1 Blocked by rule ${rule}`;
    await this.#deps.dsn.send(
      message,
      pending.map((rcpt) => ({
        rcpt,
        bounce: { address: rcpt.address, orcpt: rcpt.orcpt, reply, status: '5.7.1', reason: 'blocked' as const, explanation: verdict.blockedBy?.description },
      })),
    );
    const left = await backend.transaction((tx) => backend.messages.recordAttempt(tx, messageId, pending.map((r) => ({ idx: r.idx, outcome: 'bounced' as const, reply })), { rule }));
    if (left === 0) await spool.remove(messageId);
  }
}

const plural = (n: number, word: string) => `${n} ${word}${n === 1 ? '' : 's'}`;
const get = (n: number) => (n === 1 ? 'gets' : 'get');

/**
 * The log message of a processed message, in words per class of recipient:
 * the message's decision alone (`encrypt`) does not say that internal
 * recipients still got the original.
 */
export function processedInWords(
  decision: Decision,
  relayOrigin: boolean,
  n: { recipients: number; internal: number; delivered: number; encrypted: number },
): string {
  if (decision === 'block') return `message processed: decision block: ${plural(n.recipients, 'recipient')} blocked, none delivered; the sender gets a DSN`;
  if (relayOrigin) return `message processed: relay-made mail: ${plural(n.delivered, 'recipient')} ${get(n.delivered)} it as made`;
  const external = n.recipients - n.internal;
  const parts = [`${plural(n.internal, 'internal recipient')} ${get(n.internal)} the original`];
  if (decision === 'encrypt') parts.push(`${plural(n.encrypted, 'external recipient')} encrypted`);
  else parts.push(`${plural(external, 'external recipient')} ${get(external)} the original`);
  return `message processed: decision ${decision}: ${parts.join(', ')}`;
}
