import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';

/**
 * CPU time of a process and its descendants from /proc (Linux only; null elsewhere). On a small
 * machine the servers, MariaDB and the load generator share the cores, so CPU per request says more
 * than throughput alone: it shows which side does the work.
 */

const CLOCK_TICKS = (() => {
  try {
    return Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
  } catch {
    return 100;
  }
})();

function ownTicks(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return Number(fields[11]) + Number(fields[12]);
}

function childrenOf(pid: number): number[] {
  const out: number[] = [];
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    const list = readFileSync(`/proc/${pid}/task/${tid}/children`, 'utf8').trim();
    if (list) out.push(...list.split(' ').map(Number));
  }
  return out;
}

/** CPU seconds used so far by `pid` (or several, e.g. nginx and PHP-FPM) and live descendants, or null when /proc cannot tell. */
export function treeCpuSeconds(pid: number | readonly number[] | undefined): number | null {
  if (pid === undefined) return null;
  try {
    let ticks = 0;
    const stack = typeof pid === 'number' ? [pid] : [...pid];
    if (stack.length === 0) return null;
    while (stack.length > 0) {
      const p = stack.pop()!;
      ticks += ownTicks(p);
      stack.push(...childrenOf(p));
    }
    return ticks / CLOCK_TICKS;
  } catch {
    return null;
  }
}

/** The MariaDB server's pid, read from its pid file when this user may read it. */
export function pidFromFile(path: string | null): number | undefined {
  if (!path) return undefined;
  try {
    const pid = Number(readFileSync(path, 'utf8').trim());
    return Number.isInteger(pid) && pid > 0 ? pid : undefined;
  } catch {
    return undefined;
  }
}

export interface CpuMeter {
  /** CPU milliseconds per completed request since the meter started, per process (null when unknown). */
  perRequest(requests: number): Record<string, number | null>;
}

export function startCpuMeter(pids: Record<string, number | readonly number[] | undefined>): CpuMeter {
  const before = Object.fromEntries(Object.entries(pids).map(([name, pid]) => [name, treeCpuSeconds(pid)]));
  const benchBefore = process.cpuUsage();
  return {
    perRequest(requests) {
      const out: Record<string, number | null> = {};
      for (const [name, pid] of Object.entries(pids)) {
        const start = before[name];
        const end = treeCpuSeconds(pid);
        out[name] = start === null || start === undefined || end === null || requests === 0 ? null : Number((((end - start) * 1000) / requests).toFixed(3));
      }
      const bench = process.cpuUsage(benchBefore);
      out.load_generator = requests === 0 ? null : Number(((bench.user + bench.system) / 1000 / requests).toFixed(3));
      return out;
    },
  };
}
