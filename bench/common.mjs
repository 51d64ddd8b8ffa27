// What the benchmarks share: their knobs (whole numbers from the
// environment), what they read from /proc (CPU seconds of a process and of
// the whole machine, a process's memory, how busy the machine was before a
// run), the machine and commit a run's section names, the median, two
// number formats, how a script runs its main and cleans up, and the scopes
// that collect the clean-up of the tests' fixtures.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import { performance } from 'node:perf_hooks';

let ticks;
/** Clock ticks per second (getconf CLK_TCK; 100 when it cannot be read). */
export function clkTck() {
  if (ticks === undefined) {
    try {
      ticks = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
    } catch {
      ticks = 100;
    }
  }
  return ticks;
}

/** CPU seconds (user + system) a process has used so far; NaN when it is gone. */
export function processCpuSeconds(pid) {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / clkTck();
  } catch {
    return NaN;
  }
}

/** Machine-wide busy CPU time in seconds (all cores), from /proc/stat. */
export function machineCpuSeconds() {
  try {
    const line = fs.readFileSync('/proc/stat', 'utf8').split('\n')[0];
    const f = line.trim().split(/\s+/).slice(1).map(Number);
    const idle = (f[3] ?? 0) + (f[4] ?? 0); // idle + iowait
    const total = f.reduce((a, b) => a + b, 0);
    return (total - idle) / clkTck();
  } catch {
    return NaN;
  }
}

/** Busy cores machine-wide over `ms` while we do nothing: other work that would skew the figures. */
export async function backgroundCores(ms = 1000) {
  const c0 = machineCpuSeconds();
  const t0 = performance.now();
  await new Promise((resolve) => setTimeout(resolve, ms));
  return (machineCpuSeconds() - c0) / ((performance.now() - t0) / 1000);
}

/** A process's name, peak (VmHWM) and current (VmRSS) resident memory in bytes. */
export function procStatus(pid) {
  const text = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (key) => {
    const m = new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(text);
    return m ? Number(m[1]) * 1024 : NaN;
  };
  return { name: /^Name:\s+(.*)$/m.exec(text)?.[1], hwm: kb('VmHWM'), rss: kb('VmRSS') };
}

export const median = (values) => {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
};

/** A whole-number knob from the environment (`dflt` when unset or empty). */
export function intEnv(name, dflt, min = 0) {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return dflt;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < min) throw new Error(`${name} must be a whole number${min ? ` ≥ ${min}` : ''}, got ${raw}`);
  return n;
}

/**
 * Runs a benchmark's main: a signal stops it (cleanup, exit 130), a failure
 * is logged with its stack and exits 1, and cleanup runs at the end either way.
 * `cleanup` may be async (stopping child servers): exit waits for it.
 */
export async function runMain(main, cleanup, log) {
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
    process.once(signal, () => {
      log(`${signal}: stopping`);
      Promise.resolve()
        .then(cleanup)
        .finally(() => process.exit(130));
    });
  }
  try {
    await main();
  } catch (err) {
    log(`failed: ${err.stack ?? err}`);
    process.exitCode = 1;
  } finally {
    await cleanup();
  }
}

/** A command's trimmed output, or `fallback` when it cannot run. */
export function commandOutput(cmd, args, fallback, options = {}) {
  try {
    return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'], ...options }).trim();
  } catch {
    return fallback;
  }
}

/** What every results section names: date, cores, CPU model, memory, kernel, Node, the temp directory and its file system. */
export function machine() {
  const memKb = Number(/^MemTotal:\s+(\d+)/m.exec(fs.readFileSync('/proc/meminfo', 'utf8'))?.[1] ?? 0);
  const model = /^model name\s*:\s*(.*)$/m.exec(fs.readFileSync('/proc/cpuinfo', 'utf8'))?.[1]?.trim() ?? (os.cpus()[0]?.model || 'unknown');
  const fsType = commandOutput('df', ['-T', os.tmpdir()], '').split('\n')[1]?.split(/\s+/)[1] ?? '';
  return {
    date: commandOutput('date', ['-u'], new Date().toUTCString()),
    nproc: commandOutput('nproc', [], String(os.cpus().length)),
    model,
    memGiB: (memKb / 1024 / 1024).toFixed(1),
    kernel: os.release(),
    node: process.version,
    tmp: `${os.tmpdir()}${fsType ? ` (${fsType})` : ''}`,
  };
}

/** `abc1234`, or `abc1234 (with uncommitted changes)` when any of `paths` (relative to `root`) differs from HEAD. */
export function commitLabel(root, paths) {
  const dirty = commandOutput('git', ['-C', root, 'status', '--porcelain', '--untracked-files=no', '--', ...paths], '');
  return `${commandOutput('git', ['-C', root, 'rev-parse', '--short', 'HEAD'], '?')}${dirty ? ' (with uncommitted changes)' : ''}`;
}

/** `n` with `digits` decimals, `n/a` when it is not a finite number. */
export const fmt = (n, digits = 0) => (Number.isFinite(n) ? n.toFixed(digits) : 'n/a');

/** `a / b` as `0.93×`, `n/a` when either is missing or zero. */
export const ratio = (a, b) => (a && b ? `${(a / b).toFixed(2)}×` : 'n/a');

/**
 * The tests' fixtures register their clean-up with a test's `t.teardown`; a
 * scope collects them and runs them last-in first-out when closed. `closeAll`
 * closes every scope still open (a benchmark's cleanup).
 */
export function teardownScopes(log) {
  const scopes = new Set();
  return {
    open() {
      const fns = [];
      const scope = {
        t: { teardown: (fn) => fns.push(fn) },
        async close() {
          scopes.delete(scope);
          for (const fn of fns.reverse()) await Promise.resolve(fn()).catch((err) => log(`clean-up: ${err.message}`));
        },
      };
      scopes.add(scope);
      return scope;
    },
    async closeAll() {
      for (const scope of [...scopes]) await scope.close();
    },
  };
}
