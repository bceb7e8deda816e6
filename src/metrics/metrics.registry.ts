import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { Verdict } from '../callbacks/gateways/gateway.ts';
import type { GatewayName } from '../config.ts';
import { DELIVERY_OUTCOMES, type DeliveryMetrics } from '../notifications/delivery.metrics.ts';

/** What the backlog gauges read at scrape time (notification.service deliveryMetrics()). */
export interface DeliveryStats {
  backlog: number;
  oldest_due_age_seconds: number;
}

export interface MetricsDeps {
  /** Outcome counters of this process's delivery loop; absent in an app without one (then all zero). */
  deliveryMetrics?: DeliveryMetrics;
  /** Backlog and oldest due event, read from the database once per scrape. */
  deliveryStats?: () => Promise<DeliveryStats>;
  /** Told when the backlog queries fail or time out (the gauges then read NaN). */
  onStatsError?: (err: unknown) => void;
}

/** A slow database must not make the whole scrape time out: the backlog is then reported unknown. */
const STATS_TIMEOUT_MS = 2500;

let processRegistry: Registry | undefined;

/** CPU, memory, event loop, GC…: facts about the process, so collected once per process, not per app. */
function processMetrics(): Registry {
  if (!processRegistry) {
    processRegistry = new Registry();
    collectDefaultMetrics({ register: processRegistry });
  }
  return processRegistry;
}

