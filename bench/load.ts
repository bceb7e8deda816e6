import { performance } from 'node:perf_hooks';
import { Pool, type Dispatcher } from 'undici';

/** Closed-loop load: C workers, each sends its next request as soon as the previous one completes. */

export interface BenchRequest {
  method: 'GET' | 'POST';
  path: string;
  headers?: Record<string, string>;
  body?: string;
}

export interface LoadOptions {
  origin: string;
  concurrency: number;
  durationMs: number;
  /** Builds request number `i` (0-based, unique across workers); null when there is no work left (the worker stops). */
  next: (i: number) => BenchRequest | null;
  /** Extra check of a 2xx answer; a returned string counts the request as an error of that kind. */
  check?: (req: BenchRequest, status: number, body: string) => string | null;
  /** Called with each request that passed (status 2xx and check). */
  onOk?: (req: BenchRequest) => void;
  /** Stops the run early (e.g. the server under test exited). */
  signal?: AbortSignal;
}

export interface LoadResult {
  requests: number;
  ok: number;
  errors: number;
  /** Error kinds: `http_<status>`, a network error code, or what `check` returned. */
  error_kinds: Record<string, number>;
  /** The first answer of each error kind (up to 5 kinds), to see why without re-running. */
  error_samples: string[];
  duration_s: number;
  throughput_rps: number;
  ok_rps: number;
  latency_ms: { p50: number; p90: number; p99: number; max: number; mean: number };
  aborted: boolean;
  /** A worker found no work left before the time was up (the figures cover less than the full load). */
  exhausted: boolean;
}

const SAMPLE_LIMIT = 5;
const round = (n: number, digits = 2) => Number(n.toFixed(digits));

/** Nearest-rank percentile over an ascending array. */
export function percentile(sorted: Float64Array, p: number): number {
  if (sorted.length === 0) return 0;
  const rank = Math.max(1, Math.ceil((p / 100) * sorted.length));
  return sorted[rank - 1] ?? 0;
}

/** What both load shapes record: each answer's latency and kind, turned into a LoadResult at the end. */
function recorder(options: Pick<LoadOptions, 'check' | 'onOk'>) {
  const latencies: number[] = [];
  const kinds: Record<string, number> = {};
  const samples: string[] = [];
  let ok = 0;
  const fail = (kind: string, detail: string) => {
    kinds[kind] = (kinds[kind] ?? 0) + 1;
    if (kinds[kind] === 1 && samples.length < SAMPLE_LIMIT) samples.push(`${kind}: ${detail.slice(0, 300)}`);
  };
  /** Sends one request; false when it failed at the network level (the caller may back off). */
  async function send(pool: Pool, req: BenchRequest): Promise<boolean> {
    const t0 = performance.now();
    try {
      const res: Dispatcher.ResponseData = await pool.request({ method: req.method, path: req.path, headers: req.headers, body: req.body });
      const text = await res.body.text();
      latencies.push(performance.now() - t0);
      if (res.statusCode < 200 || res.statusCode >= 300) fail(`http_${res.statusCode}`, text);
      else {
        const problem = options.check?.(req, res.statusCode, text) ?? null;
        if (problem) fail(problem, text);
        else {
          ok += 1;
          options.onOk?.(req);
        }
      }
      return true;
    } catch (err) {
      latencies.push(performance.now() - t0);
      const e = err as { code?: string; message?: string };
      fail(e.code ?? 'network_error', e.message ?? String(err));
      return false;
    }
  }
  function result(elapsedS: number, aborted: boolean, exhausted: boolean): LoadResult {
    const sorted = Float64Array.from(latencies).sort();
    const requests = latencies.length;
    const sum = latencies.reduce((a, b) => a + b, 0);
    return {
      requests,
      ok,
      errors: requests - ok,
      error_kinds: kinds,
      error_samples: samples,
      duration_s: round(elapsedS, 3),
      throughput_rps: round(requests / elapsedS, 1),
      ok_rps: round(ok / elapsedS, 1),
      latency_ms: {
        p50: round(percentile(sorted, 50), 3),
        p90: round(percentile(sorted, 90), 3),
        p99: round(percentile(sorted, 99), 3),
        max: round(sorted[sorted.length - 1] ?? 0, 3),
        mean: round(requests ? sum / requests : 0, 3),
      },
      aborted,
      exhausted,
    };
  }
  return { send, result };
}

const poolFor = (origin: string, connections: number) =>
  new Pool(origin, { connections, pipelining: 1, keepAliveTimeout: 60_000, headersTimeout: 15_000, bodyTimeout: 15_000 });

export async function runLoad(options: LoadOptions): Promise<LoadResult> {
  const pool = poolFor(options.origin, options.concurrency);
  const rec = recorder(options);
  let counter = 0;
  let exhausted = false;
  const started = performance.now();
  const deadline = started + options.durationMs;
  const worker = async () => {
    while (performance.now() < deadline && !options.signal?.aborted) {
      const req = options.next(counter++);
      if (req === null) {
        exhausted = true;
        break;
      }
      // A refused or reset connection fails in microseconds: do not spin on a dead server.
      if (!(await rec.send(pool, req))) await new Promise((r) => setTimeout(r, 10));
    }
  };
  await Promise.all(Array.from({ length: options.concurrency }, worker));
  const elapsedS = (performance.now() - started) / 1000;
  await pool.close();
  return rec.result(elapsedS, options.signal?.aborted ?? false, exhausted);
}

/**
 * Open loop, as payments reach a gateway: request n is sent at start + n / rate whether or not earlier
 * ones have answered (up to `concurrency` connections; beyond that undici queues them, and the wait counts
 * in their latency). Runs until `next` has no more work, the time is up or the signal fires.
 */
export async function runPaced(options: LoadOptions & { rate: number }): Promise<LoadResult & { max_schedule_lag_ms: number }> {
  const pool = poolFor(options.origin, options.concurrency);
  const rec = recorder(options);
  const pending = new Set<Promise<unknown>>();
  let sent = 0;
  let exhausted = false;
  let maxLagMs = 0;
  const started = performance.now();
  const deadline = started + options.durationMs;
  outer: while (!options.signal?.aborted) {
    const now = performance.now();
    if (now >= deadline) break;
    const due = Math.floor(((now - started) / 1000) * options.rate);
    if (due - sent > 1) maxLagMs = Math.max(maxLagMs, ((due - sent) / options.rate) * 1000);
    while (sent < due) {
      const req = options.next(sent++);
      if (req === null) {
        exhausted = true;
        break outer;
      }
      const p = rec.send(pool, req);
      pending.add(p);
      void p.finally(() => pending.delete(p));
    }
    await new Promise((r) => setTimeout(r, 1));
  }
  await Promise.all([...pending]);
  const elapsedS = (performance.now() - started) / 1000;
  await pool.close();
  return { ...rec.result(elapsedS, options.signal?.aborted ?? false, exhausted), max_schedule_lag_ms: round(maxLagMs) };
}
