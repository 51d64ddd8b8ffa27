import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pino } from 'pino';
import { ManualClock, type Clock } from '../../src/clock.js';
import { parseConfig } from '../../src/config/load.js';
import type { ConfigInput } from '../../src/config/schema.js';
import type { ClassifyMessage } from '../../src/pipeline/decide.js';
import { Relay } from '../../src/relay.js';
import { repoPath } from './repo-root.js';

export interface Teardown {
  teardown(fn: () => unknown): void;
  testdirName?: string;
}

/** A fresh temporary directory, removed when the test ends. */
export function tempDir(t: Teardown, prefix = 'zegel-test-'): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

export interface TestRelay {
  relay: Relay;
  port: number;
  dataDir: string;
  clock: Clock;
  /** Every log line written so far, as text (pino JSON lines). */
  logs(): string;
}

/** Deep-merges plain objects (for config overrides). */
export function merge(base: Record<string, unknown>, extra: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = { ...base };
  for (const [key, value] of Object.entries(extra)) {
    const current = out[key];
    out[key] =
      value && typeof value === 'object' && !Array.isArray(value) && current && typeof current === 'object' && !Array.isArray(current)
        ? merge(current as Record<string, unknown>, value as Record<string, unknown>)
        : value;
  }
  return out;
}

/**
 * Starts a relay in this process on a free loopback port with a temporary data
 * directory, logging (at debug) into `<dataDir>/../relay.log`. Stopped at teardown.
 */
export async function startRelay(
  t: Teardown,
  overrides: ConfigInput = {},
  options: { clock?: Clock; classify?: ClassifyMessage; dataDir?: string } = {},
): Promise<TestRelay> {
  const root = options.dataDir ? path.dirname(options.dataDir) : tempDir(t);
  const dataDir = options.dataDir ?? path.join(root, 'data');
  const logFile = path.join(root, 'relay.log');
  const config = parseConfig(merge({ smtp: { listen: '127.0.0.1:0' }, reader: { listen: '127.0.0.1:0' }, data: { dir: dataDir } }, overrides as Record<string, unknown>));
  const log = pino({ level: 'debug', base: { name: 'zegel' } }, pino.destination({ dest: logFile, sync: true }));
  const clock = options.clock ?? new ManualClock(Date.now());
  const relay = await Relay.start({ config, clock, log, classify: options.classify, pollMs: 25, closeTimeoutMs: 1_000 });
  t.teardown(() => relay.stop(2_000));
  return {
    relay,
    port: relay.smtpAddress.port,
    dataDir,
    clock,
    logs: () => (fs.existsSync(logFile) ? fs.readFileSync(logFile, 'utf8') : ''),
  };
}

/** Waits until `check` returns a truthy value, polling; fails after `timeoutMs`. */
export async function waitFor<T>(check: () => T | Promise<T>, timeoutMs = 10_000, what = 'condition'): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** Removes the first `Received:` field (with its continuation lines) from a raw message. */
export function stripFirstReceived(raw: Buffer): Buffer {
  const text = raw.toString('latin1');
  const match = /^Received:[^\r\n]*\r\n(?:[ \t][^\r\n]*\r\n)*/i.exec(text);
  if (!match) throw new Error('message does not start with a Received: field');
  return Buffer.from(text.slice(match[0].length), 'latin1');
}

export const corpusDir = repoPath('test', 'fixtures', 'corpus', 'classifier');
