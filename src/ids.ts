import crypto from 'node:crypto';

/**
 * Queue ids: time-ordered and unguessable, e.g. `0mhx2k1vq-8f3a91c2e07b`.
 * Safe in file names, log lines and SMTP replies.
 */
export function newQueueId(now: number): string {
  return `${now.toString(36).padStart(9, '0')}-${crypto.randomBytes(6).toString('hex')}`;
}
