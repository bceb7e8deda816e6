import { spawn } from 'node:child_process';
import { resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { BENCH_METRICS_TOKEN, ROOT } from './servers.ts';

/** The query server of bench/reconcile-query-server.ts as a child process of the bench, and what each side counted. */

export interface QueryStats {
  queries: number;
  answered_success: number;
  answered_pending: number;
  rejected: Record<string, number>;
  sign_types: Record<string, number>;
  repeated_orders: number;
  repeated_seeded_orders: number;
}

export interface QueryServer {
  /** GENERIC_QUERY_URL for the service. */
  url: string;
  readonly pid: number | undefined;
  exit: string | null;
  stats(): Promise<QueryStats>;
  stop(): Promise<void>;
  tail(): string[];
}

const START_TIMEOUT_MS = 20_000;

export async function startQueryServer(gatewaySecret: string, paidPrefix: string): Promise<QueryServer> {
  const env = { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '', GATEWAY_SECRET: gatewaySecret, QUERY_PAID_PREFIX: paidPrefix };
  const proc = spawn(process.execPath, ['--import', 'tsx', resolve(ROOT, 'bench/reconcile-query-server.ts')], {
    cwd: ROOT,
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const lines: string[] = [];
  let onPort: (port: number) => void = () => undefined;
  const port = new Promise<number>((r) => (onPort = r));
  const collect = (chunk: Buffer) => {
    for (const line of chunk
      .toString('utf8')
      .split('\n')
      .filter((l) => l.trim() !== '')) {
      const m = /^listening (\d+)$/.exec(line);
      if (m) onPort(Number(m[1]));
      lines.push(line.slice(0, 2000));
      if (lines.length > 20) lines.shift();
    }
  };
  proc.stdout.on('data', collect);
  proc.stderr.on('data', collect);
  let origin = '';
  let exited: () => void = () => undefined;
  const gone = new Promise<void>((r) => (exited = r));
  const server: QueryServer = {
    url: '',
    pid: proc.pid,
    exit: null,
    tail: () => [...lines],
    async stats() {
      const res = await fetch(`${origin}/stats`, { signal: AbortSignal.timeout(5000) });
      return (await res.json()) as QueryStats;
    },
    async stop() {
      if (server.exit !== null) return;
      proc.kill('SIGTERM');
      if (await Promise.race([gone.then(() => false), sleep(5000, true)])) proc.kill('SIGKILL');
      await gone;
    },
  };
  proc.on('exit', (code, signal) => {
    server.exit = signal ? `signal ${signal}` : `code ${code}`;
    exited();
  });
  const listening = await Promise.race([port, gone.then(() => null), sleep(START_TIMEOUT_MS, null)]);
  if (listening === null) {
    await server.stop();
    throw new Error(`the query server did not start (${server.exit ?? 'no answer'}):\n${lines.join('\n')}`);
  }
  origin = `http://127.0.0.1:${listening}`;
  return Object.assign(server, { url: `${origin}/query` });
}

const round = (n: number, digits = 1) => Number(n.toFixed(digits));

/** Samples the query server's count every second: [seconds since `since`, queries so far]. */
export function sampleQueries(server: QueryServer, since: number) {
  const samples: Array<[number, number]> = [];
  let stopped = false;
  const loop = (async () => {
    while (!stopped) {
      const s = await server.stats().catch(() => null);
      if (s) samples.push([round((performance.now() - since) / 1000, 2), s.queries]);
      await sleep(1000);
    }
  })();
  return {
    async stop() {
      stopped = true;
      await loop;
      const perSecond = samples.slice(1).map(([t, q], i) => (q - samples[i]![1]) / (t - samples[i]![0]));
      return { samples, peak_1s_rate: perSecond.length ? round(Math.max(...perSecond)) : null };
    },
  };
}

/** The service's own reconcile counters (GET /metrics). */
export async function reconcileMetrics(origin: string): Promise<string[]> {
  const res = await fetch(`${origin}/metrics`, { headers: { authorization: `Bearer ${BENCH_METRICS_TOKEN}` }, signal: AbortSignal.timeout(5000) });
  const text = await res.text();
  return text.split('\n').filter((l) => /^(reconcile_queries_total|payments_recovered_total)\{/.test(l));
}
