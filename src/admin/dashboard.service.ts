import type { Database } from '../db/database.ts';
import type { NotificationService } from '../notifications/notification.service.ts';
import { ORDER_STATUSES } from '../orders/order.schema.ts';
import type { Messages } from '../pages/i18n.ts';
import { toDbTime, type Clock } from '../shared/time.ts';
import { horizontalBars, stackedColumns } from './charts.ts';
import { callbacksByHour, deliveriesByStatus, ordersByStatus, QUEUED, SETTLED } from './dashboard.repository.ts';
import { VERDICTS } from './verdicts.ts';

export const PERIODS = { '24h': 86_400_000, '7d': 7 * 86_400_000, '30d': 30 * 86_400_000 } as const;
export type Period = keyof typeof PERIODS;

const HOUR = 3_600_000;
const label = (t: Messages, key: string) => (t as Record<string, string>)[key] ?? key;

/** The 24 hour buckets ending with the current one, as `YYYY-MM-DD HH` (UTC). */
function hourBuckets(now: Date): string[] {
  const current = Math.floor(now.getTime() / HOUR) * HOUR;
  return Array.from({ length: 24 }, (_, i) => toDbTime(new Date(current - (23 - i) * HOUR)).slice(0, 13));
}

/** Everything the dashboard shows, computed from indexed range queries (see dashboard.repository.ts). */
export function createDashboardService(deps: { readDb: Database; clock: Clock; notifications: NotificationService }) {
  async function load(period: Period, t: Messages) {
    const now = deps.clock();
    const since = toDbTime(new Date(now.getTime() - PERIODS[period]));
    const buckets = hourBuckets(now);
    const [orders, hourly, deliveries, queue] = await Promise.all([
      ordersByStatus(deps.readDb.kysely, since),
      callbacksByHour(deps.readDb, `${buckets[0]}:00:00.000`),
      deliveriesByStatus(deps.readDb.kysely, since),
      deps.notifications.deliveryMetrics(),
    ]);

    const byHour = new Map<string, Map<string, number>>();
    for (const row of hourly) {
      const hour = byHour.get(row.hour) ?? new Map<string, number>();
      hour.set(row.verdict, (hour.get(row.verdict) ?? 0) + row.n);
      byHour.set(row.hour, hour);
    }
    const seen = VERDICTS.filter((v) => hourly.some((r) => r.verdict === v && r.n > 0));
    const columns = buckets.map((hour) => ({
      key: hour,
      label: `${hour.slice(11, 13)}:00`,
      segments: VERDICTS.map((v) => ({ key: v, value: byHour.get(hour)?.get(v) ?? 0 })),
    }));
    const callbackTotals = Object.fromEntries(VERDICTS.map((v) => [v, hourly.filter((r) => r.verdict === v).reduce((s, r) => s + r.n, 0)]));
    const callbacksTotal = hourly.reduce((s, r) => s + r.n, 0);

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
        total: callbacksTotal,
        accepted: (callbackTotals.applied ?? 0) + (callbackTotals.duplicate ?? 0),
        verdicts: seen.map((v) => ({ key: v, label: label(t, `verdict_${v}`), total: callbackTotals[v] ?? 0 })),
        chart: stackedColumns(columns, { labelEvery: 3 }),
      },
      deliveries: {
        settled,
        successRate: settled === 0 ? null : deliveries.delivered / settled,
        backlog: queue.backlog,
        oldestDueAgeSeconds: queue.oldest_due_age_seconds,
        chart: horizontalBars([...SETTLED, ...QUEUED].map((s) => ({ key: s, label: label(t, `delivery_${s}`), value: deliveries[s] }))),
      },
    };
  }

  return { load };
}

export type DashboardService = ReturnType<typeof createDashboardService>;
export type Dashboard = Awaited<ReturnType<DashboardService['load']>>;
