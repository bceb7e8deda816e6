import type { Database } from '../db/database.ts';
import { findOrderByNo } from '../orders/order.repository.ts';
import { InvalidStateError, NotFoundError } from '../shared/errors.ts';
import { fromDbTime, type Clock } from '../shared/time.ts';
import type { DeliveryMetrics } from './delivery.metrics.ts';
import { backlogStats, requeueLatestEvent } from './delivery.repository.ts';

export interface NotificationServiceDeps {
  db: Database;
  clock: Clock;
  metrics?: DeliveryMetrics;
  onEventQueued?: () => void;
}

export function createNotificationService({ db, clock, metrics, onEventQueued }: NotificationServiceDeps) {
  /** A fresh delivery of the order's latest event, whatever became of the previous one (A4 resend). */
  async function resend(orderNo: string) {
    if (!(await findOrderByNo(db.kysely, orderNo))) throw new NotFoundError(`Order ${orderNo} not found`);
    const queued = await requeueLatestEvent(db.kysely, orderNo, clock());
    if (!queued) throw new InvalidStateError(`Order ${orderNo} has no notification to resend (no state change yet, or no notify_url)`);
    onEventQueued?.();
    return { order_no: orderNo, event_id: queued.eventId, status: queued.status };
  }

  /** Delivery figures for operators and /metrics: outcome counters, backlog, oldest due event age. */
  async function deliveryMetrics() {
    const now = clock();
    const { backlog, oldestDueAt } = await backlogStats(db.kysely, now);
    return {
      outcomes: metrics?.snapshot() ?? null,
      backlog,
      oldest_due_age_seconds: oldestDueAt ? Math.max(0, (now.getTime() - fromDbTime(oldestDueAt).getTime()) / 1000) : 0,
    };
  }

  return { resend, deliveryMetrics };
}

export type NotificationService = ReturnType<typeof createNotificationService>;
