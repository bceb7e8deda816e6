import type { Executor } from '../db/database.ts';

/** Payment-log entries of one order, newest first (the order detail's `payments`). */
export function listPaymentLogsForOrder(db: Executor, orderNo: string, limit = 200) {
  return db
    .selectFrom('payment_logs')
    .select(['id', 'gateway', 'kind', 'transaction_id', 'amount_minor', 'currency', 'status', 'verdict', 'flagged', 'message', 'remote_ip', 'created_at'])
    .where('order_no', '=', orderNo)
    .orderBy('created_at', 'desc')
    .orderBy('id', 'desc')
    .limit(limit)
    .execute();
}

export type PaymentLogSummary = Awaited<ReturnType<typeof listPaymentLogsForOrder>>[number];
