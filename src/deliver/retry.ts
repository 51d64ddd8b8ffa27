export interface RetryPolicy {
  /** Delays between attempts; after the last one the last delay repeats. */
  schedule: number[];
  /** Age of a message after which a recipient still deferred is bounced. */
  giveUpAfter: number;
}

export type RetryDecision = { action: 'retry'; at: number } | { action: 'give-up' };

/**
 * After a temporary failure: when to try again, or give up. The last retry is
 * placed exactly at the deadline, so a message gets its full lifetime and no
 * more.
 */
export function nextAttempt(policy: RetryPolicy, attemptsSoFar: number, receivedAt: number, now: number): RetryDecision {
  const deadline = receivedAt + policy.giveUpAfter;
  if (now >= deadline) return { action: 'give-up' };
  const delay = policy.schedule[Math.min(Math.max(attemptsSoFar - 1, 0), policy.schedule.length - 1)]!;
  return { action: 'retry', at: Math.min(now + delay, deadline) };
}

/** An enhanced status code (RFC 3463) from a reply line, if it has one. */
export function enhancedStatus(reply: string, fallbackClass: 4 | 5): string {
  const match = /^\d{3}[ -]([245]\.\d{1,3}\.\d{1,3})\b/.exec(reply);
  return match ? match[1]! : `${fallbackClass}.0.0`;
}
