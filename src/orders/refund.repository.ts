import { sql, type Insertable, type Selectable } from 'kysely';
import type { Engine, Executor } from '../db/database.ts';
import type { RefundsTable } from '../db/schema.ts';
import { toDbTime } from '../shared/time.ts';

export type RefundRow = Selectable<RefundsTable>;
export type RefundStatus = 'pending' | 'succeeded' | 'failed';

export async function insertRefund(db: Executor, row: Insertable<RefundsTable>): Promise<void> {
  await db.insertInto('refunds').values(row).execute();
}

export function findRefundByNo(db: Executor, refundNo: string): Promise<RefundRow | undefined> {
  return db.selectFrom('refunds').selectAll().where('refund_no', '=', refundNo).executeTakeFirst();
}

/** The locking read (MySQL: the latest committed row, held to the end of the transaction); SQLite has one writer anyway. */
export function findRefundForUpdate(db: Executor, refundNo: string, engine: Engine): Promise<RefundRow | undefined> {
  const query = db.selectFrom('refunds').selectAll().where('refund_no', '=', refundNo);
  return (engine === 'mysql' ? query.forUpdate() : query).executeTakeFirst();
}

/** A refund known only by the gateway's own id (a notification that does not carry ours). */
export function findRefundByGatewayId(db: Executor, gateway: string, gatewayRefundId: string): Promise<RefundRow | undefined> {
  return db.selectFrom('refunds').selectAll().where('gateway', '=', gateway).where('gateway_refund_id', '=', gatewayRefundId).executeTakeFirst();
}

/** An order's refunds, newest first. */
export function listRefundsOfOrder(db: Executor, orderNo: string): Promise<RefundRow[]> {
  return db.selectFrom('refunds').selectAll().where('order_no', '=', orderNo).orderBy('created_at', 'desc').orderBy('id', 'desc').execute();
}

/**
 * Holds `amountMinor` of a paid order for a new pending refund, only while paid − refunded − reserved covers it:
 * the condition is in the update itself, so no interleaving of requests can reserve more than was paid.
 */
export async function reserveRefundAmount(db: Executor, orderNo: string, amountMinor: number, now: Date): Promise<boolean> {
  const result = await db
    .updateTable('orders')
    .set((eb) => ({ refund_reserved_minor: eb('refund_reserved_minor', '+', amountMinor), updated_at: toDbTime(now) }))
    .where('order_no', '=', orderNo)
    .where('status', '=', 'paid')
    .where(sql<number>`amount_minor - refunded_minor - refund_reserved_minor`, '>=', amountMinor)
    .executeTakeFirst();
  return Number(result.numUpdatedRows) === 1;
}

/** pending → succeeded|failed, once: false when it was settled already. */
export async function markRefundSettled(
  db: Executor,
  refundNo: string,
  change: { status: 'succeeded' | 'failed'; gatewayRefundId: string | null; failureReason: string | null; answer: string | null; now: Date },
): Promise<boolean> {
  const now = toDbTime(change.now);
  const result = await db
    .updateTable('refunds')
    .set((eb) => ({
      status: change.status,
      gateway_refund_id: eb.fn.coalesce(eb.val(change.gatewayRefundId), eb.ref('gateway_refund_id')),
      failure_reason: change.failureReason,
      last_answer: eb.fn.coalesce(eb.val(change.answer), eb.ref('last_answer')),
      check_at: null,
      check_lease: null,
      completed_at: now,
      updated_at: now,
    }))
    .where('refund_no', '=', refundNo)
    .where('status', '=', 'pending')
    .executeTakeFirst();
  return Number(result.numUpdatedRows) === 1;
}

/**
 * Moves a settled refund's amount out of the reservation (into refunded when it succeeded) and advances the
 * order's event seq; a paid order whose whole amount is refunded becomes `refunded`. Compare-and-swap on seq.
 */
export async function applyRefundToOrder(
  db: Executor,
  order: { order_no: string; seq: number; status: string; amount_minor: number; refunded_minor: number },
  amountMinor: number,
  succeeded: boolean,
  now: Date,
): Promise<{ status: string; refundedMinor: number }> {
  const refundedMinor = order.refunded_minor + (succeeded ? amountMinor : 0);
  const status = order.status === 'paid' && refundedMinor >= order.amount_minor ? 'refunded' : order.status;
  const result = await db
    .updateTable('orders')
    .set((eb) => ({
      refund_reserved_minor: eb('refund_reserved_minor', '-', amountMinor),
      refunded_minor: refundedMinor,
      status,
      seq: order.seq + 1,
      updated_at: toDbTime(now),
    }))
    .where('order_no', '=', order.order_no)
    .where('seq', '=', order.seq)
    .executeTakeFirst();
  if (Number(result.numUpdatedRows) !== 1) throw new Error(`order ${order.order_no} changed under its lock while settling a refund`);
  return { status, refundedMinor };
}

/** A gateway answer that settled nothing yet: its id for the refund (when it named one) and the answer as evidence. */
export async function recordRefundAnswer(db: Executor, refundNo: string, gatewayRefundId: string | null, answer: string, now: Date): Promise<void> {
  await db
    .updateTable('refunds')
    .set((eb) => ({
      gateway_refund_id: eb.fn.coalesce(eb.val(gatewayRefundId), eb.ref('gateway_refund_id')),
      last_answer: answer,
      updated_at: toDbTime(now),
    }))
    .where('refund_no', '=', refundNo)
    // A late answer must not overwrite the evidence of the settlement (a notification may have come first).
    .where('status', '=', 'pending')
    .execute();
}