function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => reject(new Error(`delivery stats took longer than ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/**
 * The app's Prometheus metrics in a registry of its own (never prom-client's global one, so several
 * apps in one process, as in the tests, do not collide), plus the process-wide default metrics.
 */
export function createMetrics(deps: MetricsDeps = {}) {
  const registry = new Registry();

  const callbacks = new Counter({
    name: 'payment_callbacks_total',
    help: 'Gateway callbacks (notify and browser return) by gateway and verdict',
    labelNames: ['gateway', 'verdict'] as const,
    registers: [registry],
  });

  new Counter({
    name: 'notification_deliveries_total',
    help: 'Merchant notification delivery attempts of this process by outcome (delivered, retry, dead, abandoned)',
    labelNames: ['outcome'] as const,
    registers: [registry],
    collect() {
      const counts = deps.deliveryMetrics?.snapshot();
      this.reset();
      for (const outcome of DELIVERY_OUTCOMES) this.inc({ outcome }, counts?.[outcome] ?? 0);
    },
  });

  // Both gauges and the up flag share one pair of queries per scrape: their collect() calls start together.
  let inFlight: Promise<DeliveryStats | null> | null = null;
  const loadStats = (): Promise<DeliveryStats | null> => {
    if (!deps.deliveryStats) return Promise.resolve(null);
    inFlight ??= withTimeout(deps.deliveryStats(), STATS_TIMEOUT_MS)
      .catch((err: unknown) => {
        deps.onStatsError?.(err);
        return null;
      })
      .finally(() => {
        inFlight = null;
      });
    return inFlight;
  };

  if (deps.deliveryStats) {
    new Gauge({
      name: 'notification_backlog',
      help: 'Merchant notifications waiting for delivery (pending or in flight); NaN when the database did not answer',
      registers: [registry],
      async collect() {
        this.set((await loadStats())?.backlog ?? Number.NaN);
      },
    });
    new Gauge({
      name: 'notification_oldest_due_age_seconds',
      help: 'How long the oldest due, undelivered notification has been waiting (0 when none); NaN when the database did not answer',
      registers: [registry],
      async collect() {
        this.set((await loadStats())?.oldest_due_age_seconds ?? Number.NaN);
      },
    });
    new Gauge({
      name: 'notification_stats_up',
      help: '1 when the backlog figures of this scrape could be read from the database, else 0',
      registers: [registry],
      async collect() {
        this.set((await loadStats()) ? 1 : 0);
      },
    });
  }

  const httpDuration = new Histogram({
    name: 'http_request_duration_seconds',
    help: 'HTTP request duration by method, matched route pattern and status code',
    labelNames: ['method', 'route', 'status_code'] as const,
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers: [registry],
  });

  const callbackGroups = new Histogram({
    name: 'callback_transaction_size',
    help: 'Verified callbacks per callback transaction: 1 when alone, more when queued callbacks committed together (group commit)',
    buckets: [1, 2, 4, 8, 16, 32],
    registers: [registry],
  });
  const callbackGroupRetries = new Counter({
    name: 'callback_group_retries_total',
    help: 'Grouped callback transactions the database refused (e.g. a replayed nonce), whose callbacks then ran one by one',
    registers: [registry],
  });

  let callbackQueue: () => number = () => 0;
  new Gauge({
    name: 'callback_queue_depth',
    help: 'Verified callbacks waiting for a callback transaction (group commit); at its bound further callbacks are answered 503 unavailable',
    registers: [registry],
    collect() {
      this.set(callbackQueue());
    },
  });

  const rejectsDropped = new Counter({
    name: 'payment_callbacks_dropped_total',
    help: 'Rejected callbacks answered 429 and not stored: their source address was over CALLBACK_REJECT_RATE_PER_MINUTE',
    labelNames: ['gateway'] as const,
    registers: [registry],
  });

  const reconcileQueries = new Counter({
    name: 'reconcile_queries_total',
    help: 'Questions the reconciler asked gateways about orders, by gateway and outcome (recovered, unchanged, closed, expired, mismatch, error, …)',
    labelNames: ['gateway', 'outcome'] as const,
    registers: [registry],
  });
  const refundCalls = new Counter({
    name: 'refund_calls_total',
    help: 'Refund requests sent to and refund questions asked of gateways, by gateway, action (refund, refund_query) and outcome (succeeded, failed, pending, not_found, unknown, mismatch; already/contradicts: a refund settled before the answer)',
    labelNames: ['gateway', 'action', 'outcome'] as const,
    registers: [registry],
  });
  const paymentsRecovered = new Counter({
    name: 'payments_recovered_total',
    help: 'Payments found by asking the gateway (their callback never arrived): a rising count means callbacks are being lost',
    labelNames: ['gateway'] as const,
    registers: [registry],
  });

  const scrape = Registry.merge([processMetrics(), registry]);

  return {
    /** This app's own metrics (without the process metrics). */
    registry,
    /** The hook for the callback service: one call per handled callback, after its verdict is known. */
    recordCallback: (gateway: GatewayName, verdict: Verdict | 'unavailable' | 'rate_limited'): void => {
      callbacks.inc({ gateway, verdict });
    },
    /** The hook for the callback service: a rejected callback was dropped (answered 429, not stored). */
    recordRejectDropped: (gateway: GatewayName): void => {
      rejectsDropped.inc({ gateway });
    },
    /** The hook for the callback group commit: one call per callback transaction (`retried`: refused, then run one by one). */
    recordCallbackGroup: (size: number, retried: boolean): void => {
      if (retried) callbackGroupRetries.inc();
      else callbackGroups.observe(size);
    },
    /** The hook for the reconciler: one call per gateway question, with its outcome. */
    recordReconcile: (gateway: string, outcome: string): void => {
      reconcileQueries.inc({ gateway, outcome });
      if (outcome === 'recovered') paymentsRecovered.inc({ gateway });
    },
    recordRefundCall: (gateway: string, action: string, outcome: string): void => {
      refundCalls.inc({ gateway, action, outcome });
    },
    /** The callback service's queue, read at each scrape. */
    observeCallbackQueue: (depth: () => number): void => {
      callbackQueue = depth;
    },
    observeHttp: (labels: { method: string; route: string; status_code: string }, seconds: number): void => {
      httpDuration.observe(labels, seconds);
    },
    contentType: scrape.contentType,
    /** The Prometheus text exposition of the app's and the process's metrics. */
    render: (): Promise<string> => scrape.metrics(),
  };
}

export type AppMetrics = ReturnType<typeof createMetrics>;
export type RecordCallback = AppMetrics['recordCallback'];

const APP_METRICS = new WeakMap<object, AppMetrics>();

/** Ties an app to its metrics, so tests and tools can reach its hooks (createApp returns the bare app). */
export function bindMetrics(app: object, metrics: AppMetrics): void {
  APP_METRICS.set(app, metrics);
}

export function metricsOf(app: object): AppMetrics | undefined {
  return APP_METRICS.get(app);
}
