import type { Database, Executor } from '../db/database.ts';
import { AppError, InvalidStateError, NotFoundError, ValidationError } from '../shared/errors.ts';
import { toDbTime, type Clock } from '../shared/time.ts';
import { isUniqueViolation } from '../db/db-errors.ts';
import { recordOrderEvent } from './order-event.ts';
import {
  countRejectedCallbacksForOrder,
  listNotificationsForOrder,
  listPaymentLogsForOrder,
  listRejectedCallbacksForOrder,
} from './order-history.repository.ts';
import { generateOrderNo } from './order-number.ts';
import { canClose } from './order-transitions.ts';
import * as repo from './order.repository.ts';
import { encodeCursor, type CreateOrderInput, type ListOrdersQuery, type PageQuery } from './order.schema.ts';
import { toNotificationJson, toOrderJson, toPaymentJson, toRefundJson, toRejectedCallbackJson } from './order.view.ts';
import { listRefundsOfOrder } from './refund.repository.ts';

/** Rejected requests shown in the order detail (the newest); the rest are paged with listRejectedCallbacks. */
export const REJECTED_IN_DETAIL = 20;

/** Metadata is stored with sorted keys so identical replays compare equal whatever the key order. */
function canonicalMetadata(metadata: Record<string, unknown> | undefined): string | null {
  if (!metadata) return null;
  return JSON.stringify(Object.fromEntries(Object.entries(metadata).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))));
}

function sameOrder(
  existing: repo.OrderRow,
  // The expiry is not compared: a replay with the same expires_in names a later time, and is still the same order.
  wanted: Omit<
    repo.OrderRow,
    | 'id'
    | 'seq'
    | 'flagged'
    | 'created_at'
    | 'updated_at'
    | 'paid_at'
    | 'status'
    | 'transaction_id'
    | 'expires_at'
    | 'reconcile_at'
    | 'reconcile_step'
    | 'reconcile_lease'
    | 'refunded_minor'
    | 'refund_reserved_minor'
  >,
) {
  return (
    existing.amount_minor === wanted.amount_minor &&
    existing.currency === wanted.currency &&
    existing.payment_method === wanted.payment_method &&
    existing.subject === wanted.subject &&
    existing.callback_url === wanted.callback_url &&
    existing.notify_url === wanted.notify_url &&
    existing.metadata === wanted.metadata
  );
}

export interface OrderServiceDeps {
  db: Database;
  /** Replica for read-only queries (DATABASE_READ_URL); the primary when unset. */
  readDb: Database;
  clock: Clock;
  /** Called after a commit that queued a merchant notification (wakes the delivery loop). */
  onEventQueued?: () => void;
  /** ORDER_TTL: an order's lifetime when the request names none. */
  orderTtlMs?: number;
  /** RECONCILE_AFTER: when the reconciler first looks at a pending order. */
  reconcileAfterMs?: number;
}

/** When the order expires: expires_in or expires_at from the request, else ORDER_TTL from now. */
function expiryOf(input: CreateOrderInput, now: Date, ttlMs: number): Date {
  if (input.expires_in !== undefined) return new Date(now.getTime() + input.expires_in * 1000);
  if (input.expires_at === undefined) return new Date(now.getTime() + ttlMs);
  const at = new Date(input.expires_at);
  if (at.getTime() <= now.getTime()) throw new ValidationError('expires_at must be in the future', [{ path: 'expires_at', message: 'must be in the future' }]);
  return at;
}

