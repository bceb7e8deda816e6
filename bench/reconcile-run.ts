import { randomBytes } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { startCpuMeter } from './cpu.ts';
import { NotifyOrders, NotifySink } from './notify.ts';
import { reconcileMetrics, sampleQueries, startQueryServer, type QueryStats } from './reconcile-gateway.ts';
import { runNotifyPhase } from './reconcile-notify.ts';
import { batchChecks, parkOrders, seedStaleOrders, waitForPaid, type PaidProgress } from './reconcile-seed.ts';
import { databaseUrl, logFileSummary, OURS_DB, removeLogFile, startOurs, waitUntilAnswering, type ServerChild } from './servers.ts';

/**
 * One reconcile run: a fresh service process (RECONCILE_CONCURRENCY given, RECONCILE_AFTER=1s, GENERIC_QUERY_URL =
 * the query server) on bench_service. (1) /notify with nothing due for the reconciler; (2) N stale orders seeded,
 * timed until all are paid; (3) N more seeded, and /notify measured again while the reconciler works through them;
 * (4) the rest of them parked, /notify alone again (the process is warmer by then: (1) and (4) bracket (3)).
 */

export interface ReconcileRunOptions {
  mysqlUrl: string;
  apiKey: string;
  gatewaySecret: string;
  poolSize: number;
  logLevel: string;
  logFile: string;
  serviceDir: string;
  fromSource: boolean;
  mariadbPid: number | undefined;
  reconcileConcurrency: number;
  /** NOTIFY_POLL_INTERVAL_MS (the reconcile loop's poll too), or null for the service default. */
  pollMs: number | null;
  orders: number;
  waitMs: number;
  notify: { concurrency: number; warmupS: number; durationS: number };
  log: (message: string) => void;
  onChild: (child: { stop(): Promise<void> }) => void;
}

const round = (n: number, digits = 1) => Number(n.toFixed(digits));
const rate = (count: number, seconds: number) => (seconds > 0 ? round(count / seconds) : null);

