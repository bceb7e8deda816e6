import { randomBytes } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import mysql from 'mysql2/promise';
import { Pool } from 'undici';
import { DeliveryReceiver } from './delivery.ts';
import { percentile, runLoad, type BenchRequest } from './load.ts';
import { NOTIFY_AMOUNT, signedNotifyRequest } from './notify.ts';
import {
  BENCH_METRICS_TOKEN,
  databaseUrl,
  logFileSummary,
  OURS_DB,
  prepareDatabases,
  removeLogFile,
  ROOT,
  startOurs,
  waitUntilAnswering,
  type ServerChild,
} from './servers.ts';

/**
 * `npm run bench -- --soak [--soak-seconds 300] [--soak-rate R] [--pool-size 16] [--log-level info] [--from-source]`:
 * the long mixed-load run (stability, memory, exactly-once delivery over minutes). Ours alone on a fresh MariaDB database (bench_service), its notify_url a
 * DeliveryReceiver in this process. First a 5 s closed-loop calibration of the same mix (32 workers)
 * measures the maximum rate; unless --soak-rate is given the soak runs open-loop at half of it.
 * Mix: 40 % POST /api/orders (notify_url = receiver), 40 % signed POST /notify paying an order created
 * earlier by this run (each once; a create is sent instead while none is waiting), 20 % GET
 * /query_order?action=status of a random created order. Every 5 s /metrics is scraped for RSS and
 * event-loop delay p99 (prom-client resets its delay histogram on each scrape, so each sample covers
 * the last 5 s). Then up to 60 s for the delivery backlog to drain and an audit of the database.
 * JSON on stdout and in bench/results/soak-<time>.json; exit 1 when a target is missed.
 */

type Kind = 'create' | 'notify' | 'query';
const KINDS: Kind[] = ['create', 'notify', 'query'];
const SCRAPE_INTERVAL_MS = 5000;
const DRAIN_TIMEOUT_MS = 60_000;
const CALIBRATION_MS = 5000;
const CALIBRATION_CONCURRENCY = 32;
const FALLBACK_RATE = 400;
const round = (n: number, digits = 2) => Number(n.toFixed(digits));
const log = (message: string) => process.stderr.write(`[soak] ${message}\n`);

/** The mixed workload: builds requests and checks answers; remembers created and unpaid orders. */
class Mix {
  readonly created: string[] = [];
  private readonly unpaid: string[] = [];
  private unpaidHead = 0;
  private counter = 0;
  private readonly prefix = `s${randomBytes(6).toString('base64url').replace(/[-_]/g, 'x')}`;
  private readonly meta = new WeakMap<BenchRequest, { kind: Kind; orderNo: string }>();
  /** Substituted creates: a notify was due but no created order was waiting. */
  substitutions = 0;
  paidOk = 0;

  constructor(
    private readonly apiKey: string,
    private readonly secret: string,
    private readonly notifyUrl: string,
  ) {}

  kindOf(req: BenchRequest): Kind {
    return this.meta.get(req)?.kind ?? 'create';
  }

  /** Request `i`: i mod 5 ∈ {0,1} create, {2,3} notify, 4 query (40/40/20). */
  next(i: number): BenchRequest {
    const slot = i % 5;
    let kind: Kind = slot < 2 ? 'create' : slot < 4 ? 'notify' : 'query';
    if (kind === 'notify' && this.unpaidHead >= this.unpaid.length) {
      kind = 'create';
      this.substitutions += 1;
    }
    if (kind === 'query' && this.created.length === 0) kind = 'create';
    let req: BenchRequest;
    let orderNo: string;
    if (kind === 'create') {
      orderNo = this.prefix + (this.counter++).toString(36);
      req = {
        method: 'POST',
        path: '/api/orders',
        headers: { 'content-type': 'application/json', 'x-api-key': this.apiKey },
        body: JSON.stringify({ order_no: orderNo, amount: NOTIFY_AMOUNT, currency: 'CNY', notify_url: this.notifyUrl }),
      };
    } else if (kind === 'notify') {
      orderNo = this.unpaid[this.unpaidHead++]!;
      req = signedNotifyRequest(orderNo, this.secret);
    } else {
      orderNo = this.created[Math.floor(Math.random() * this.created.length)]!;
      req = { method: 'GET', path: `/query_order?action=status&order_no=${orderNo}`, headers: { 'x-api-key': this.apiKey } };
    }
    this.meta.set(req, { kind, orderNo });
    return req;
  }

