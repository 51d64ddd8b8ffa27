import { newJob } from '../queue/registry.js';
import type { Route } from '../vocabulary.js';
import ms from 'ms';
import type { Clock } from '../clock.js';
import type { Logger } from '../log.js';
import type { Job, JobResult, NewJob } from '../queue/types.js';
import type { MessageSpool } from '../spool/types.js';
import type { Store as Backend } from '../store/store.js';
import type { AttemptResult, MessageRecord, RecipientRecord } from '../store/messages.js';
import type { Bounce } from './dsn.js';
import { wantsFailureReport, type DsnSender } from './dsn-sender.js';
import { enhancedStatus, nextAttempt, type RetryPolicy } from './retry.js';
import { TransportError, type Envelope, type Transport } from './transport.js';
import type { RelayMetrics } from '../ops/metrics.js';
import type { Tx } from '../store/tx.js';

/** `target` (delivery.target, the outside world) or `internal` (delivery.internalTarget): src/vocabulary.ts. */
export type { Route } from '../vocabulary.js';

export interface DeliverPayload {
  messageId: string;
  route: Route;
  /** Recipient indexes this job delivers to. */
  recipients: number[];
}

export function deliverJob(messageId: string, route: Route, recipients: number[]): NewJob {
  return newJob('deliver', `deliver:${messageId}:${route}`, { messageId, route, recipients });
}

export interface DeliveryDeps {
  clock: Clock;
  log: Logger;
  spool: MessageSpool;
  backend: Backend;
  dsn: DsnSender;
  transports: Record<Route, Transport>;
  retry: RetryPolicy;
  metrics?: RelayMetrics | undefined;
}

/**
 * One SMTP transaction per set of recipients that share their next hop (the
 * MX transport groups them by domain) and their DSN parameters (NOTIFY and
 * ORCPT are per transaction in nodemailer); usually one.
 */
function toEnvelopes(message: MessageRecord, recipients: RecipientRecord[], hop?: (address: string) => string): Array<{ envelope: Envelope; recipients: RecipientRecord[] }> {
  const groups = new Map<string, RecipientRecord[]>();
  for (const r of recipients) {
    const dsnKey = r.orcpt || r.notify ? `${r.notify?.join(',') ?? ''}|${r.orcpt ?? r.address}` : '';
    const key = `${hop ? hop(r.address) : ''}\n${dsnKey}`;
    groups.set(key, [...(groups.get(key) ?? []), r]);
  }
  return [...groups.values()].map((group) => {
    const first = group[0]!;
    // every recipient of a group shares its NOTIFY and ORCPT (they are in the key)
    const hasDsn = message.ret || message.envId || first.orcpt || first.notify;
    return {
      recipients: group,
      envelope: {
        from: message.mailFrom,
        to: group.map((r) => r.address),
        dsn: hasDsn ? { ret: message.ret, envid: message.envId, notify: first.notify, orcpt: first.orcpt } : undefined,
      },
    };
  });
}

/**
 * The deliver job: sends the spooled bytes, unchanged, to the route's next
 * hop for every recipient of the job that is still pending; records each
 * outcome; retries temporary failures on the configured schedule; bounces
 * permanent ones (and expired ones) with a DSN to the envelope sender; and
 * removes the spool file once no recipient needs it.
 */
export class Delivery {
  readonly #deps: DeliveryDeps;

  constructor(deps: DeliveryDeps) {
    this.#deps = deps;
  }