export async function runReconcile(o: ReconcileRunOptions) {
  const prefix = `R${randomBytes(6).toString('hex')}`;
  const dbUrl = databaseUrl(o.mysqlUrl, OURS_DB);
  const sink = await NotifySink.start();
  const query = await startQueryServer(o.gatewaySecret, prefix);
  o.onChild(query);
  const env: Record<string, string> = {
    GENERIC_QUERY_URL: query.url,
    RECONCILE_AFTER: '1s',
    RECONCILE_CONCURRENCY: String(o.reconcileConcurrency),
    ...(o.pollMs === null ? {} : { NOTIFY_POLL_INTERVAL_MS: String(o.pollMs) }),
  };
  const common = { mysqlUrl: o.mysqlUrl, apiKey: o.apiKey, poolSize: o.poolSize, gatewaySecret: o.gatewaySecret, logLevel: o.logLevel };
  const tag = `RECONCILE_CONCURRENCY=${o.reconcileConcurrency}`;
  let child: ServerChild | null = null;
  try {
    const ours = await startOurs({ ...common, logFile: o.logFile, serviceDir: o.serviceDir, fromSource: o.fromSource, env });
    child = ours;
    o.onChild(ours);
    await waitUntilAnswering(ours, '/readyz', {});
    const notifyOrders = (t: string) => new NotifyOrders({ origin: ours.origin, databaseUrl: dbUrl, createHeaders: { 'x-api-key': o.apiKey } }, sink.url, t);
    const queryStats = () => query.stats();
    const phase = { child: ours, databaseUrl: dbUrl, gatewaySecret: o.gatewaySecret, mariadbPid: o.mariadbPid, log: o.log, queryStats, ...o.notify };

    o.log(`${tag}: /notify with nothing due for the reconciler`);
    const base = await runNotifyPhase({ ...phase, orders: notifyOrders('o') });
    o.log(`  /notify alone: ${base.result.ok_rps}/s ok, p50 ${base.result.latency_ms.p50} ms, p99 ${base.result.latency_ms.p99} ms`);

    // Batch 1: the reconciler alone.
    const a = `${prefix}a`;
    const before1 = await query.stats();
    const seeded1 = await seedStaleOrders(dbUrl, a, o.orders, sink.url);
    const t1 = performance.now();
    o.log(`${tag}: ${o.orders} stale orders seeded in ${seeded1.seconds} s; waiting up to ${o.waitMs / 1000} s until all are paid`);
    const sampler1 = sampleQueries(query, t1);
    const meter = startCpuMeter({ server: ours.pid, mariadb: o.mariadbPid, query_server: query.pid });
    let lastLog = t1;
    const paid1 = await waitForPaid(dbUrl, `${a}%`, o.orders, {
      since: t1,
      timeoutMs: o.waitMs,
      everyMs: 250,
      onTick: (paid) => {
        if (performance.now() - lastLog < 10_000) return;
        lastLog = performance.now();
        o.log(`  ${paid}/${o.orders} paid after ${round((lastLog - t1) / 1000)} s`);
      },
    });
    const elapsed1 = (performance.now() - t1) / 1000;
    const after1 = await query.stats();
    const cpu1 = meter.perRequest(paid1.paid);
    const samples1 = await sampler1.stop();
    const queries1 = after1.queries - before1.queries;
    // Not all paid in time: the rest is taken out of the loop's way, so batch 2 is measured alone.
    const parked1 = paid1.all_paid_after_s === null ? await parkOrders(dbUrl, `${a}%`) : 0;
    const batch1 = {
      orders: o.orders,
      seed_s: seeded1.seconds,
      all_paid_after_s: paid1.all_paid_after_s,
      paid: paid1.paid,
      waited_s: round(elapsed1, 2),
      queries: queries1,
      queries_per_s: rate(queries1, elapsed1),
      paid_per_s: rate(paid1.paid, elapsed1),
      peak_1s_queries_per_s: samples1.peak_1s_rate,
      projected_all_paid_s: paid1.all_paid_after_s ?? (paid1.paid > 0 ? round((o.orders * elapsed1) / paid1.paid) : null),
      left_unpaid_and_parked: parked1,
      cpu_ms_per_paid_order: cpu1,
      query_samples: samples1.samples,
      paid_timeline: paid1.timeline.filter((_, i) => i % 4 === 0),
    };
    o.log(
      `  batch 1: ${paid1.paid}/${o.orders} paid ${paid1.all_paid_after_s === null ? `(NOT all) in ${batch1.waited_s} s` : `in ${paid1.all_paid_after_s} s`}, ${batch1.queries_per_s} queries/s`,
    );
    await sleep(1000); // the recovered payments' deliveries to the sink

    // Batch 2, seeded just before the /notify warm-up; its progress is read over the measured seconds only.
    const b = `${prefix}b`;
    const stop2 = new AbortController();
    const watch2: { done: Promise<PaidProgress> | null; paid: number; atStart: number; atEnd: number } = { done: null, paid: 0, atStart: 0, atEnd: 0 };
    const busy = await runNotifyPhase({
      ...phase,
      orders: notifyOrders('p'),
      beforeWarmup: async () => {
        await seedStaleOrders(dbUrl, b, o.orders, sink.url);
        const options = { since: performance.now(), timeoutMs: 3_600_000, everyMs: 250, stop: stop2.signal, onTick: (p: number) => (watch2.paid = p) };
        watch2.done = waitForPaid(dbUrl, `${b}%`, o.orders, options);
      },
      measuring: { start: async () => void (watch2.atStart = watch2.paid), end: async () => void (watch2.atEnd = watch2.paid) },
    });
    stop2.abort();
    const progress = await watch2.done;
    const during = {
      batch2_paid_at_start: watch2.atStart,
      batch2_paid_at_end: watch2.atEnd,
      // Above 0: the reconciler still had work for the whole measured run.
      batch2_backlog_at_end: o.orders - watch2.atEnd,
      batch2_paid_when_stopped_watching: progress?.paid ?? null,
      // The rest is taken out of the loop's way for the last phase.
      batch2_left_unpaid_and_parked: await parkOrders(dbUrl, `${b}%`),
    };
    o.log(
      `  /notify while reconciling: ${busy.result.ok_rps}/s ok, p50 ${busy.result.latency_ms.p50} ms, p99 ${busy.result.latency_ms.p99} ms; ` +
        `reconciler ${busy.reconciler_during_measured_run.queries_per_s} queries/s meanwhile, backlog ${during.batch2_backlog_at_end}`,
    );

    // Alone again: the process is warmer than at first, so the two "alone" runs bracket "while reconciling".
    await sleep(2000); // the looks in flight finish
    const again = await runNotifyPhase({ ...phase, orders: notifyOrders('q') });
    o.log(`  /notify alone again: ${again.result.ok_rps}/s ok, p50 ${again.result.latency_ms.p50} ms, p99 ${again.result.latency_ms.p99} ms`);

    const stats: QueryStats = await query.stats();
    const metrics = await reconcileMetrics(ours.origin).catch((err: unknown) => [`metrics not read: ${(err as Error).message}`]);
    const checks = { batch1: await batchChecks(dbUrl, `${a}%`), batch2: await batchChecks(dbUrl, `${b}%`) };
    return {
      reconcile_concurrency: o.reconcileConcurrency,
      notify_poll_interval_ms: o.pollMs ?? 'service default',
      notify_alone: base,
      batch1,
      notify_while_reconciling: { ...busy, batch2: during },
      notify_alone_again: again,
      query_server: stats,
      service_metrics: metrics,
      db: checks,
      sink_requests: sink.requests,
    };
  } finally {
    await child?.stop();
    await query.stop();
    await sink.close();
    const summary = await logFileSummary(o.logFile, 3);
    if (child?.exit && !/code 0|SIGTERM/.test(child.exit)) o.log(`  service exit ${child.exit}; log tail ${JSON.stringify(summary?.tail)}`);
    removeLogFile(o.logFile);
  }
}
