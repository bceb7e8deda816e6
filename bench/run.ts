import { randomBytes } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, platform, release, totalmem } from 'node:os';
import { resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import { pidFromFile, startCpuMeter } from './cpu.ts';
import { runLoad, type LoadResult } from './load.ts';
import { OrderBook, SCENARIOS, scenarioFor } from './scenarios.ts';
import { prepareDatabases, ROOT, startOurs, startYardstick, waitUntilAnswering, type ServerChild } from './servers.ts';

/**
 * `npm run bench [-- --quick | --concurrency N --duration S --warmup S --pool-size N]`
 * Our service and the yardstick (../shared/bench) on fresh MariaDB databases, driven in turn from
 * this process; JSON on stdout and in bench/results/, progress on stderr. Exit 1 when any request failed.
 */

const USAGE = 'usage: npm run bench -- [--quick] [--concurrency 32] [--duration 10] [--warmup 2] [--pool-size 16]';
const { values: args } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    concurrency: { type: 'string', default: '32' },
    duration: { type: 'string' },
    warmup: { type: 'string' },
    'pool-size': { type: 'string', default: '16' },
    help: { type: 'boolean', default: false },
  },
});
if (args.help) {
  console.error(USAGE);
  process.exit(0);
}
const positive = (name: string, value: string | undefined, fallback: number): number => {
  const n = value === undefined ? fallback : Number(value);
  if (!Number.isFinite(n) || n <= 0) throw new Error(`--${name} must be a positive number\n${USAGE}`);
  return n;
};
const params = {
  quick: args.quick,
  concurrency: Math.round(positive('concurrency', args.concurrency, 32)),
  duration_s: positive('duration', args.duration, args.quick ? 2 : 10),
  warmup_s: positive('warmup', args.warmup, args.quick ? 1 : 2),
  ours_pool_size: Math.round(positive('pool-size', args['pool-size'], 16)),
  yardstick_pool_size: 32, // fixed in minimal-notify.cjs
  scenarios: [...SCENARIOS],
};
const mysqlUrl = process.env.BENCH_MYSQL_URL ?? 'mysql://root@127.0.0.1:3306';
const log = (message: string) => process.stderr.write(`[bench] ${message}\n`);

const children: ServerChild[] = [];
const stopAll = () => Promise.all(children.map((c) => c.stop()));
let interrupted = false;
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.on(signal, () => {
    if (interrupted) return;
    interrupted = true;
    log(`${signal}: stopping the servers`);
    void stopAll().finally(() => process.exit(130));
  });
}
// The run bounds itself: past its expected length plus a generous margin, give up and clean up.
const budgetMs = (SCENARIOS.length * 2 * (params.duration_s + params.warmup_s) + 180) * 1000;
const watchdog = setTimeout(() => {
  log(`run exceeded ${budgetMs / 1000} s; stopping the servers`);
  void stopAll().finally(() => process.exit(2));
}, budgetMs);

function redactUrl(url: string): string {
  const u = new URL(url);
  if (u.password) u.password = '***';
  return u.toString();
}

function summary(r: LoadResult): string {
  const errs = r.errors ? `, ${r.errors} ERRORS ${JSON.stringify(r.error_kinds)}` : '';
  return `${r.requests} req in ${r.duration_s} s = ${r.throughput_rps} req/s, p50 ${r.latency_ms.p50} ms, p99 ${r.latency_ms.p99} ms${errs}`;
}

