import type { Executor } from '../db/database.ts';
import { toDbTime } from '../shared/time.ts';
import type { OrderFilter } from '../orders/order.repository.ts';
import { listNotificationsForOrder } from '../orders/order-history.repository.ts';

/** Read models of the console's order pages: raw payloads included, which the public API leaves out. */

/**
 * The verified payment-log entries of an order with their review, every one of them: requests refused before
 * verification are read apart ({@link rejectedCallbacksOfOrder}), so they cannot push these out of view.
 */
export function paymentLogsOfOrder(db: Executor, orderNo: string) {
  return db
    .selectFrom('payment_logs as p')
    .leftJoin('payment_log_reviews as r', 'r.payment_log_id', 'p.id')
    .select([
      'p.id',
      'p.gateway',
      'p.kind',
      'p.transaction_id',
      'p.amount_minor',
      'p.currency',
      'p.status',
      'p.verdict',
      'p.flagged',
      'p.message',
      'p.payment_data',
      'p.callback_data',
      'p.remote_ip',
      'p.created_at',
      'r.reviewed_by',
      'r.note',
      'r.reviewed_at',
    ])
    .where('p.order_no', '=', orderNo)
    .where('p.unverified', '=', 0)
    .orderBy('p.created_at', 'desc')
    .orderBy('p.id', 'desc')
    .execute();
}

export type PaymentLogEntry = Awaited<ReturnType<typeof paymentLogsOfOrder>>[number];

/** One page of the requests refused before verification that claimed the order, newest first, with their excerpt. */
export function rejectedCallbacksOfOrder(db: Executor, orderNo: string, limit: number, offset: number) {
  return db
    .selectFrom('payment_logs')
    .select(['id', 'gateway', 'kind', 'verdict', 'message', 'remote_ip', 'callback_data', 'callback_bytes', 'callback_sha256', 'created_at'])
    .where('order_no', '=', orderNo)
    .where('unverified', '=', 1)
    .orderBy('created_at', 'desc')
    .orderBy('id', 'desc')
    .limit(limit)
    .offset(offset)
    .execute();
}

/** The order's outbox events (with payload) and every delivery attempt of each: the API's own query. */
export const eventsOfOrder = (db: Executor, orderNo: string) => listNotificationsForOrder(db, orderNo);

export type EventEntry = Awaited<ReturnType<typeof eventsOfOrder>>[number];

/**
 * Order-number prefix search: the range [prefix, prefix + '~') on the unique index. Order numbers are
 * [A-Za-z0-9_-] and '~' sorts after all of them in the binary collations both engines use, so the range is
 * exactly "starts with" — with no LIKE wildcards (`_` is a legal order-number character) to escape.
 */
function byPrefix(db: Executor, prefix: string, filter: OrderFilter) {
  let query = db.selectFrom('orders').where('order_no', '>=', prefix).where('order_no', '<', `${prefix}~`);
  if (filter.status) query = query.where('status', '=', filter.status);
  if (filter.from) query = query.where('created_at', '>=', toDbTime(filter.from));
  if (filter.to) query = query.where('created_at', '<=', toDbTime(filter.to));
  return query;
}

/** Matches in order-number order, newest first for generated (time-sortable) numbers. */
export function searchOrders(db: Executor, prefix: string, filter: OrderFilter, limit: number, offset: number) {
  return byPrefix(db, prefix, filter).selectAll().orderBy('order_no', 'desc').limit(limit).offset(offset).execute();
}

export async function countSearch(db: Executor, prefix: string, filter: OrderFilter): Promise<number> {
  const row = await byPrefix(db, prefix, filter)
    .select((eb) => eb.fn.countAll().as('n'))
    .executeTakeFirst();
  return Number(row?.n ?? 0);
}
