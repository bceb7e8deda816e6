import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { startCpuMeter } from './cpu.ts';
import { DeliveryReceiver, dbChecks, stats, type DeliveryRunOptions } from './delivery.ts';
import { runLoad } from './load.ts';
import { NotifyOrders, notifyScenario } from './notify.ts';
import { databaseUrl, OURS_DB, removeLogFile, startOurs, waitUntilAnswering, type ServerChild } from './servers.ts';

/**
 * The delivery loop's capacity: a web-only process (NOTIFY_WORKER=false) accepts N signed /notify
 * payments, so N events wait in the outbox; it is stopped, and a fresh worker process (the default
 * NOTIFY_WORKER=true) drains them to the receiver with nothing else running. deliveries_per_s =
 * (N − 1) / (last arrival − first arrival); CPU is the worker's and MariaDB's per delivery made after it answered /readyz.
 */
export async function runDeliveryDrain(o: DeliveryRunOptions) {
  const receiver = await DeliveryReceiver.start();
  const dbUrl = databaseUrl(o.mysqlUrl, OURS_DB);
  const common = {
    mysqlUrl: o.mysqlUrl,
    apiKey: o.apiKey,
    poolSize: o.poolSize,
    gatewaySecret: o.gatewaySecret,
    logLevel: o.logLevel,
    serviceDir: o.serviceDir,
    fromSource: o.fromSource,
  };
  const started: ServerChild[] = [];
  try {
    const web = await startOurs({ ...common, logFile: `${o.logFile}.web`, env: { NOTIFY_WORKER: 'false' } });
    started.push(web);
    o.onChild?.(web);
    await waitUntilAnswering(web, '/readyz', {});
    const orders = new NotifyOrders({ origin: web.origin, databaseUrl: dbUrl, createHeaders: { 'x-api-key': o.apiKey } }, receiver.url, 'q');
    await orders.ensure(o.orders);
    const load = await runLoad({ origin: web.origin, concurrency: o.sendConcurrency, durationMs: 10 * 60_000, ...notifyScenario(orders, o.gatewaySecret) });
    const arrivedFromWeb = receiver.arrivals.size;
    o.log(`  drain: web-only process accepted ${load.ok} of ${load.requests} /notify (${load.ok_rps}/s); ${arrivedFromWeb} delivered meanwhile (expected 0)`);
    await web.stop();

    const meterStart = performance.now();
    const worker = await startOurs({ ...common, logFile: `${o.logFile}.worker`, env: { NOTIFY_CONCURRENCY: String(o.notifyConcurrency) } });
    started.push(worker);
    o.onChild?.(worker);
    // CPU from the moment the worker answers (its start-up, migrations included, is not delivery work).
    await waitUntilAnswering(worker, '/readyz', {});
    const arrivedBeforeMeter = receiver.arrivals.size;
    const meter = startCpuMeter({ server: worker.pid, mariadb: o.mariadbPid });
    const complete = await receiver.waitFor(load.ok, o.waitMs);
    const cpu = meter.perRequest(receiver.arrivals.size - arrivedBeforeMeter);
    await sleep(1000); // late duplicates
    const drain = await orders.drainOutbox(10_000);

    const times = [...receiver.arrivals.values()].map((a) => a.at).sort((a, b) => a - b);
    const first = times[0] ?? meterStart;
    const last = times[times.length - 1] ?? meterStart;
    // Gaps between consecutive arrivals: a steady drain has no long pauses.
    const gaps = times.slice(1).map((t, i) => t - times[i]!);
    const db = await dbChecks(dbUrl, orders.prefixLike);
    return {
      orders: load.ok,
      notify_concurrency_setting: o.notifyConcurrency,
      delivered_events: receiver.arrivals.size,
      delivered_by_web_only_process: arrivedFromWeb,
      deliveries_per_s: last > first ? Number(((times.length - 1) / ((last - first) / 1000)).toFixed(1)) : null,
      worker_spawn_to_first_delivery_ms: Number((first - meterStart).toFixed(1)),
      worker_spawn_to_last_delivery_s: Number(((last - meterStart) / 1000).toFixed(3)),
      gap_between_arrivals_ms: stats(gaps),
      duplicates: receiver.duplicates,
      malformed_bodies: receiver.malformed,
      missing_events: load.ok - receiver.arrivals.size,
      all_arrived: complete,
      notify_errors: load.errors,
      db: { ...db, all_delivered: db.rows === load.ok && db.by_status.delivered === load.ok, undelivered_after_drain: drain.undelivered },
      cpu_ms_per_delivery: cpu,
    };
  } finally {
    for (const child of started) await child.stop();
    await receiver.close();
    removeLogFile(`${o.logFile}.web`);
    removeLogFile(`${o.logFile}.worker`);
  }
}
