import type { Executor } from '../db/database.ts';
import { formatAmount } from '../shared/money.ts';
import { toDbTime } from '../shared/time.ts';
import { insertEvent } from './order-event.repository.ts';
import { eventBody, type OrderEventPayload } from './order-event.ts';

/** A7's body plus the refund: `refunded_amount` is the order's refunded total after this one. */
export interface RefundEventPayload extends Omit<OrderEventPayload, 'type'> {
  type: 'refund.succeeded' | 'refund.failed';
  refund_no: string;
  refund_amount: string;
  refunded_amount: string;
}

interface RefundedOrder {
  order_no: string;
  amount_minor: number;
  currency: string;
  notify_url: string | null;
  transaction_id: string | null;
  paid_at: string | null;
}

/** Records the refund's merchant event with the order's next seq, in the transaction that settled it; null without a notify_url. */
export async function recordRefundEvent(
  db: Executor,
  order: RefundedOrder & { status: string; seq: number; refunded_minor: number },
  refund: { refund_no: string; amount_minor: number },
  outcome: 'succeeded' | 'failed',
  now: Date,
): Promise<RefundEventPayload | null> {
  if (!order.notify_url) return null;
  const payload: RefundEventPayload = {
    ...eventBody(order, `refund.${outcome}` as const, order.seq),
    refund_no: refund.refund_no,
    refund_amount: formatAmount(refund.amount_minor, order.currency),
    refunded_amount: formatAmount(order.refunded_minor, order.currency),
  };
  await insertEvent(db, {
    eventId: payload.event_id,
    orderNo: order.order_no,
    type: payload.type,
    seq: order.seq,
    payload: JSON.stringify(payload),
    url: order.notify_url,
    now: toDbTime(now),
  });
  return payload;
}
