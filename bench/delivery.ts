import { createServer, type Server } from 'node:http';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import mysql from 'mysql2/promise';
import { startCpuMeter } from './cpu.ts';
import { percentile, runLoad, runPaced, type BenchRequest } from './load.ts';
import { NotifyOrders, notifyScenario } from './notify.ts';
import { databaseUrl, OURS_DB, removeLogFile, startOurs, waitUntilAnswering, type ServerChild } from './servers.ts';

/**
 * The `delivery` scenario (ours only: the yardstick has no delivery loop). N pending orders whose
 * notify_url is a receiver in this process; each is paid by a signed POST /notify; the receiver notes when
 * each event (the merchant notification body, keyed by `event_id`) arrives. Deliveries/s = N / (last arrival − first /notify sent);
 * latency per event = its arrival − the moment that order's /notify answered 200 (one clock: performance.now).
 */

/** A merchant that answers 200 `success` at once and records each event's first arrival (and repeats). */
export class DeliveryReceiver {
  readonly arrivals = new Map<string, { orderNo: string; at: number }>();
  duplicates = 0;
  requests = 0;
  malformed = 0;
  private waiter: { count: number; resolve: () => void } | null = null;
  private constructor(
    private readonly server: Server,
    readonly url: string,
  ) {}

  static start(): Promise<DeliveryReceiver> {
    return new Promise((resolveReceiver, reject) => {
      let receiver: DeliveryReceiver | undefined;
      const server = createServer((req, res) => {
        const chunks: Buffer[] = [];
        req.on('data', (c: Buffer) => chunks.push(c));
        req.on('end', () => {
          const at = performance.now();
          res.writeHead(200, { 'content-type': 'text/plain' }).end('success');
          receiver?.record(Buffer.concat(chunks).toString('utf8'), at);
        });
      });
      server.keepAliveTimeout = 60_000;
      server.once('error', reject);
      server.listen(0, '127.0.0.1', () => {
        const address = server.address();
        const port = typeof address === 'object' && address ? address.port : 0;
        receiver = new DeliveryReceiver(server, `http://127.0.0.1:${port}/merchant/delivery`);
        resolveReceiver(receiver);
      });
    });
  }

  private record(body: string, at: number): void {
    this.requests += 1;
    let event: { event_id?: unknown; order_no?: unknown };
    try {
      event = JSON.parse(body) as typeof event;
    } catch {
      this.malformed += 1;
      return;
    }
    if (typeof event.event_id !== 'string' || typeof event.order_no !== 'string') {
      this.malformed += 1;
      return;
    }
    if (this.arrivals.has(event.event_id)) this.duplicates += 1;
    else this.arrivals.set(event.event_id, { orderNo: event.order_no, at });
    if (this.waiter && this.arrivals.size >= this.waiter.count) {
      this.waiter.resolve();
      this.waiter = null;
    }
  }

  /** Resolves true once `count` distinct events arrived, false after `timeoutMs`. */
  async waitFor(count: number, timeoutMs: number): Promise<boolean> {
    if (this.arrivals.size >= count) return true;
    const reached = new Promise<boolean>((r) => (this.waiter = { count, resolve: () => r(true) }));
    const result = await Promise.race([reached, sleep(timeoutMs, false)]);
    this.waiter = null;
    return result;
  }

  close(): Promise<void> {
    return new Promise((r) => {
      this.server.closeAllConnections();
      this.server.close(() => r());
    });
  }
}

export interface DeliveryRunOptions {
  mysqlUrl: string;
  apiKey: string;
  gatewaySecret: string;
  poolSize: number;
  logLevel: string;
  logFile: string;
  serviceDir: string;
  fromSource?: boolean;
  mariadbPid: number | undefined;
  /** NOTIFY_CONCURRENCY of the service for this run. */
  notifyConcurrency: number;
  orders: number;
  /** Concurrent POST /notify senders (closed loop), or the connection limit of a paced run. */
  sendConcurrency: number;
  /** Paced run: /notify sent open-loop at this many per second (as payments arrive), instead of closed loop. */
  sendRate?: number;
  /**
   * INSTALL §9's split: /notify goes to a web process (NOTIFY_WORKER=false) and a second, worker process
   * on the same database delivers, finding new events by polling every `pollMs` (no wake-up crosses processes).
   */
  split?: { pollMs: number };
  /** Payments sent (closed loop, 16 senders) and delivered before the measured run, so the processes' code is warm. */
  warmupOrders?: number;
  /** How long to wait for every event after the last /notify. */
  waitMs: number;
  log: (message: string) => void;
  /** Told about the service process as soon as it is spawned (so an interrupted bench stops it). */
  onChild?: (child: ServerChild) => void;
}

