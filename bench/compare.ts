import type { LoadResult } from './load.ts';

/** Ours against each yardstick, scenario by scenario, from the measured results of one run. */

export type Measured = LoadResult & { concurrency: number; cpu_ms_per_request: Record<string, number | null> };
export type Outcome = Measured | { skipped: string };
/** Per implementation (`ours`, `yardstick`, `php_yardstick`), per scenario. */
export type Results = Record<string, Record<string, Outcome>>;

export type Ratio = { throughput: number | null; p50_latency: number | null; p99_latency: number | null; server_cpu_per_request: number | null };

const div = (x: number, y: number) => (y > 0 ? Number((x / y).toFixed(3)) : null);
const measured = (r: Outcome | undefined): r is Measured => r !== undefined && 'ok_rps' in r;

/** a / b: passing throughput, latencies and server CPU per request (all null when either side was not measured). */
export function ratio(a: Outcome | undefined, b: Outcome | undefined): Ratio {
  if (!measured(a) || !measured(b)) return { throughput: null, p50_latency: null, p99_latency: null, server_cpu_per_request: null };
  const cpuA = a.cpu_ms_per_request.server;
  const cpuB = b.cpu_ms_per_request.server;
  return {
    throughput: div(a.ok_rps, b.ok_rps),
    p50_latency: div(a.latency_ms.p50, b.latency_ms.p50),
    p99_latency: div(a.latency_ms.p99, b.latency_ms.p99),
    server_cpu_per_request: cpuA != null && cpuB != null ? div(cpuA, cpuB) : null,
  };
}

/** ours / `against` for every scenario. */
export function ratiosAgainst(results: Results, against: string, scenarios: readonly string[]): Record<string, Ratio> {
  return Object.fromEntries(scenarios.map((s) => [s, ratio(results.ours?.[s], results[against]?.[s])]));
}

const IMPLS = ['ours', 'yardstick', 'php_yardstick'] as const;

/** One row per scenario: the three servers side by side and ours' throughput ratio to each yardstick. */
export function comparison(results: Results, scenarios: readonly string[]) {
  const pick = (s: string, f: (m: Measured) => number) =>
    Object.fromEntries(
      IMPLS.map((impl) => {
        const r = results[impl]?.[s];
        return [impl, measured(r) ? f(r) : null];
      }),
    ) as Record<(typeof IMPLS)[number], number | null>;
  const atLeast = (s: string, impl: string) => {
    const a = results.ours?.[s];
    const b = results[impl]?.[s];
    return measured(a) && measured(b) ? a.ok_rps >= b.ok_rps : null;
  };
  return Object.fromEntries(
    scenarios.map((s) => [
      s,
      {
        ok_rps: pick(s, (m) => m.ok_rps),
        p50_ms: pick(s, (m) => m.latency_ms.p50),
        p99_ms: pick(s, (m) => m.latency_ms.p99),
        ratio_vs_yardstick: ratio(results.ours?.[s], results.yardstick?.[s]).throughput,
        ratio_vs_php: ratio(results.ours?.[s], results.php_yardstick?.[s]).throughput,
        throughput_at_least_yardstick: atLeast(s, 'yardstick'),
        throughput_at_least_php: atLeast(s, 'php_yardstick'),
      },
    ]),
  );
}

/** The notify target: at least each yardstick's notifications/s in the same run, and p99 ≤ 50 ms. */
export function notifyTarget(results: Results) {
  const ours = results.ours?.notify;
  const node = results.yardstick?.notify;
  const php = results.php_yardstick?.notify;
  if (!measured(ours) || !measured(node)) return null;
  const phpMeasured = measured(php);
  return {
    notifications_per_s: { ours: ours.ok_rps, yardstick: node.ok_rps, php_yardstick: phpMeasured ? php.ok_rps : null },
    p99_ms: { ours: ours.latency_ms.p99, yardstick: node.latency_ms.p99, php_yardstick: phpMeasured ? php.latency_ms.p99 : null },
    throughput_at_least_yardstick: ours.ok_rps >= node.ok_rps,
    throughput_at_least_php: phpMeasured ? ours.ok_rps >= php.ok_rps : null,
    p99_at_most_50ms: ours.latency_ms.p99 <= 50,
  };
}