async function main(): Promise<number> {
  const startedAt = new Date();
  const loadBefore = loadavg().map((n) => Number(n.toFixed(2)));
  log(`preparing databases on ${redactUrl(mysqlUrl)}`);
  const { version: mariadb, pidFile } = await prepareDatabases(mysqlUrl);
  const mariadbPid = pidFromFile(pidFile);
  const apiKey = `pcs_bench_${randomBytes(32).toString('base64url')}`;
  const ours = await startOurs({ mysqlUrl, apiKey, poolSize: params.ours_pool_size });
  children.push(ours);
  const yardstick = await startYardstick(mysqlUrl);
  children.push(yardstick);
  log(`starting ours (pid ${ours.pid}, ${ours.origin}) and yardstick (pid ${yardstick.pid}, ${yardstick.origin})`);
  await Promise.all([
    waitUntilAnswering(ours, '/readyz', {}),
    waitUntilAnswering(yardstick, '/query_order?order_no=__ready', {}),
  ]);
  log('both answer');

  const impls = [
    { name: 'ours', child: ours, book: new OrderBook('o') },
    { name: 'yardstick', child: yardstick, book: new OrderBook('y') },
  ];
  type Measured = LoadResult & { cpu_ms_per_request: Record<string, number | null> };
  const results: Record<string, Record<string, Measured | { skipped: string }>> = { ours: {}, yardstick: {} };
  for (const scenario of SCENARIOS) {
    for (const impl of impls) {
      const out = results[impl.name]!;
      if (impl.child.exit !== null) {
        out[scenario] = { skipped: `server exited (${impl.child.exit})` };
        continue;
      }
      if (scenario === 'query_status' && impl.book.orderNos.length === 0) {
        out[scenario] = { skipped: 'no order was created' };
        continue;
      }
      const abort = new AbortController();
      void impl.child.exited.then(() => abort.abort());
      const load = { origin: impl.child.origin, concurrency: params.concurrency, signal: abort.signal, ...scenarioFor(scenario, impl.book, apiKey) };
      log(`${impl.name} ${scenario}: warm-up ${params.warmup_s} s`);
      const warm = await runLoad({ ...load, durationMs: params.warmup_s * 1000 });
      if (warm.errors) log(`  warm-up errors: ${JSON.stringify(warm.error_kinds)}`);
      log(`${impl.name} ${scenario}: measuring ${params.duration_s} s at concurrency ${params.concurrency}`);
      const meter = startCpuMeter({ server: impl.child.pid, mariadb: mariadbPid });
      const loaded = await runLoad({ ...load, durationMs: params.duration_s * 1000 });
      const result = { ...loaded, cpu_ms_per_request: meter.perRequest(loaded.requests) };
      out[scenario] = result;
      log(`  ${summary(result)}; CPU ms/req ${JSON.stringify(result.cpu_ms_per_request)}`);
      if (impl.child.exit !== null) log(`  ${impl.name} EXITED during the run (${impl.child.exit})`);
      await sleep(500); // let the database settle between runs
    }
  }

  log('stopping the servers');
  await stopAll();
  clearTimeout(watchdog);

  type Ratio = { throughput: number | null; p50_latency: number | null; p99_latency: number | null; server_cpu_per_request: number | null };
  const ratios: Record<string, Ratio> = {};
  for (const scenario of SCENARIOS) {
    const a = results.ours![scenario];
    const b = results.yardstick![scenario];
    const ok = a && b && 'ok_rps' in a && 'ok_rps' in b;
    const div = (x: number, y: number) => (y > 0 ? Number((x / y).toFixed(3)) : null);
    const cpuA = ok ? a.cpu_ms_per_request.server : null;
    const cpuB = ok ? b.cpu_ms_per_request.server : null;
    ratios[scenario] = ok
      ? {
          throughput: div(a.ok_rps, b.ok_rps),
          p50_latency: div(a.latency_ms.p50, b.latency_ms.p50),
          p99_latency: div(a.latency_ms.p99, b.latency_ms.p99),
          server_cpu_per_request: cpuA != null && cpuB != null ? div(cpuA, cpuB) : null,
        }
      : { throughput: null, p50_latency: null, p99_latency: null, server_cpu_per_request: null };
  }
  const all = Object.values(results).flatMap((r) => Object.values(r));
  const totalErrors = all.reduce((n, r) => n + ('errors' in r ? r.errors : 0), 0);
  const skipped = all.filter((r) => 'skipped' in r).length;
  const servers = Object.fromEntries(
    impls.map(({ name, child }) => [name, { command: name === 'ours' ? 'node_modules/.bin/tsx src/main.ts' : 'node ../shared/bench/minimal-notify.cjs', exit: child.exit, log_lines: child.lineCount, log_tail: child.tail().slice(-10) }]),
  );

  const document = {
    benchmark: 'orders',
    started_at: startedAt.toISOString(),
    finished_at: new Date().toISOString(),
    ok: totalErrors === 0 && skipped === 0,
    total_errors: totalErrors,
    machine: {
      cpus: cpus().length,
      cpu_model: cpus()[0]?.model ?? 'unknown',
      memory_gb: Number((totalmem() / 2 ** 30).toFixed(1)),
      platform: `${platform()} ${release()}`,
      node: process.version,
      mariadb,
      // Other work on the machine skews every figure; a high load average before the run is a warning sign.
      loadavg_1_5_15_before: loadBefore,
      loadavg_1_5_15_after: loadavg().map((n) => Number(n.toFixed(2))),
    },
    parameters: { ...params, mysql_url: redactUrl(mysqlUrl), note: 'throughput_rps counts all answers, ok_rps only passing ones; ratios are ours / yardstick (ok_rps, latency); cpu_ms_per_request: CPU time of the server process tree, of mariadbd (shared by both) and of this load generator, per request' },
    results,
    ratios,
    servers,
  };
  const json = JSON.stringify(document, null, 2);
  const dir = resolve(ROOT, 'bench/results');
  mkdirSync(dir, { recursive: true });
  const file = resolve(dir, `${startedAt.toISOString().replace(/[:.]/g, '-')}.json`);
  writeFileSync(file, `${json}\n`);
  process.stdout.write(`${json}\n`);
  log(`written to ${file}`);
  if (!document.ok) log(`RUN HAD PROBLEMS: ${totalErrors} failed requests, ${skipped} skipped scenarios (see results and servers.*.log_tail)`);
  return document.ok ? 0 : 1;
}

main().then(
  (code) => process.exit(code),
  async (err: unknown) => {
    log(`failed: ${err instanceof Error ? err.message : String(err)}`);
    await stopAll();
    process.exit(1);
  },
);
