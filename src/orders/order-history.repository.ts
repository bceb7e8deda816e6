import type { Executor } from '../db/database.ts';

/*
 * The order detail's history, read across the tables its changes touched: verified payments and refused
 * claims (written by callbacks), events and their delivery attempts (delivered by notifications).
 * The writers stay with their features; this read model belongs to the order.
 */

const SUMMARY = [
  'id',
  'gateway',
  'kind',
  'transaction_id',
  'amount_minor',
  'currency',
  'status',
  'verdict',
  'flagged',
  'message',
  'remote_ip',
  'created_at',
] as const;

/**
 * The verified payment-log entries of one order, newest first (the order detail's `payments`), all of them:
 * only the gateway can add to these, so requests anyone can send never push them out of view.
 */
export function listPaymentLogsForOrder(db: Executor, orderNo: string) {
  return db
    .selectFrom('payment_logs')
    .select(SUMMARY)
    .where('order_no', '=', orderNo)
    .where('unverified', '=', 0)
    .orderBy('created_at', 'desc')
    .orderBy('id', 'desc')
    .execute();
}

export type PaymentLogSummary = Awaited<ReturnType<typeof listPaymentLogsForOrder>>[number];

/** One page of the requests refused before verification that claimed this order, newest first. */
export function listRejectedCallbacksForOrder(db: Executor, orderNo: string, page: { limit: number; offset: number }) {
  return db
    .selectFrom('payment_logs')
    .select(['id', 'gateway', 'kind', 'verdict', 'message', 'remote_ip', 'callback_bytes', 'callback_sha256', 'created_at'])
    .where('order_no', '=', orderNo)
    .where('unverified', '=', 1)
    .orderBy('created_at', 'desc')
    .orderBy('id', 'desc')
    .limit(page.limit)
    .offset(page.offset)
    .execute();
}

export type RejectedCallbackSummary = Awaited<ReturnType<typeof listRejectedCallbacksForOrder>>[number];

export async function countRejectedCallbacksForOrder(db: Executor, orderNo: string): Promise<number> {
  const row = await db
    .selectFrom('payment_logs')
    .select((eb) => eb.fn.countAll().as('n'))
    .where('order_no', '=', orderNo)
    .where('unverified', '=', 1)
    .executeTakeFirst();
  return Number(row?.n ?? 0);
}

/** Events of one order with their delivery attempts, oldest event first (the order detail's `notifications`). */
export async function listNotificationsForOrder(db: Executor, orderNo: string) {
  const events = await db
    .selectFrom('notifications')
    .select(['id', 'event_id', 'type', 'seq', 'payload', 'url', 'status', 'attempts', 'next_attempt_at', 'last_error', 'delivered_at', 'created_at'])
    .where('order_no', '=', orderNo)
    .orderBy('seq', 'asc')
    .execute();
  if (events.length === 0) return [];
  const attempts = await db
    .selectFrom('notification_attempts')
    .select(['notification_id', 'attempt_no', 'started_at', 'duration_ms', 'status_code', 'error', 'response_excerpt', 'private_target'])
    .where(
      'notification_id',
      'in',
      events.map((e) => e.id),
    )
    .orderBy('attempt_no', 'asc')
    .execute();
  return events.map((event) => ({ ...event, attemptRows: attempts.filter((a) => Number(a.notification_id) === Number(event.id)) }));
}

export type NotificationWithAttempts = Awaited<ReturnType<typeof listNotificationsForOrder>>[number];