  readonly handle = async (job: Job<DeliverPayload>): Promise<JobResult> => {
    const { backend, clock, log, spool } = this.#deps;
    const { messageId, route } = job.payload;
    const message = await backend.messages.get(messageId);
    if (!message) {
      log.error({ job: job.id, queueId: messageId }, 'deliver job for an unknown message; dropped');
      return { status: 'done' };
    }
    const wanted = new Set(job.payload.recipients);
    const pending = (await backend.messages.recipients(messageId)).filter((r) => wanted.has(r.idx) && r.state === 'pending');
    if (!pending.length || !message.spool) {
      await this.#cleanUp(messageId);
      return { status: 'done' };
    }
    const transport = this.#deps.transports[route];
    const attempt = job.attempts + 1;
    const started = clock.now();
    const results: AttemptResult[] = [];
    const tag = `${messageId}.${route}.${attempt}`;
    let temporary: string | undefined;
    const transactions = toEnvelopes(message, pending, transport.group?.bind(transport));
    // relay-made mail (notifications, receipts, code mails, replies) carries link keys or codes: its session must meet the secrets floor
    const kind = { secrets: message.origin === 'notification' };
    for (const [i, { envelope, recipients }] of transactions.entries()) {
      try {
        const sent = await transport.send(envelope, spool.source(messageId), transactions.length > 1 ? `${tag}.${i}` : tag, kind);
        const facts = sent.tls ? { tls: sent.tls } : {};
        const byAddress = new Map(recipients.map((r) => [r.address, r]));
        for (const address of sent.accepted) {
          const rcpt = byAddress.get(address);
          if (rcpt) results.push({ idx: rcpt.idx, outcome: 'delivered', reply: sent.reply, remoteMta: sent.remoteMta, ...facts });
        }
        for (const refusal of sent.rejected) {
          const rcpt = byAddress.get(refusal.address);
          if (!rcpt) continue;
          results.push({ idx: rcpt.idx, outcome: refusal.code >= 500 ? 'bounced' : 'deferred', reply: refusal.reply, remoteMta: sent.remoteMta, ...facts });
        }
        // a recipient the next hop did not mention stays pending and is tried again
        for (const rcpt of recipients) {
          if (!results.some((r) => r.idx === rcpt.idx)) results.push({ idx: rcpt.idx, outcome: 'deferred', reply: sent.reply, remoteMta: sent.remoteMta, ...facts });
        }
      } catch (err) {
        const failure = err instanceof TransportError ? err : new TransportError(0, (err as Error).message, transport.name);
        if (!(err instanceof TransportError)) temporary = (err as Error).message;
        for (const rcpt of recipients) {
          results.push({ idx: rcpt.idx, outcome: failure.permanent ? 'bounced' : 'deferred', reply: failure.reply, remoteMta: failure.remoteMta, ...(failure.tls ? { tls: failure.tls } : {}) });
        }
      }
    }

    const deferred = results.filter((r) => r.outcome === 'deferred');
    const retry = deferred.length ? nextAttempt(this.#deps.retry, attempt, message.receivedAt, clock.now()) : undefined;
    if (retry?.action === 'give-up') {
      for (const r of deferred) {
        r.outcome = 'bounced';
        r.reply = `${r.reply} (gave up after ${ms(this.#deps.retry.giveUpAfter, { long: true })} of retries)`;
      }
    }
    for (const r of results) {
      const rcpt = pending.find((p) => p.idx === r.idx)!;
      log.info(
        { queueId: messageId, job: job.id, attempt, to: rcpt.address, route: transport.name, result: r.outcome, reply: r.reply, remoteMta: r.remoteMta, ...(r.tls ? { tls: r.tls } : {}), ms: clock.now() - started, ...(temporary ? { error: temporary } : {}) },
        'delivery attempt',
      );
    }

    this.#deps.metrics?.deliveryAttempt(route, results);
    const bounces = results.filter((r) => r.outcome === 'bounced');
    const held = bounces.length ? await this.#reportFailures(message, pending, bounces, retry?.action === 'give-up') : undefined;
    // a held recipient stays pending (its spool file stays) until an admin acts
    if (held?.idx.size) for (const r of results) if (held.idx.has(r.idx)) r.outcome = 'deferred';
    const heldResults = held?.idx.size ? results.filter((r) => held.idx.has(r.idx)) : [];
    // the outcomes, for held recipients their `held` events, and the job's new state: one commit
    let stillPending = -1;
    const record = async (tx: Tx): Promise<void> => {
      stillPending = await backend.messages.recordAttempt(tx, messageId, results, { route: transport.name });
      for (const r of heldResults) {
        const rcpt = pending.find((p) => p.idx === r.idx)!;
        await backend.events.append(tx, { messageId, recipient: rcpt.address, type: 'held', detail: { job: job.id, reason: held!.reason, reply: r.reply, remoteMta: r.remoteMta } });
      }
    };
    // the spool file goes once no recipient needs it, after the commit that says so
    const afterCommit = async (): Promise<void> => {
      if (stillPending === 0) await spool.remove(messageId);
    };
    if (held?.idx.size) {
      this.#hold(job, message, heldResults, held.reason);
      return { status: 'held', record };
    }
    if (retry?.action === 'retry') return { status: 'retry', runAt: retry.at, record };
    return { status: 'done', record, afterCommit };
  };

  /**
   * Reports the recipients that bounced in this attempt (written before the
   * bounce is recorded): a DSN to the sender where one is wanted; for mail
   * the relay made itself that reaches nobody that way, a notice to the
   * postmaster. Returns the recipients that must be held instead: those of
   * a postmaster notice (never bounced again: no loop), and those with no
   * postmaster to tell.
   */
  async #reportFailures(message: MessageRecord, pending: RecipientRecord[], bounced: AttemptResult[], expired: boolean): Promise<{ idx: Set<number>; reason: 'postmaster-notice-failed' | 'no-postmaster' } | undefined> {
    const failures = bounced.map((result) => {
      const rcpt = pending.find((p) => p.idx === result.idx)!;
      const timedOut = expired && !/^5/.test(result.reply);
      const bounce: Bounce = {
        address: rcpt.address,
        orcpt: rcpt.orcpt,
        reply: result.reply,
        status: timedOut ? enhancedStatus(result.reply, 4).replace(/^4\.0\.0$/, '4.4.7') : enhancedStatus(result.reply, 5),
        remoteMta: result.remoteMta,
        reason: timedOut ? 'expired' : 'refused',
      };
      return { rcpt, bounce };
    });
    const { dsn } = this.#deps;
    if (message.origin === 'postmaster') return { idx: new Set(failures.map((f) => f.rcpt.idx)), reason: 'postmaster-notice-failed' };
    await dsn.send(message, failures);
    if (message.origin === 'ingress') return undefined;
    const unreported = failures.filter((f) => !wantsFailureReport(message, f.rcpt));
    if (!unreported.length) return undefined;
    if (!dsn.postmaster) return { idx: new Set(unreported.map((f) => f.rcpt.idx)), reason: 'no-postmaster' };
    await dsn.notifyPostmaster(message, unreported);
    this.#deps.metrics?.postmasterNotice?.();
    return undefined;
  }

  /** Held recipients of relay-made mail that cannot go anywhere (their `held` events are committed): error log line, metric. */
  #hold(job: Job<DeliverPayload>, message: MessageRecord, results: AttemptResult[], reason: 'postmaster-notice-failed' | 'no-postmaster'): void {
    const { log } = this.#deps;
    for (let i = 0; i < results.length; i++) this.#deps.metrics?.held?.();
    log.error(
      { queueId: message.id, job: job.id, origin: message.origin, recipients: results.length, reason, reply: results[0]?.reply },
      reason === 'no-postmaster'
        ? 'relay-made mail undeliverable and no postmaster address (delivery.postmaster): held until an admin runs zegel queue retry or zegel queue delete --force'
        : 'postmaster notice undeliverable: held until an admin runs zegel queue retry or zegel queue delete --force',
    );
  }

  async #cleanUp(messageId: string): Promise<void> {
    const { backend, spool } = this.#deps;
    const remaining = (await backend.messages.recipients(messageId)).filter((r) => r.state === 'pending').length;
    if (remaining) return;
    await backend.transaction((tx) => backend.messages.releaseSpool(tx, messageId));
    await spool.remove(messageId);
  }
}