export function createOrderService({ db, readDb, clock, onEventQueued, orderTtlMs = 30 * 60_000, reconcileAfterMs = 60_000 }: OrderServiceDeps) {
  async function create(input: CreateOrderInput): Promise<{ order: ReturnType<typeof toOrderJson>; created: boolean }> {
    const now = clock();
    const expiresAt = expiryOf(input, now, orderTtlMs);
    // The first look: a query after RECONCILE_AFTER, or the expiry when that comes first.
    const reconcileAt = new Date(Math.min(now.getTime() + reconcileAfterMs, expiresAt.getTime()));
    const fields = {
      order_no: input.order_no ?? generateOrderNo(now),
      amount_minor: input.amountMinor,
      currency: input.currency,
      payment_method: input.payment_method ?? null,
      subject: input.subject ?? null,
      callback_url: input.callback_url ?? null,
      notify_url: input.notify_url ?? null,
      metadata: canonicalMetadata(input.metadata),
    };
    const stamp = toDbTime(now);
    const row = {
      ...fields,
      status: 'pending',
      transaction_id: null,
      paid_at: null,
      created_at: stamp,
      updated_at: stamp,
      expires_at: toDbTime(expiresAt),
      reconcile_at: toDbTime(reconcileAt),
    };
    try {
      const id = await repo.insertOrder(db.kysely, row);
      // The answer is the row as written (the column defaults are seq 0, flagged 0): no second round trip to read it back.
      return {
        order: toOrderJson({ ...row, id, seq: 0, flagged: 0, reconcile_step: 0, reconcile_lease: null, refunded_minor: 0, refund_reserved_minor: 0 }),
        created: true,
      };
    } catch (err) {
      if (!isUniqueViolation(err)) throw err;
      if (!input.order_no) return create(input); // a generated number collided: draw another
      const existing = await repo.findOrderByNo(db.kysely, fields.order_no);
      if (existing && sameOrder(existing, fields)) return { order: toOrderJson(existing), created: false };
      throw new AppError('order_exists', `Order ${fields.order_no} already exists with different fields`);
    }
  }

  /**
   * The order with every verified payment-log entry (`payments`), the requests refused before verification
   * apart (`rejected_callbacks`: how many, and the newest), and its notifications.
   */
  async function getDetail(orderNo: string) {
    const row = await repo.findOrderByNo(readDb.kysely, orderNo);
    if (!row) throw new NotFoundError(`Order ${orderNo} not found`);
    const [payments, rejectedTotal, rejected, notifications, refunds] = await Promise.all([
      listPaymentLogsForOrder(readDb.kysely, orderNo),
      countRejectedCallbacksForOrder(readDb.kysely, orderNo),
      listRejectedCallbacksForOrder(readDb.kysely, orderNo, { limit: REJECTED_IN_DETAIL, offset: 0 }),
      listNotificationsForOrder(readDb.kysely, orderNo),
      listRefundsOfOrder(readDb.kysely, orderNo),
    ]);
    return {
      ...toOrderJson(row),
      payments: payments.map(toPaymentJson),
      refunds: refunds.map(toRefundJson),
      rejected_callbacks: { total: rejectedTotal, items: rejected.map(toRejectedCallbackJson) },
      notifications: notifications.map(toNotificationJson),
    };
  }

  /** One page of the requests refused before verification that claimed the order, newest first. */
  async function listRejectedCallbacks(orderNo: string, { page, limit }: PageQuery) {
    const row = await repo.findOrderByNo(readDb.kysely, orderNo);
    if (!row) throw new NotFoundError(`Order ${orderNo} not found`);
    const [items, total] = await Promise.all([
      listRejectedCallbacksForOrder(readDb.kysely, orderNo, { limit, offset: (page - 1) * limit }),
      countRejectedCallbacksForOrder(readDb.kysely, orderNo),
    ]);
    return { items: items.map(toRejectedCallbackJson), page, limit, total };
  }

  async function getStatus(orderNo: string) {
    const row = await repo.findOrderByNo(readDb.kysely, orderNo);
    if (!row) throw new NotFoundError(`Order ${orderNo} not found`);
    return { order_no: row.order_no, status: row.status };
  }

  async function list(query: ListOrdersQuery) {
    const filter = { status: query.status, from: query.from, to: query.to };
    const offset = (query.page - 1) * query.limit;
    // One extra row tells whether a next page exists without a second query.
    const [rows, total] = await Promise.all([
      repo.listOrders(readDb.kysely, filter, { limit: query.limit + 1, offset, after: query.cursor }),
      repo.countOrders(readDb.kysely, filter),
    ]);
    const items = rows.slice(0, query.limit);
    const last = items.at(-1);
    const nextCursor = rows.length > query.limit && last ? encodeCursor({ createdAt: last.created_at, id: last.id }) : null;
    return { items: items.map(toOrderJson), page: query.cursor ? null : query.page, limit: query.limit, total, next_cursor: nextCursor };
  }

  /**
   * pending|failed → closed with its `order.closed` event, in one transaction (compare-and-swap on seq);
   * `alsoInTransaction` records more in it (the console's audit row), so all of it commits or none.
   */
  async function close(orderNo: string, alsoInTransaction?: (trx: Executor, from: string) => Promise<void>) {
    const result = await db.kysely.transaction().execute(async (trx) => {
      const row = await repo.findOrderForUpdate(trx, orderNo, db.engine);
      if (!row) throw new NotFoundError(`Order ${orderNo} not found`);
      if (!canClose(row.status)) {
        throw new InvalidStateError(`Order ${orderNo} is ${row.status}; only pending or failed orders can be closed`);
      }
      const now = clock();
      const change = { orderNo, fromStatus: row.status, expectedSeq: row.seq, to: 'closed' as const, now };
      if (!(await repo.transitionOrder(trx, change))) throw new InvalidStateError(`Order ${orderNo} changed concurrently; retry`);
      const closed = (await repo.findOrderByNo(trx, orderNo))!;
      const event = await recordOrderEvent(trx, closed, 'closed', closed.seq, now);
      await alsoInTransaction?.(trx, row.status);
      return { order: toOrderJson(closed), queued: event !== null };
    });
    if (result.queued) onEventQueued?.();
    return result.order;
  }

  return { create, getDetail, listRejectedCallbacks, getStatus, list, close };
}

export type OrderService = ReturnType<typeof createOrderService>;