  /** null when the answer passes; otherwise an error kind. Records created orders and payments. */
  check(req: BenchRequest, status: number, body: string): string | null {
    const m = this.meta.get(req);
    if (!m) return 'unknown_request';
    if (m.kind === 'create') {
      if (status !== 201) return `http_${status}`;
      if (!body.includes(`"order_no":"${m.orderNo}"`)) return 'unexpected_body';
      this.created.push(m.orderNo);
      this.unpaid.push(m.orderNo);
      return null;
    }
    if (status !== 200) return `http_${status}`;
    if (m.kind === 'notify') {
      try {
        const data = (JSON.parse(body) as { data?: { order_no?: unknown; status?: unknown } }).data;
        if (data?.order_no !== m.orderNo) return 'unexpected_body';
        if (data.status !== 'paid') return 'not_paid';
      } catch {
        return 'unexpected_body';
      }
      this.paidOk += 1;
      return null;
    }
    if (!body.includes(`"order_no":"${m.orderNo}"`)) return 'unexpected_body';
    return /"status":"(pending|paid)"/.test(body) ? null : 'unexpected_status_field';
  }
}

interface EndpointStats {
  requests: number;
  ok: number;
  errors: number;
  error_kinds: Record<string, number>;
  error_samples: string[];
  latencies: number[];
}

/** Open loop: request n is due at start + n / rate, sent whether or not earlier ones have answered. */
async function openLoop(origin: string, rate: number, durationMs: number, mix: Mix, onTick: (sent: number) => void, signal: AbortSignal) {
  const pool = new Pool(origin, { connections: 512, pipelining: 1, keepAliveTimeout: 60_000, headersTimeout: 15_000, bodyTimeout: 15_000 });
  const stats = Object.fromEntries(
    KINDS.map((k) => [k, { requests: 0, ok: 0, errors: 0, error_kinds: {}, error_samples: [], latencies: [] } as EndpointStats]),
  ) as Record<Kind, EndpointStats>;
  let sent = 0;
  let inFlight = 0;
  let maxInFlight = 0;
  let maxLagMs = 0;
  const pending = new Set<Promise<void>>();
  const fire = (req: BenchRequest) => {
    const kind = mix.kindOf(req);
    const s = stats[kind];
    const fail = (k: string, detail: string) => {
      s.errors += 1;
      s.error_kinds[k] = (s.error_kinds[k] ?? 0) + 1;
      if (s.error_kinds[k] === 1 && s.error_samples.length < 5) s.error_samples.push(`${k}: ${detail.slice(0, 300)}`);
    };
    const t0 = performance.now();
    inFlight += 1;
    maxInFlight = Math.max(maxInFlight, inFlight);
    const p = (async () => {
      try {
        const res = await pool.request({ method: req.method, path: req.path, headers: req.headers, body: req.body });
        const text = await res.body.text();
        s.latencies.push(performance.now() - t0);
        s.requests += 1;
        const problem = mix.check(req, res.statusCode, text);
        if (problem) fail(problem, text);
        else s.ok += 1;
      } catch (err) {
        s.latencies.push(performance.now() - t0);
        s.requests += 1;
        const e = err as { code?: string; message?: string };
        fail(e.code ?? 'network_error', e.message ?? String(err));
      } finally {
        inFlight -= 1;
      }
    })();
    pending.add(p);
    void p.finally(() => pending.delete(p));
  };
  const started = performance.now();
  const end = started + durationMs;
  while (!signal.aborted) {
    const now = performance.now();
    if (now >= end) break;
    const due = Math.floor(((now - started) / 1000) * rate);
    if (due - sent > 1) maxLagMs = Math.max(maxLagMs, ((due - sent) / rate) * 1000);
    while (sent < due) fire(mix.next(sent++));
    onTick(sent);
    await sleep(2);
  }
  const sendingS = (performance.now() - started) / 1000;
  await Promise.all([...pending]);
  await pool.close();
  const endpoints = Object.fromEntries(
    KINDS.map((k) => {
      const s = stats[k];
      const sorted = Float64Array.from(s.latencies).sort();
      return [
        k,
        {
          requests: s.requests,
          ok: s.ok,
          errors: s.errors,
          error_kinds: s.error_kinds,
          error_samples: s.error_samples,
          latency_ms: { p50: round(percentile(sorted, 50)), p99: round(percentile(sorted, 99)), max: round(sorted[sorted.length - 1] ?? 0) },
        },
      ];
    }),
  ) as Record<Kind, Omit<EndpointStats, 'latencies'> & { latency_ms: { p50: number; p99: number; max: number } }>;
  return {
    sent,
    sending_s: round(sendingS, 2),
    achieved_rps: round(sent / sendingS, 1),
    max_in_flight: maxInFlight,
    max_schedule_lag_ms: round(maxLagMs),
    endpoints,
  };
}

