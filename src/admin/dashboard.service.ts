import type { Database } from '../db/database.ts';
import type { NotificationService } from '../notifications/notification.service.ts';
import { ORDER_STATUSES } from '../orders/order.schema.ts';
import type { Messages } from '../pages/i18n.ts';
import { fromDbTime, toDbTime, type Clock } from '../shared/time.ts';
import { horizontalBars, stackedColumns } from './charts.ts';
import {
  callbacksByBucket,
  deliveriesByStatus,
  ordersByStatus,
  queueTimes,
  recoveredByQuery,
  QUEUED,
  SETTLED,
  type BucketUnit,
} from './dashboard.repository.ts';
import { VERDICTS } from './verdicts.ts';

export const PERIODS = { '24h': 86_400_000, '7d': 7 * 86_400_000, '30d': 30 * 86_400_000 } as const;
export type Period = keyof typeof PERIODS;

/** The callbacks chart of each period: 24 hours, or 7 or 30 days (UTC), ending with the current one. */
const BUCKETS: Record<Period, { unit: BucketUnit; count: number; labelEvery: number }> = {
  '24h': { unit: 'hour', count: 24, labelEvery: 3 },
  '7d': { unit: 'day', count: 7, labelEvery: 1 },
  '30d': { unit: 'day', count: 30, labelEvery: 5 },
};
const UNIT_MS: Record<BucketUnit, number> = { hour: 3_600_000, day: 86_400_000 };
const label = (t: Messages, key: string) => (t as Record<string, string>)[key] ?? key;

/** `count` buckets ending with the current one, as `YYYY-MM-DD HH` (hours) or `YYYY-MM-DD` (days), UTC. */
function buckets(now: Date, unit: BucketUnit, count: number): string[] {
  const size = UNIT_MS[unit];
  const current = Math.floor(now.getTime() / size) * size;
  return Array.from({ length: count }, (_, i) => toDbTime(new Date(current - (count - 1 - i) * size)).slice(0, unit === 'hour' ? 13 : 10));
}

const secondsSince = (now: Date, dbTime: string | null) => (dbTime === null ? null : Math.max(0, (now.getTime() - fromDbTime(dbTime).getTime()) / 1000));

/** Everything the dashboard shows, computed from indexed range queries (see dashboard.repository.ts). */
export function createDashboardService(deps: { readDb: Database; clock: Clock; notifications: NotificationService }) {
  async function load(period: Period, t: Messages) {
    const now = deps.clock();
    const since = toDbTime(new Date(now.getTime() - PERIODS[period]));
    const shape = BUCKETS[period];
    const keys = buckets(now, shape.unit, shape.count);
    const firstBucket = shape.unit === 'hour' ? `${keys[0]}:00:00.000` : `${keys[0]} 00:00:00.000`;
    const [orders, counted, deliveries, queue, times, recovered] = await Promise.all([
      ordersByStatus(deps.readDb.kysely, since),
      callbacksByBucket(deps.readDb, firstBucket, shape.unit),
      deliveriesByStatus(deps.readDb.kysely, since),
      deps.notifications.deliveryMetrics(),
      queueTimes(deps.readDb.kysely),
      // Always the last 24 hours, whatever the period: a recent recovery is what needs looking into.
      recoveredByQuery(deps.readDb.kysely, toDbTime(new Date(now.getTime() - PERIODS['24h']))),
    ]);

    const byBucket = new Map<string, Map<string, number>>();
    for (const row of counted) {
      const bucket = byBucket.get(row.bucket) ?? new Map<string, number>();
      bucket.set(row.verdict, (bucket.get(row.verdict) ?? 0) + row.n);
      byBucket.set(row.bucket, bucket);
    }
    const seen = VERDICTS.filter((v) => counted.some((r) => r.verdict === v && r.n > 0));
    const columns = keys.map((key) => ({
      key,
      label: shape.unit === 'hour' ? `${key.slice(11, 13)}:00` : key.slice(5),
      segments: VERDICTS.map((v) => ({ key: v, value: byBucket.get(key)?.get(v) ?? 0 })),
    }));
    const callbackTotals = Object.fromEntries(VERDICTS.map((v) => [v, counted.filter((r) => r.verdict === v).reduce((s, r) => s + r.n, 0)]));
    const callbacksTotal = counted.reduce((s, r) => s + r.n, 0);
    const nextAttemptIn = times.nextAttemptAt === null ? null : Math.max(0, (fromDbTime(times.nextAttemptAt).getTime() - now.getTime()) / 1000);

    const settled = SETTLED.reduce((s, k) => s + deliveries[k], 0);
    const ordersTotal = ORDER_STATUSES.reduce((s, k) => s + orders[k], 0);
    return {
      period,
      since,
      now: toDbTime(now),
      orders: {
        total: ordersTotal,
        paidShare: ordersTotal === 0 ? null : orders.paid / ordersTotal,
        chart: horizontalBars(ORDER_STATUSES.map((s) => ({ key: s, label: label(t, `status_${s}`), value: orders[s] }))),
      },
      callbacks: {
        unit: shape.unit,
        total: callbacksTotal,
        accepted: (callbackTotals.applied ?? 0) + (callbackTotals.duplicate ?? 0),
        verdicts: seen.map((v) => ({ key: v, label: label(t, `verdict_${v}`), total: callbackTotals[v] ?? 0 })),
        chart: stackedColumns(columns, { labelEvery: shape.labelEvery }),
      },
      deliveries: {
        settled,
        successRate: settled === 0 ? null : deliveries.delivered / settled,
        backlog: queue.backlog,
        oldestDueAgeSeconds: queue.oldest_due_age_seconds,
        /** Since the oldest queued event was written (it may be waiting for a retry that is not due yet). */
        oldestWaitingSeconds: queue.backlog === 0 ? null : secondsSince(now, times.oldestCreatedAt),
        /** Until the earliest scheduled attempt; 0 when one is due now. */
        nextAttemptInSeconds: queue.backlog === 0 ? null : nextAttemptIn,
        chart: horizontalBars([...SETTLED, ...QUEUED].map((s) => ({ key: s, label: label(t, `delivery_${s}`), value: deliveries[s] }))),
      },
      /** Payments found by asking the gateway: each is a callback that never arrived. */
      recovered: { last24h: recovered.recent, total: recovered.total, warning: recovered.recent > 0 },
    };
  }

  return { load };
}

export type DashboardService = ReturnType<typeof createDashboardService>;
export type Dashboard = Awaited<ReturnType<DashboardService['load']>>;