const round = (n: number, digits = 2) => Number(n.toFixed(digits));

export function stats(values: number[]) {
  const sorted = Float64Array.from(values).sort();
  const sum = values.reduce((a, b) => a + b, 0);
  return {
    p50: round(percentile(sorted, 50)),
    p90: round(percentile(sorted, 90)),
    p99: round(percentile(sorted, 99)),
    max: round(sorted[sorted.length - 1] ?? 0),
    mean: round(values.length ? sum / values.length : 0),
  };
}

/** One delivery run against a fresh service process (its own NOTIFY_CONCURRENCY) on bench_service. */
export async function runDelivery(o: DeliveryRunOptions) {
  const receiver = await DeliveryReceiver.start();
  const start = (logFile: string, env: Record<string, string>) =>
    startOurs({
      mysqlUrl: o.mysqlUrl,
      apiKey: o.apiKey,
      poolSize: o.poolSize,
      gatewaySecret: o.gatewaySecret,
      logLevel: o.logLevel,
      logFile,
      serviceDir: o.serviceDir,
      fromSource: o.fromSource,
      env,
    });
  const deliverer = { NOTIFY_CONCURRENCY: String(o.notifyConcurrency) };
  // The process /notify goes to; in the split topology it delivers nothing and `worker` does.
  const child: ServerChild = await start(o.logFile, o.split ? { NOTIFY_WORKER: 'false' } : deliverer);
  o.onChild?.(child);
  const worker = o.split ? await start(`${o.logFile}.worker`, { ...deliverer, NOTIFY_POLL_INTERVAL_MS: String(o.split.pollMs) }) : null;
  if (worker) o.onChild?.(worker);
  const dbUrl = databaseUrl(o.mysqlUrl, OURS_DB);
  try {
    await waitUntilAnswering(child, '/readyz', {});
    if (worker) await waitUntilAnswering(worker, '/readyz', {});
    const orders = new NotifyOrders({ origin: child.origin, databaseUrl: dbUrl, createHeaders: { 'x-api-key': o.apiKey } }, receiver.url, 'd');
    await orders.ensure(o.orders);
    const total = orders.available;
    o.log(`ours delivery (NOTIFY_CONCURRENCY=${o.notifyConcurrency}, pid ${child.pid}): ${total} pending orders ready in ${orders.insertSeconds.toFixed(2)} s`);
    if (o.warmupOrders) {
      const warm = new NotifyOrders({ origin: child.origin, databaseUrl: dbUrl, createHeaders: { 'x-api-key': o.apiKey } }, receiver.url, 'w');
      await warm.ensure(o.warmupOrders);
      const warmLoad = await runLoad({ origin: child.origin, concurrency: 16, durationMs: 60_000, ...notifyScenario(warm, o.gatewaySecret) });
      const warmDelivered = await receiver.waitFor(warmLoad.ok, o.waitMs);
      o.log(`  warm-up: ${warmLoad.ok} payments at ${warmLoad.ok_rps}/s, ${warmDelivered ? 'all' : 'NOT all'} delivered; not counted below`);
      receiver.arrivals.clear();
    }
    await sleep(500);

    const notifiedAt = new Map<string, number>();
    const scenario = notifyScenario(orders, o.gatewaySecret);
    const abort = new AbortController();
    void child.exited.then(() => abort.abort());
    const meter = startCpuMeter({ server: child.pid, ...(worker ? { worker: worker.pid } : {}), mariadb: o.mariadbPid });
    const firstSent = performance.now();
    const loadOptions = {
      origin: child.origin,
      concurrency: o.sendConcurrency,
      durationMs: 10 * 60_000, // stops when the orders run out
      signal: abort.signal,
      ...scenario,
      onOk: (req: BenchRequest) => {
        const orderNo = new URLSearchParams(req.body ?? '').get('order_no');
        if (orderNo) notifiedAt.set(orderNo, performance.now());
      },
    };
    const load = o.sendRate ? await runPaced({ ...loadOptions, rate: o.sendRate }) : await runLoad(loadOptions);
    const lastNotified = performance.now();
    const deliveredDuringNotify = receiver.arrivals.size;
    o.log(
      `  /notify: ${load.ok} ok of ${load.requests} in ${load.duration_s} s (${load.ok_rps}/s, p50 ${load.latency_ms.p50} ms, p99 ${load.latency_ms.p99} ms); ${receiver.arrivals.size} delivered so far`,
    );
    const complete = await receiver.waitFor(load.ok, o.waitMs);
    const waitedS = (performance.now() - lastNotified) / 1000;
    await sleep(1000); // late duplicates, and the service's bookkeeping of the last deliveries
    const cpu = meter.perRequest(receiver.arrivals.size);
    const drain = await orders.drainOutbox(10_000);

    const arrivals = [...receiver.arrivals.values()];
    const latencies: number[] = [];
    let unmatched = 0;
    for (const a of arrivals) {
      const sentOk = notifiedAt.get(a.orderNo);
      if (sentOk === undefined) unmatched += 1;
      else latencies.push(a.at - sentOk);
    }
    const lastArrival = arrivals.reduce((m, a) => Math.max(m, a.at), firstSent);
    const firstArrival = arrivals.reduce((m, a) => Math.min(m, a.at), Number.POSITIVE_INFINITY);
    const spanS = (lastArrival - firstSent) / 1000;
    const db = await dbChecks(dbUrl, orders.prefixLike);
    const result = {
      notify_concurrency_setting: o.notifyConcurrency,
      orders: total,
      notify_requests: {
        ok: load.ok,
        errors: load.errors,
        error_kinds: load.error_kinds,
        duration_s: load.duration_s,
        ok_rps: load.ok_rps,
        latency_ms: load.latency_ms,
        concurrency: o.sendConcurrency,
        paced_rate_per_s: o.sendRate ?? null,
        max_schedule_lag_ms: 'max_schedule_lag_ms' in load ? load.max_schedule_lag_ms : null,
      },
      delivered_events: arrivals.length,
      deliveries_per_s: spanS > 0 ? round(arrivals.length / spanS, 1) : null,
      span_first_notify_to_last_delivery_s: round(spanS, 3),
      first_delivery_after_first_notify_ms: Number.isFinite(firstArrival) ? round(firstArrival - firstSent) : null,
      last_delivery_after_last_notify_ms: round(lastArrival - lastNotified),
      // Whether the loop keeps pace while /notify traffic shares the service and its pool, or only catches up after.
      delivered_while_notifying: deliveredDuringNotify,
      rate_while_notifying_per_s: round(deliveredDuringNotify / ((lastNotified - firstSent) / 1000), 1),
      rate_after_notifying_per_s:
        lastArrival > lastNotified ? round((arrivals.length - deliveredDuringNotify) / ((lastArrival - lastNotified) / 1000), 1) : null,
      notify_to_delivery_ms: stats(latencies),
      duplicates: receiver.duplicates,
      receiver_requests: receiver.requests,
      malformed_bodies: receiver.malformed,
      unmatched_events: unmatched,
      missing_events: load.ok - arrivals.length,
      all_arrived: complete,
      waited_after_last_notify_s: round(waitedS, 2),
      wait_limit_s: o.waitMs / 1000,
      db: {
        ...db,
        all_delivered: db.rows === load.ok && db.by_status.delivered === load.ok,
        undelivered_after_drain: drain.undelivered,
        drain_s: drain.seconds,
      },
      cpu_ms_per_delivery: cpu,
    };
    return { result, child };
  } finally {
    await child.stop();
    if (worker) await worker.stop();
    await receiver.close();
    removeLogFile(o.logFile);
    if (worker) removeLogFile(`${o.logFile}.worker`);
  }
}

export async function dbChecks(url: string, like: string) {
  const conn = await mysql.createConnection({ uri: url });
  try {
    const [statusRows] = await conn.query('SELECT status, COUNT(*) AS n FROM notifications WHERE order_no LIKE ? GROUP BY status', [like]);
    const byStatus: Record<string, number> = {};
    for (const r of statusRows as Array<{ status: string; n: number }>) byStatus[r.status] = Number(r.n);
    const [attemptRows] = await conn.query(
      'SELECT COUNT(*) AS n, AVG(a.duration_ms) AS avg_ms, MAX(a.duration_ms) AS max_ms FROM notification_attempts a JOIN notifications n ON n.id = a.notification_id WHERE n.order_no LIKE ?',
      [like],
    );
    const a = (attemptRows as Array<{ n: number; avg_ms: number | string | null; max_ms: number | null }>)[0];
    return {
      rows: Object.values(byStatus).reduce((s, n) => s + n, 0),
      by_status: { delivered: 0, ...byStatus },
      attempts: { rows: Number(a?.n ?? 0), http_duration_ms_avg: a?.avg_ms == null ? null : round(Number(a.avg_ms)), http_duration_ms_max: a?.max_ms ?? null },
    };
  } finally {
    await conn.end();
  }
}
