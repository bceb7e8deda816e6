import type { Engine, Executor } from '../db/database.ts';
import { AppError, InvalidStateError, NotFoundError, ValidationError } from '../shared/errors.ts';
import { formatAmount, parseAmount } from '../shared/money.ts';
import { toDbTime } from '../shared/time.ts';
import { findOrderForUpdate, type OrderRow } from './order.repository.ts';
import { recordRefundEvent, type RefundEventPayload } from './refund-event.ts';
import {
  applyRefundToOrder,
  findRefundByNo,
  findRefundForUpdate,
  insertRefund,
  markRefundSettled,
  reserveRefundAmount,
  type RefundRow,
} from './refund.repository.ts';

export interface RefundRequest {
  orderNo: string;
  refundNo: string;
  /** Decimal text in the order's currency. */
  amount: string;
  reason: string | null;
  /** `api` or `console:<user>`. */
  requestedBy: string;
}

export type Reserved = { kind: 'created'; refund: RefundRow; order: OrderRow } | { kind: 'existing'; refund: RefundRow; order: OrderRow };

/**
 * Inside the caller's transaction: the order locked, a replay of the same refund_no answered with what exists,
 * then the amount reserved by a conditional update and the pending refund inserted. `gatewayOf` names the gateway
 * that executes it, or throws not_refundable. `firstCheckAt` is when the reconciler first looks, if the
 * request never reaches the gateway (a crash right after the commit).
 */
export async function reserveRefund(
  tx: Executor,
  engine: Engine,
  request: RefundRequest,
  gatewayOf: (order: OrderRow) => string,
  now: Date,
  firstCheckAt: Date,
): Promise<Reserved> {
  const order = await findOrderForUpdate(tx, request.orderNo, engine);
  if (!order) throw new NotFoundError(`Order ${request.orderNo} not found`);
  const parsed = parseAmount(request.amount, order.currency);
  const existing = await findRefundByNo(tx, request.refundNo);
  if (existing) {
    const same = existing.order_no === order.order_no && parsed.ok && parsed.minor === existing.amount_minor && existing.reason === request.reason;
    if (!same) throw new AppError('refund_exists', `Refund ${request.refundNo} already exists with different fields`);
    return { kind: 'existing', refund: existing, order };
  }
  if (!parsed.ok) throw new ValidationError('Invalid refund', [{ path: 'amount', message: parsed.message }]);
  if (order.status !== 'paid') throw new InvalidStateError(`Order ${order.order_no} is ${order.status}; only a paid order can be refunded`);
  const gateway = gatewayOf(order);
  const rest = order.amount_minor - order.refunded_minor - order.refund_reserved_minor;
  if (parsed.minor > rest || !(await reserveRefundAmount(tx, order.order_no, parsed.minor, now))) {
    throw new AppError(
      'refund_exceeds_paid',
      `Refund of ${request.amount} exceeds what can still be refunded of order ${order.order_no} (${formatAmount(Math.max(rest, 0), order.currency)} ${order.currency})`,
    );
  }
  const stamp = toDbTime(now);
  await insertRefund(tx, {
    refund_no: request.refundNo,
    order_no: order.order_no,
    gateway,
    amount_minor: parsed.minor,
    currency: order.currency,
    status: 'pending',
    reason: request.reason,
    gateway_refund_id: null,
    failure_reason: null,
    requested_by: request.requestedBy,
    check_at: toDbTime(firstCheckAt),
    last_answer: null,
    created_at: stamp,
    updated_at: stamp,
    completed_at: null,
  });
  const refund = (await findRefundByNo(tx, request.refundNo))!;
  return { kind: 'created', refund, order: { ...order, refund_reserved_minor: order.refund_reserved_minor + parsed.minor } };
}

export interface Settlement {
  status: 'succeeded' | 'failed';
  gatewayRefundId: string | null;
  failureReason: string | null;
  /** The gateway's answer or notification, kept with the refund as evidence. */
  answer: string | null;
}

export type Settled =
  | { kind: 'settled'; refund: RefundRow; order: OrderRow; event: RefundEventPayload | null }
  | { kind: 'already'; refund: RefundRow; order: OrderRow };

/**
 * Inside the caller's transaction: settles a pending refund exactly once — the order locked first (as when the
 * refund was created), the refund re-read under lock, then pending → succeeded|failed, the reservation moved or
 * released, the order's seq advanced (paid → refunded when nothing is left) and the merchant event written.
 */
export async function settleRefund(tx: Executor, engine: Engine, orderNo: string, refundNo: string, settlement: Settlement, now: Date): Promise<Settled> {
  const order = await findOrderForUpdate(tx, orderNo, engine);
  const refund = await findRefundForUpdate(tx, refundNo, engine);
  if (!order || !refund || refund.order_no !== order.order_no) throw new NotFoundError(`Refund ${refundNo} of order ${orderNo} not found`);
  if (refund.status !== 'pending') return { kind: 'already', refund, order };
  const failureReason = settlement.status === 'failed' ? (settlement.failureReason ?? 'refused by the gateway').slice(0, 256) : null;
  const marked = await markRefundSettled(tx, refundNo, { ...settlement, failureReason, now });
  if (!marked) throw new Error(`refund ${refundNo} changed under its lock`);
  const applied = await applyRefundToOrder(tx, order, refund.amount_minor, settlement.status === 'succeeded', now);
  const stamp = toDbTime(now);
  const updatedOrder: OrderRow = {
    ...order,
    status: applied.status,
    seq: order.seq + 1,
    refunded_minor: applied.refundedMinor,
    refund_reserved_minor: order.refund_reserved_minor - refund.amount_minor,
    updated_at: stamp,
  };
  const updatedRefund: RefundRow = {
    ...refund,
    status: settlement.status,
    gateway_refund_id: settlement.gatewayRefundId ?? refund.gateway_refund_id,
    failure_reason: failureReason,
    last_answer: settlement.answer ?? refund.last_answer,
    check_at: null,
    check_lease: null,
    completed_at: stamp,
    updated_at: stamp,
  };
  const event = await recordRefundEvent(tx, updatedOrder, updatedRefund, settlement.status, now);
  return { kind: 'settled', refund: updatedRefund, order: updatedOrder, event };
}
