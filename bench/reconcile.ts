import { randomBytes } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, platform, release, tmpdir, totalmem } from 'node:os';
import { resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import { pidFromFile } from './cpu.ts';
import { runReconcile } from './reconcile-run.ts';
import { prepareDatabases, ROOT } from './servers.ts';

/**
 * `npm run bench -- --only reconcile [--reconcile-orders 10000] [--reconcile-concurrency 4,16] [--reconcile-wait 900]
 * [--reconcile-poll-ms MS] [--notify-concurrency 64] [--duration 10] [--warmup 2] [--quick] [--pool-size 16] [--log-level info]
 * [--service-dir DIR] [--from-source] [--skip-php]`: the reconciler of ours alone (the yardsticks have none), a fresh
 * database and service process per RECONCILE_CONCURRENCY value (see bench/reconcile-run.ts). JSON on stdout and in
 * bench/results/<time>-reconcile.json, progress on stderr. Exit 1 when a batch was not all paid in time, a
 * request failed or the database disagrees with what was sent.
 */

/** True for `--only reconcile`; it runs alone, so naming it with other scenarios ends the process with a message. */
export function reconcileRequested(argv: readonly string[]): boolean {
  const i = argv.findIndex((a) => a === '--only' || a.startsWith('--only='));
  if (i === -1) return false;
  const value = argv[i]!.startsWith('--only=') ? argv[i]!.slice('--only='.length) : (argv[i + 1] ?? '');
  const names = value.split(',').map((s) => s.trim());
  if (!names.includes('reconcile')) return false;
  if (names.length > 1) {
    process.stderr.write('[bench reconcile] --only reconcile runs alone (a fresh service per RECONCILE_CONCURRENCY value): leave out the other scenarios\n');
    process.exit(1);
  }
  return true;
}

const positive = (name: string, value: string | undefined, fallback: number): number => {
  const n = value === undefined ? fallback : Number(value);
  if (!Number.isFinite(n) || n <= 0) throw new Error(`--${name} must be a positive number`);
  return n;
};

export async function runReconcileBench(argv: string[]): Promise<number> {
  const { values: args } = parseArgs({
    args: argv,
    options: {
      only: { type: 'string' },
      'skip-php': { type: 'boolean', default: false },
      quick: { type: 'boolean', default: false },
      duration: { type: 'string' },
      warmup: { type: 'string' },
      'notify-concurrency': { type: 'string', default: '64' },
      'pool-size': { type: 'string', default: '16' },
      'log-level': { type: 'string', default: 'info' },
      'service-dir': { type: 'string' },
      'from-source': { type: 'boolean', default: false },
      'reconcile-orders': { type: 'string', default: '10000' },
      'reconcile-concurrency': { type: 'string', default: '4,16' },
      'reconcile-wait': { type: 'string', default: '900' },
      'reconcile-poll-ms': { type: 'string' },
    },
  });
  const params = {
    orders: Math.round(positive('reconcile-orders', args['reconcile-orders'], 10_000)),
    reconcile_concurrency: args['reconcile-concurrency'].split(',').map((v) => Math.round(positive('reconcile-concurrency', v.trim(), 4))),
    wait_s: positive('reconcile-wait', args['reconcile-wait'], 900),
    notify_poll_interval_ms: args['reconcile-poll-ms'] === undefined ? null : Math.round(positive('reconcile-poll-ms', args['reconcile-poll-ms'], 1000)),
    notify: {
      concurrency: Math.round(positive('notify-concurrency', args['notify-concurrency'], 64)),
      warmupS: positive('warmup', args.warmup, args.quick ? 1 : 2),
      durationS: positive('duration', args.duration, args.quick ? 2 : 10),
    },
    pool_size: Math.round(positive('pool-size', args['pool-size'], 16)),
    log_level: args['log-level'],
    service_dir: args['service-dir'] ? resolve(args['service-dir']) : ROOT,
    from_source: args['from-source'],
    php_yardstick: 'not involved (the yardsticks have no reconciler); --skip-php changes nothing here',
    method:
      'per RECONCILE_CONCURRENCY value: fresh bench_service database, a fresh service process (production settings of the other scenarios, RECONCILE_AFTER=1s, ' +
      'GENERIC_QUERY_URL = a query server in its own process answering every seeded order `success` with its amount, signed with GATEWAY_SECRET, after checking the request signature). ' +
      '(1) the notify scenario of the main bench (same driver, warm-up and sizing; its orders are parked, reconcile_at NULL, every 5,000 inserted: the few asked before are answered pending and counted) with nothing due for the reconciler; ' +
      '(2) N pending generic orders (reconcile_at now, expires_at +1h, notify_url the sink) written by multi-row INSERT; all_paid_after_s: from the last INSERT committed until ' +
      "SELECT COUNT(*) … status='paid' (polled every 250 ms) reaches N; queries_per_s from the query server's count; past reconcile-wait the rest are parked (reconcile_at NULL) and the projection given; " +
      '(3) N more seeded just before the notify warm-up, and the notify scenario measured again while the reconciler works through them (its queries/s over the measured seconds alone); ' +
      '(4) the rest of them parked, the notify scenario alone again (the process is warmer than in (1): (1) and (4) bracket (3))',
  };
  const log = (message: string) => process.stderr.write(`[bench reconcile] ${message}\n`);
  const stoppers: Array<{ stop(): Promise<void> }> = [];
  const abandon = () => Promise.all(stoppers.map((c) => c.stop().catch(() => undefined)));
  for (const signal of ['SIGINT', 'SIGTERM'] as const)
    process.once(signal, () => {
      log(`${signal}: stopping the servers`);
      void abandon().finally(() => process.exit(130));
    });
  const perRunS = params.wait_s + 3 * (params.notify.warmupS + params.notify.durationS) + 400;
  const watchdog = setTimeout(
    () => {
      log(`run exceeded ${params.reconcile_concurrency.length * perRunS} s; stopping the servers`);
      void abandon().finally(() => process.exit(2));
    },
    params.reconcile_concurrency.length * perRunS * 1000,
  );

  const mysqlUrl = process.env.BENCH_MYSQL_URL ?? 'mysql://root@127.0.0.1:3306';
  const startedAt = new Date();
  const loadBefore = loadavg().map((n) => Number(n.toFixed(2)));
  const apiKey = `pcs_bench_${randomBytes(32).toString('base64url')}`;
  const gatewaySecret = randomBytes(32).toString('hex');
  const runs = [];
  let mariadb = 'unknown';
  for (const [i, concurrency] of params.reconcile_concurrency.entries()) {
    const prepared = await prepareDatabases(mysqlUrl);
    mariadb = prepared.version;
    runs.push(
      await runReconcile({
        mysqlUrl,
        apiKey,
        gatewaySecret,
        poolSize: params.pool_size,
        logLevel: params.log_level,
        logFile: resolve(tmpdir(), `pcs-bench-reconcile-${process.pid}-${startedAt.getTime()}-${i}.log`),
        serviceDir: params.service_dir,
        fromSource: params.from_source,
        mariadbPid: pidFromFile(prepared.pidFile),
        reconcileConcurrency: concurrency,
        pollMs: params.notify_poll_interval_ms,
        orders: params.orders,
        waitMs: params.wait_s * 1000,
        notify: params.notify,
        log,
        onChild: (c) => stoppers.push(c),
      }),
    );
    await sleep(500);
  }
  clearTimeout(watchdog);

  const problems = runs.flatMap((r) => {
    const c = r.reconcile_concurrency;
    const out: string[] = [];
    if (r.batch1.all_paid_after_s === null) out.push(`${c}: batch 1 not all paid within ${params.wait_s} s`);
    for (const [name, phase] of [
      ['notify alone', r.notify_alone],
      ['notify while reconciling', r.notify_while_reconciling],
    ] as const) {
      if (phase.result.errors > 0) out.push(`${c}: ${name} had ${phase.result.errors} failed requests`);
      if (!phase.check.consistent) out.push(`${c}: ${name} paid/outbox counts disagree with the accepted notifications`);
    }
    if (Object.keys(r.query_server.rejected).length > 0) out.push(`${c}: the query server rejected requests ${JSON.stringify(r.query_server.rejected)}`);
    if (r.db.batch1.orders_flagged || r.db.batch2.orders_flagged) out.push(`${c}: seeded orders flagged`);
    if (r.query_server.repeated_seeded_orders > 0)
      out.push(`${c}: ${r.query_server.repeated_seeded_orders} seeded orders were asked about more than once (each is paid by its first answer)`);
    return out;
  });
  const summary = runs.map((r) => ({
    reconcile_concurrency: r.reconcile_concurrency,
    all_paid_after_s: r.batch1.all_paid_after_s,
    paid: r.batch1.paid,
    projected_all_paid_s: r.batch1.projected_all_paid_s,
    queries_per_s: r.batch1.queries_per_s,
    notify_alone: { ok_rps: r.notify_alone.result.ok_rps, p50_ms: r.notify_alone.result.latency_ms.p50, p99_ms: r.notify_alone.result.latency_ms.p99 },
    notify_alone_again: {
      ok_rps: r.notify_alone_again.result.ok_rps,
      p50_ms: r.notify_alone_again.result.latency_ms.p50,
      p99_ms: r.notify_alone_again.result.latency_ms.p99,
    },
    notify_while_reconciling: {
      ok_rps: r.notify_while_reconciling.result.ok_rps,
      p50_ms: r.notify_while_reconciling.result.latency_ms.p50,
      p99_ms: r.notify_while_reconciling.result.latency_ms.p99,
      reconciler_queries_per_s: r.notify_while_reconciling.reconciler_during_measured_run.queries_per_s,
      backlog_at_end: r.notify_while_reconciling.batch2.batch2_backlog_at_end,
    },
  }));
  const document = {
    benchmark: 'reconcile',
    started_at: startedAt.toISOString(),
    finished_at: new Date().toISOString(),
    ok: problems.length === 0,
    problems,
    summary,
    machine: {
      cpus: cpus().length,
      cpu_model: cpus()[0]?.model ?? 'unknown',
      memory_gb: Number((totalmem() / 2 ** 30).toFixed(1)),
      platform: `${platform()} ${release()}`,
      node: process.version,
      mariadb,
      loadavg_1_5_15_before: loadBefore,
      loadavg_1_5_15_after: loadavg().map((n) => Number(n.toFixed(2))),
    },
    parameters: params,
    runs,
  };
  const json = JSON.stringify(document, null, 2);
  const dir = resolve(ROOT, 'bench/results');
  mkdirSync(dir, { recursive: true });
  const file = resolve(dir, `${startedAt.toISOString().replace(/[:.]/g, '-')}-reconcile.json`);
  writeFileSync(file, `${json}\n`);
  process.stdout.write(`${json}\n`);
  log(`written to ${file}`);
  for (const s of summary) {
    const all = s.all_paid_after_s === null ? `NOT all paid (${s.paid}; projected ${s.projected_all_paid_s} s)` : `all paid in ${s.all_paid_after_s} s`;
    const n = s.notify_alone;
    const w = s.notify_while_reconciling;
    const again = s.notify_alone_again;
    log(
      `RECONCILE_CONCURRENCY=${s.reconcile_concurrency}: ${params.orders} stale orders ${all}, ${s.queries_per_s} queries/s; ` +
        `/notify alone ${n.ok_rps}/s p50 ${n.p50_ms} ms p99 ${n.p99_ms} ms; while reconciling ${w.ok_rps}/s p50 ${w.p50_ms} ms p99 ${w.p99_ms} ms ` +
        `(reconciler ${w.reconciler_queries_per_s} queries/s, backlog ${w.backlog_at_end} at the end); alone again ${again.ok_rps}/s p50 ${again.p50_ms} ms p99 ${again.p99_ms} ms`,
    );
  }
  if (problems.length > 0) log(`RUN HAD PROBLEMS: ${problems.join('; ')}`);
  return problems.length === 0 ? 0 : 1;
}