/** `name{labels} value` lines of a Prometheus text answer; the first sample of `name`. */
function metricValue(text: string, name: string): number | null {
  const re = new RegExp(`^${name}(?:\\{[^}]*\\})? (\\S+)`, 'm');
  const m = re.exec(text);
  return m ? Number(m[1]) : null;
}

/** Least-squares slope of y over x. */
function slope(points: Array<[number, number]>): number | null {
  if (points.length < 2) return null;
  const n = points.length;
  const mx = points.reduce((a, [x]) => a + x, 0) / n;
  const my = points.reduce((a, [, y]) => a + y, 0) / n;
  let num = 0;
  let den = 0;
  for (const [x, y] of points) {
    num += (x - mx) * (y - my);
    den += (x - mx) ** 2;
  }
  return den === 0 ? null : num / den;
}

export async function runSoak(argv: string[]): Promise<number> {
  const { values: args } = parseArgs({
    args: argv,
    options: {
      soak: { type: 'boolean', default: true },
      'soak-seconds': { type: 'string', default: '300' },
      'soak-rate': { type: 'string' },
      'pool-size': { type: 'string', default: '16' },
      'log-level': { type: 'string', default: 'info' },
      'from-source': { type: 'boolean', default: false },
    },
  });
  const num = (name: string, v: string | undefined): number | undefined => {
    if (v === undefined) return undefined;
    const n = Number(v);
    if (!Number.isFinite(n) || n <= 0) throw new Error(`--${name} must be a positive number`);
    return n;
  };
  const seconds = num('soak-seconds', args['soak-seconds'])!;
  const givenRate = num('soak-rate', args['soak-rate']);
  const poolSize = Math.round(num('pool-size', args['pool-size'])!);
  const mysqlUrl = process.env.BENCH_MYSQL_URL ?? 'mysql://root@127.0.0.1:3306';
  const startedAt = new Date();
  const loadBefore = loadavg().map((n) => round(n));

  const { version: mariadb } = await prepareDatabases(mysqlUrl);
  const apiKey = `pcs_bench_${randomBytes(32).toString('base64url')}`;
  const gatewaySecret = randomBytes(32).toString('hex');
  const logFile = resolve(tmpdir(), `pcs-soak-ours-${process.pid}-${startedAt.getTime()}.log`);
  const receiver = await DeliveryReceiver.start();
  let child: ServerChild | null = null;
  const abort = new AbortController();
  let interrupted = false;
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.on(signal, () => {
      if (interrupted) return;
      interrupted = true;
      log(`${signal}: stopping`);
      void (child?.stop() ?? Promise.resolve()).finally(() => {
        removeLogFile(logFile);
        process.exit(130);
      });
    });
  }
  const watchdog = setTimeout(
    () => {
      log('run exceeded its budget; stopping');
      void (child?.stop() ?? Promise.resolve()).finally(() => process.exit(2));
    },
    (seconds + 300) * 1000,
  );
  try {
    child = await startOurs({ mysqlUrl, apiKey, poolSize, gatewaySecret, logLevel: args['log-level'], logFile, fromSource: args['from-source'] });
    const server = child;
    void server.exited.then(() => abort.abort());
    await waitUntilAnswering(server, '/readyz', {});
    log(`ours answers (pid ${server.pid}, ${server.origin}); receiver ${receiver.url}`);
    const mix = new Mix(apiKey, gatewaySecret, receiver.url);

    // Calibration: the same mix, closed loop, to find the maximum rate.
    const calibration = await runLoad({
      origin: server.origin,
      concurrency: CALIBRATION_CONCURRENCY,
      durationMs: CALIBRATION_MS,
      signal: abort.signal,
      next: (i) => mix.next(i),
      check: (req, status, body) => mix.check(req, status, body),
    });
    const maxRps = calibration.ok_rps;
    const rate = givenRate ?? (maxRps > 0 ? Math.round(maxRps / 2) : FALLBACK_RATE);
    log(`calibration: ${calibration.ok_rps} req/s ok (${calibration.errors} errors); soak at ${rate}/s for ${seconds} s`);
    await receiver.waitFor(mix.paidOk, 30_000);
    await sleep(2000);

    // Soak with a scrape every 5 s.
    const samples: Array<{
      t_s: number;
      rss_mb: number | null;
      heap_used_mb: number | null;
      eventloop_p99_ms: number | null;
      sent: number;
      delivered: number;
      paid_ok: number;
    }> = [];
    const metricNames = { rss: 'process_resident_memory_bytes', heap: 'nodejs_heap_size_used_bytes', lag: 'nodejs_eventloop_lag_p99_seconds' };
    let scrapeErrors = 0;
    let sentSoFar = 0;
    const soakStart = performance.now();
    const scrape = async () => {
      try {
        const res = await fetch(`${server.origin}/metrics`, { headers: { authorization: `Bearer ${BENCH_METRICS_TOKEN}` }, signal: AbortSignal.timeout(4000) });
        const text = await res.text();
        if (res.status !== 200) throw new Error(`HTTP ${res.status}`);
        const rss = metricValue(text, metricNames.rss);
        const heap = metricValue(text, metricNames.heap);
        const lag = metricValue(text, metricNames.lag);
        samples.push({
          t_s: round((performance.now() - soakStart) / 1000, 1),
          rss_mb: rss === null ? null : round(rss / 2 ** 20, 1),
          heap_used_mb: heap === null ? null : round(heap / 2 ** 20, 1),
          eventloop_p99_ms: lag === null ? null : round(lag * 1000, 2),
          sent: sentSoFar,
          delivered: receiver.arrivals.size,
          paid_ok: mix.paidOk,
        });
        const s = samples[samples.length - 1]!;
        log(
          `t=${s.t_s}s rss ${s.rss_mb} MB heap ${s.heap_used_mb} MB loop p99 ${s.eventloop_p99_ms} ms sent ${s.sent} paid ${s.paid_ok} delivered ${s.delivered}`,
        );
      } catch (err) {
        scrapeErrors += 1;
        log(`scrape failed: ${(err as Error).message}`);
      }
    };
    await scrape(); // resets the delay histogram: the first soak sample covers the soak alone
    samples.length = 0;
    const timer = setInterval(() => void scrape(), SCRAPE_INTERVAL_MS);
    const load = await openLoop(server.origin, rate, seconds * 1000, mix, (sent) => (sentSoFar = sent), abort.signal);
    clearInterval(timer);
    await scrape();
    log(
      `load done: ${load.sent} sent in ${load.sending_s} s (${load.achieved_rps}/s); errors ${KINDS.map((k) => `${k} ${load.endpoints[k].errors}`).join(', ')}`,
    );

    // Drain, bounded.
    const dbUrl = databaseUrl(mysqlUrl, OURS_DB);
    const conn = await mysql.createConnection({ uri: dbUrl });
    let audit: Record<string, unknown>;
    let lost = 0;
    try {
      const q = async (sql: string) => Number(((await conn.query(sql))[0] as Array<{ n: number }>)[0]?.n ?? 0);
      const drainStart = performance.now();
      let undelivered = await q("SELECT COUNT(*) AS n FROM notifications WHERE status <> 'delivered'");
      while (undelivered > 0 && performance.now() - drainStart < DRAIN_TIMEOUT_MS) {
        await sleep(500);
        undelivered = await q("SELECT COUNT(*) AS n FROM notifications WHERE status <> 'delivered'");
      }
      await sleep(1000); // late duplicates
      const drainS = round((performance.now() - drainStart) / 1000, 1);
      log(`drain: ${undelivered} undelivered after ${drainS} s`);
      await scrape();

      const [statusRows] = await conn.query('SELECT status, COUNT(*) AS n FROM notifications GROUP BY status');
      const byStatus: Record<string, number> = {};
      for (const r of statusRows as Array<{ status: string; n: number }>) byStatus[r.status] = Number(r.n);
      const [orderRows] = await conn.query('SELECT status, COUNT(*) AS n FROM orders GROUP BY status');
      const ordersByStatus: Record<string, number> = {};
      for (const r of orderRows as Array<{ status: string; n: number }>) ordersByStatus[r.status] = Number(r.n);
      const paidOrders = ordersByStatus.paid ?? 0;
      const paidWithoutOneApplied = await q(
        "SELECT COUNT(*) AS n FROM orders o WHERE o.status = 'paid' AND (SELECT COUNT(*) FROM payment_logs p WHERE p.order_no = o.order_no AND p.verdict = 'applied') <> 1",
      );
      const appliedForUnpaid = await q(
        "SELECT COUNT(*) AS n FROM payment_logs p JOIN orders o ON o.order_no = p.order_no WHERE p.verdict = 'applied' AND o.status <> 'paid'",
      );
      const paidWithoutEvent = await q(
        "SELECT COUNT(*) AS n FROM orders o WHERE o.status = 'paid' AND NOT EXISTS (SELECT 1 FROM notifications n WHERE n.order_no = o.order_no)",
      );
      const paidWithUndelivered = await q(
        "SELECT COUNT(DISTINCT o.order_no) AS n FROM orders o JOIN notifications n ON n.order_no = o.order_no WHERE o.status = 'paid' AND n.status <> 'delivered'",
      );
      const [eventRows] = await conn.query('SELECT event_id FROM notifications');
      const dbEvents = new Set((eventRows as Array<{ event_id: string }>).map((r) => r.event_id));
      for (const id of dbEvents) if (!receiver.arrivals.has(id)) lost += 1;
      let unknownAtReceiver = 0;
      for (const id of receiver.arrivals.keys()) if (!dbEvents.has(id)) unknownAtReceiver += 1;
      const acceptedNotify = mix.paidOk;
      audit = {
        drain_s: drainS,
        drain_limit_s: DRAIN_TIMEOUT_MS / 1000,
        undelivered_after_drain: undelivered,
        orders_by_status: ordersByStatus,
        orders_created_ok: mix.created.length,
        notifications_accepted_200: acceptedNotify,
        paid_orders: paidOrders,
        paid_equals_accepted: paidOrders === acceptedNotify,
        paid_without_exactly_one_applied_log: paidWithoutOneApplied,
        applied_logs_for_unpaid_orders: appliedForUnpaid,
        paid_without_notification_row: paidWithoutEvent,
        paid_with_undelivered_notification: paidWithUndelivered,
        notifications_by_status: { delivered: 0, ...byStatus },
        notification_rows: dbEvents.size,
        receiver_distinct_events: receiver.arrivals.size,
        receiver_requests: receiver.requests,
        receiver_duplicates: receiver.duplicates,
        receiver_malformed: receiver.malformed,
        receiver_unknown_events: unknownAtReceiver,
        lost_events: lost,
      };
    } finally {
      await conn.end();
    }

    // Summaries.
    const rss = samples.map((s) => s.rss_mb).filter((v): v is number => v !== null);
    const lag = samples.map((s) => s.eventloop_p99_ms).filter((v): v is number => v !== null);
    const soakSamples = samples.filter((s) => s.t_s <= seconds + 1);
    const half = soakSamples.filter((s) => s.t_s >= seconds / 2 && s.rss_mb !== null).map((s) => [s.t_s / 60, s.rss_mb!] as [number, number]);
    const trend = slope(half);
    // RSS of a 5 s sample swings with GC timing; these show whether the floor moves.
    const wholeRun = slope(soakSamples.filter((s) => s.rss_mb !== null).map((s) => [s.t_s / 60, s.rss_mb!] as [number, number]));
    const heapHalf = slope(
      soakSamples.filter((s) => s.t_s >= seconds / 2 && s.heap_used_mb !== null).map((s) => [s.t_s / 60, s.heap_used_mb!] as [number, number]),
    );
    const heapFloorPerMinute: number[] = [];
    for (const s of soakSamples) {
      if (s.heap_used_mb === null || s.t_s <= 0) continue;
      const minute = Math.min(Math.floor((s.t_s - 0.001) / 60), Math.max(0, Math.ceil(seconds / 60) - 1));
      heapFloorPerMinute[minute] = Math.min(heapFloorPerMinute[minute] ?? Number.POSITIVE_INFINITY, s.heap_used_mb);
    }
    const soakLag = soakSamples.map((s) => s.eventloop_p99_ms).filter((v): v is number => v !== null);
    const lagSorted = Float64Array.from(soakLag).sort();
    const errors = Object.fromEntries(KINDS.map((k) => [k, load.endpoints[k].errors]));
    const totalErrors = Object.values(errors).reduce((a, b) => a + b, 0) + calibration.errors;
    const rssMax = rss.length ? Math.max(...rss) : null;
    const lagMax = soakLag.length ? Math.max(...soakLag) : null;
    const targets = {
      rss_under_200mb: rssMax !== null && rssMax < 200,
      // "No upward trend": under 1 MB/min over the second half (a leak at this rate shows several).
      rss_no_upward_trend: trend !== null && trend < 1,
      eventloop_p99_under_50ms: lagMax !== null && lagMax < 50,
      zero_errors: totalErrors === 0 && scrapeErrors === 0,
      zero_lost_events: lost === 0 && audit.undelivered_after_drain === 0,
      audit_consistent:
        audit.paid_equals_accepted === true &&
        audit.paid_without_exactly_one_applied_log === 0 &&
        audit.applied_logs_for_unpaid_orders === 0 &&
        audit.paid_without_notification_row === 0 &&
        audit.paid_with_undelivered_notification === 0 &&
        audit.receiver_unknown_events === 0,
      rate_held: load.achieved_rps >= rate * 0.98 && load.max_schedule_lag_ms < 1000,
    };
    const ok = Object.values(targets).every(Boolean) && server.exit === null;
    clearTimeout(watchdog);
    await server.stop();
    const serverLog = await logFileSummary(logFile, 3);
    removeLogFile(logFile);
    const document = {
      benchmark: 'soak',
      started_at: startedAt.toISOString(),
      finished_at: new Date().toISOString(),
      ok,
      targets,
      parameters: {
        soak_seconds: seconds,
        rate_rps: rate,
        rate_source:
          givenRate !== undefined
            ? '--soak-rate'
            : `half of the calibration maximum (${maxRps} ok req/s, closed loop, ${CALIBRATION_CONCURRENCY} workers, ${CALIBRATION_MS / 1000} s, same mix)`,
        mix: '40% POST /api/orders (notify_url = receiver), 40% signed POST /notify paying an earlier created order once (a create instead while none waits), 20% GET /query_order?action=status of a random created order',
        open_loop: 'request n is sent at start + n/rate regardless of earlier answers (undici Pool, up to 512 connections)',
        scrape_interval_s: SCRAPE_INTERVAL_MS / 1000,
        metrics: metricNames,
        eventloop_note: 'prom-client resets its event-loop delay histogram on every /metrics collect, so each sample is the p99 of the preceding ~5 s',
        pool_size: poolSize,
        log_level: args['log-level'],
        mysql_url: mysqlUrl.replace(/:[^:@/]*@/, ':***@'),
      },
      machine: {
        cpus: cpus().length,
        cpu_model: cpus()[0]?.model ?? 'unknown',
        node: process.version,
        mariadb,
        loadavg_before: loadBefore,
        loadavg_after: loadavg().map((n) => round(n)),
      },
      calibration: {
        ok_rps: calibration.ok_rps,
        requests: calibration.requests,
        errors: calibration.errors,
        error_kinds: calibration.error_kinds,
        latency_ms: calibration.latency_ms,
      },
      load,
      substituted_creates: mix.substitutions,
      rss_mb: {
        first: rss[0] ?? null,
        last: rss[rss.length - 1] ?? null,
        max: rssMax,
        trend_second_half_mb_per_min: trend === null ? null : round(trend, 3),
        trend_whole_run_mb_per_min: wholeRun === null ? null : round(wholeRun, 3),
      },
      heap_used_mb: { trend_second_half_mb_per_min: heapHalf === null ? null : round(heapHalf, 3), floor_per_minute: heapFloorPerMinute },
      eventloop_p99_ms: {
        max: lagMax,
        p99_of_samples: round(percentile(lagSorted, 99)),
        median_of_samples: round(percentile(lagSorted, 50)),
        including_drain_max: lag.length ? Math.max(...lag) : null,
      },
      errors: { ...errors, calibration: calibration.errors, scrape: scrapeErrors, total: totalErrors },
      audit,
      server: { exit: server.exit, stderr_tail: server.tail().slice(-10), stdout_log: serverLog },
      samples,
    };
    const json = JSON.stringify(document, null, 2);
    const dir = resolve(ROOT, 'bench/results');
    mkdirSync(dir, { recursive: true });
    const file = resolve(dir, `soak-${startedAt.toISOString().replace(/[:.]/g, '-')}.json`);
    writeFileSync(file, `${json}\n`);
    process.stdout.write(`${json}\n`);
    log(`written to ${file}`);
    log(
      `RSS first ${document.rss_mb.first} last ${document.rss_mb.last} max ${rssMax} MB, trend ${document.rss_mb.trend_second_half_mb_per_min} MB/min; loop p99 max ${lagMax} ms; errors ${totalErrors}; lost ${lost}; ${ok ? 'OK' : 'TARGETS MISSED'} ${JSON.stringify(targets)}`,
    );
    return ok ? 0 : 1;
  } finally {
    clearTimeout(watchdog);
    await child?.stop();
    await receiver.close();
    removeLogFile(logFile);
  }
}
