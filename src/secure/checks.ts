import crypto from 'node:crypto';
import argon2 from 'argon2';
import type { LinkView } from './links.js';

/**
 * Recipient checks (DESIGN "Key schedule", "Codes"): one-time codes, access
 * codes, link states and code rate limits. Pure functions of their inputs and
 * the time they are given; the routes read the clock.
 */

/** A new code may be sent this long after the previous one (per link). */
export const CODE_INTERVAL_MS = 30_000;
/** At most this many codes per link per CODE_WINDOW_MS. */
export const CODES_PER_WINDOW = 5;
export const CODE_WINDOW_MS = 3600e3;
/** The sender hears about a forgotten access code at most once per this (per link). */
export const FORGOT_INTERVAL_MS = 3600e3;

/** 6 digits from the CSPRNG, uniformly (crypto.randomInt has no modulo bias). */
export function newCode(): string {
  return crypto.randomInt(0, 1_000_000).toString().padStart(6, '0');
}

/** HMAC-SHA256(relay secret, link id ‖ session hash ‖ code), hex: what one_time_codes stores. */
export function codeHash(secret: Buffer, linkId: string, sessionHash: string, code: string): string {
  return crypto.createHmac('sha256', secret).update(`${linkId}${sessionHash}${code}`, 'utf8').digest('hex');
}

/** Constant-time comparison of a stored code hash with the hash of what was typed. */
export function codeMatches(stored: string, secret: Buffer, linkId: string, sessionHash: string, code: string): boolean {
  const expected = Buffer.from(stored, 'hex');
  const actual = Buffer.from(codeHash(secret, linkId, sessionHash, code), 'hex');
  return expected.length === actual.length && crypto.timingSafeEqual(expected, actual);
}

/** What a person may type for a one-time code: digits with spaces or dashes between them. */
export function normaliseCode(input: string): string {
  return input.replace(/[\s-]/g, '');
}

/**
 * Checks an access code against the recipient's argon2id hashes (address
 * first, then @domain). A hash that is not argon2 counts as no match.
 */
export async function accessCodeMatches(hashes: readonly string[], code: string): Promise<boolean> {
  for (const hash of hashes) {
    try {
      if (await argon2.verify(hash, code)) return true;
    } catch {
      // a malformed hash in the directory never opens anything
    }
  }
  return false;
}

/** `j•••@voorbeeld.nl` */
export function maskEmail(address: string): string {
  const at = address.lastIndexOf('@');
  if (at <= 0) return '•••';
  return `${address.slice(0, 1)}•••${address.slice(at)}`;
}

export type LinkStatus = { status: 'ok' } | { status: 'unknown' } | { status: 'revoked' | 'expired' } | { status: 'locked'; until: number };

/**
 * The state of a link at `now`: `replaced` links answer like unknown ones;
 * a revoked or expired message or link (or a message past its expiry, or with
 * its wrap gone) is gone; a lock is checked last.
 */
export function linkStatus(link: LinkView | undefined, now: number): LinkStatus {
  if (!link || link.state === 'replaced') return { status: 'unknown' };
  if (link.messageState === 'revoked' || link.state === 'revoked') return { status: 'revoked' };
  if (link.messageState !== 'active' || link.state !== 'active' || link.messageExpiresAt <= now) return { status: 'expired' };
  if (!link.wrap || !link.kSrv || !link.bodyBlob) return { status: 'expired' };
  if (link.lockedUntil !== undefined && link.lockedUntil > now) return { status: 'locked', until: link.lockedUntil };
  return { status: 'ok' };
}

/**
 * Seconds until another code may be sent, given the creation times of the
 * link's codes in the last CODE_WINDOW_MS (oldest first); undefined when one may be sent now.
 */
export function codeRetryAfter(recent: readonly number[], now: number): number | undefined {
  const inWindow = recent.filter((t) => t > now - CODE_WINDOW_MS);
  let until = 0;
  const last = inWindow[inWindow.length - 1];
  if (last !== undefined && last + CODE_INTERVAL_MS > now) until = last + CODE_INTERVAL_MS;
  if (inWindow.length >= CODES_PER_WINDOW) {
    const freed = inWindow[inWindow.length - CODES_PER_WINDOW]! + CODE_WINDOW_MS;
    until = Math.max(until, freed);
  }
  return until > now ? Math.ceil((until - now) / 1000) : undefined;
}
