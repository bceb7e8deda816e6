import { randomBytes } from 'node:crypto';
import type { Executor } from '../db/database.ts';
import { formatAmount } from '../shared/money.ts';
import { toDbTime, toIsoTime } from '../shared/time.ts';
import { insertEvent, type NewEvent } from './order-event.repository.ts';

/** The event fields of the A7 body; timestamp, nonce and sign are added per delivery attempt. */
export interface OrderEventPayload {
  event_id: string;
  type: 'order.paid' | 'order.failed' | 'order.closed';
  order_no: string;
  transaction_id: string | null;
  amount: string;
  currency: string;
  status: string;
  paid_at: string | null;
  seq: number;
}

/** Event ids come from a pooled random buffer: one randomBytes call per 256 events instead of one each. */
const ID_BYTES = 16;
let idPool = Buffer.alloc(0);
let idOffset = 0;

export function newEventId(): string {
  if (idOffset + ID_BYTES > idPool.length) {
    idPool = randomBytes(ID_BYTES * 256);
    idOffset = 0;
  }
  idOffset += ID_BYTES;
  return `evt_${idPool.toString('hex', idOffset - ID_BYTES, idOffset)}`;
}

/** A7's body of an event `type` about an order as it now stands, with a fresh event id (every event kind starts from it). */
export function eventBody<T extends string>(
  order: { order_no: string; amount_minor: number; currency: string; transaction_id: string | null; paid_at: string | null; status: string },
  type: T,
  seq: number,
) {
  return {
    event_id: newEventId(),
    type,
    order_no: order.order_no,
    transaction_id: order.transaction_id,
    amount: formatAmount(order.amount_minor, order.currency),
    currency: order.currency,
    status: order.status,
    paid_at: toIsoTime(order.paid_at),
    seq,
  };
}

interface TransitionedOrder {
  order_no: string;
  amount_minor: number;
  currency: string;
  notify_url: string | null;
  transaction_id: string | null;
  paid_at: string | null;
}

/**
 * The event for an order that just moved to `status` with event number `seq`, and its outbox row (for
 * eventInsert/eventsInsert, in the transaction of the state change). Orders without a notify_url have
 * nobody to tell, so there is no event (the seq still advances on the order).
 */
export function orderEvent(order: TransitionedOrder, status: 'paid' | 'failed' | 'closed', seq: number, now: Date) {
  if (!order.notify_url) return null;
  const payload: OrderEventPayload = eventBody({ ...order, status }, `order.${status}`, seq);
  const row: NewEvent = {
    eventId: payload.event_id,
    orderNo: order.order_no,
    type: payload.type,
    seq,
    payload: JSON.stringify(payload),
    url: order.notify_url,
    now: toDbTime(now),
  };
  return { payload, row };
}

/** Records the event for an order that just moved to `status` (see orderEvent); null when it has no notify_url. */
export async function recordOrderEvent(
  db: Executor,
  order: TransitionedOrder,
  status: 'paid' | 'failed' | 'closed',
  seq: number,
  now: Date,
): Promise<OrderEventPayload | null> {
  const event = orderEvent(order, status, seq, now);
  if (!event) return null;
  await insertEvent(db, event.row);
  return event.payload;
}
