import { setTimeout as sleep } from 'node:timers/promises';
import { startCpuMeter } from './cpu.ts';
import { runLoad } from './load.ts';
import { notifyScenario, type NotifyOrders } from './notify.ts';
import type { QueryStats } from './reconcile-gateway.ts';
import { parkOrders } from './reconcile-seed.ts';
import type { ServerChild } from './servers.ts';

/**
 * The notify scenario of bench/run.ts (same driver, orders, warm-up and sizing) against one service process,
 * with hooks around its warm-up and measured run so that the reconcile run can start work before it and
 * read the reconciler's progress over exactly the measured seconds.
 */

/** As bench/run.ts: orders ready for this rate before the warm-up, then the measured run sized from the warm-up rate. */
const NOTIFY_WARMUP_RATE = 6000;
const NOTIFY_HEADROOM = 2.5;
const DRAIN_TIMEOUT_MS = 120_000;
const PARK_EVERY = 5000;

export interface NotifyPhaseOptions {
  child: ServerChild;
  orders: NotifyOrders;
  databaseUrl: string;
  gatewaySecret: string;
  concurrency: number;
  warmupS: number;
  durationS: number;
  mariadbPid: number | undefined;
  /** Runs once the warm-up orders exist, before the warm-up starts. */
  beforeWarmup?: () => Promise<void>;
  /** Around the measured run only. */
  measuring?: { start: () => Promise<void>; end: () => Promise<void> };
  /** The query server's counts, read around the measured run: what the reconciler asked meanwhile. */
  queryStats: () => Promise<QueryStats>;
  log: (message: string) => void;
}

export async function runNotifyPhase(o: NotifyPhaseOptions) {
  const abort = new AbortController();
  void o.child.exited.then(() => abort.abort());
  // These orders are paid by /notify, not found by the reconciler: RECONCILE_AFTER=1s makes them due (the copies keep
  // the template's reconcile_at), so they are parked every few INSERTs; the few asked meanwhile are answered `pending`.
  const ready = async (count: number) => {
    while (o.orders.available < count) {
      await o.orders.ensure(Math.min(count, o.orders.available + PARK_EVERY));
      await parkOrders(o.databaseUrl, o.orders.prefixLike);
    }
  };
  await ready(Math.ceil(NOTIFY_WARMUP_RATE * o.warmupS));
  await o.beforeWarmup?.();
  const load = { origin: o.child.origin, concurrency: o.concurrency, signal: abort.signal, ...notifyScenario(o.orders, o.gatewaySecret) };
  const warm = await runLoad({ ...load, durationMs: o.warmupS * 1000 });
  if (warm.errors) o.log(`  warm-up errors: ${JSON.stringify(warm.error_kinds)}`);
  await ready(Math.ceil(Math.max(warm.ok_rps * NOTIFY_HEADROOM, NOTIFY_WARMUP_RATE) * o.durationS));
  await sleep(500);
  await o.measuring?.start();
  const asked0 = await o.queryStats();
  const meter = startCpuMeter({ server: o.child.pid, mariadb: o.mariadbPid });
  const loaded = await runLoad({ ...load, durationMs: o.durationS * 1000 });
  const cpu = meter.perRequest(loaded.requests);
  const asked1 = await o.queryStats();
  await o.measuring?.end();
  const accepted = warm.ok + loaded.ok;
  const counts = await o.orders.count();
  const drain = await o.orders.drainOutbox(DRAIN_TIMEOUT_MS);
  return {
    result: { ...loaded, concurrency: o.concurrency, cpu_ms_per_request: cpu },
    reconciler_during_measured_run: {
      queries: asked1.queries - asked0.queries,
      queries_per_s: Number(((asked1.queries - asked0.queries) / loaded.duration_s).toFixed(1)),
      answered_success: asked1.answered_success - asked0.answered_success,
      // Questions about the notify scenario's own orders (made due before they were parked).
      answered_pending: asked1.answered_pending - asked0.answered_pending,
    },
    check: {
      accepted_notifications: accepted,
      ...counts,
      consistent: counts.paid_orders === accepted && counts.outbox_rows === accepted,
      orders_created: o.orders.created,
      orders_insert_s: Number(o.orders.insertSeconds.toFixed(2)),
      outbox_drain_after_run_s: drain.seconds,
      undelivered_after_drain: drain.undelivered,
      warmup: { ok: warm.ok, errors: warm.errors, ok_rps: warm.ok_rps },
    },
  };
}
