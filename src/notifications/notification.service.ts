import type { Database, Executor } from '../db/database.ts';
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

export interface Resent {
  order_no: string;
  event_id: string;
  status: string;
}

export function createNotificationService({ db, clock, metrics, onEventQueued }: NotificationServiceDeps) {
  /**
   * A fresh delivery of the order's latest event, whatever became of the previous one (A4 resend);
   * `alsoInTransaction` records more with it (the console's audit row), so both commit or neither.
   */
  async function resend(orderNo: string, alsoInTransaction?: (trx: Executor, result: Resent) => Promise<void>): Promise<Resent> {
    if (!(await findOrderByNo(db.kysely, orderNo))) throw new NotFoundError(`Order ${orderNo} not found`);
    const result = await db.kysely.transaction().execute(async (trx) => {
      const queued = await requeueLatestEvent(trx, orderNo, clock());
      if (!queued) throw new InvalidStateError(`Order ${orderNo} has no notification to resend (no state change yet, or no notify_url)`);
      const resent = { order_no: orderNo, event_id: queued.eventId, status: queued.status };
      await alsoInTransaction?.(trx, resent);
      return resent;
    });
    onEventQueued?.();
    return result;
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
