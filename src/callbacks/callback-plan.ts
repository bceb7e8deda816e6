import type { OrderRow, TransitionChange } from '../orders/order.repository.ts';
import { orderEvent } from '../orders/order-event.ts';
import { ERROR_STATUS } from '../shared/errors.ts';
import { parseAmount } from '../shared/money.ts';
import { toDbTime } from '../shared/time.ts';
import type { CallbackOutcome, PaymentResult, Rejection } from './gateways/gateway.ts';
import type { NewPaymentLog } from './payment-log.repository.ts';
import { decideTransition } from '../orders/order-transitions.ts';

/** The payment-log fields known before the order is read. */
export type LogBase = Omit<NewPaymentLog, 'verdict' | 'orderNo'>;

/** A verified callback waiting for its transaction. */
export interface VerifiedCallback {
  logBase: LogBase;
  result: PaymentResult;
  now: Date;
}

/** Gateways retry a notification for days; their event ids are remembered a good while longer. */
const EVENT_KEY_TTL_MS = 30 * 86_400_000;

/** The replay guard to record with the callback: the gateway's nonce, or its event id; none for some gateways. */
export function replayGuardOf({
  logBase,
  result,
  now,
}: {
  logBase: Pick<LogBase, 'gateway'>;
  result: Pick<PaymentResult, 'nonce' | 'eventKey'>;
  now: Date;
}): { scope: string; nonce: string; expiresAt: Date } | null {
  if (result.nonce) return { scope: result.nonce.scope, nonce: result.nonce.value, expiresAt: result.nonce.expiresAt };
  if (result.eventKey)
    return { scope: `${logBase.gateway}:event`, nonce: result.eventKey.slice(0, 128), expiresAt: new Date(now.getTime() + EVENT_KEY_TTL_MS) };
  return null;
}

export function rejected(rejection: Pick<Rejection, 'code' | 'message' | 'verdict'>, orderNo?: string, order?: OrderRow): CallbackOutcome {
  return { verdict: rejection.verdict, status: ERROR_STATUS[rejection.code], code: rejection.code, message: rejection.message, orderNo, order };
}

/** Amount in minor units of the order's currency, or null when it cannot equal the order amount. */
function amountMinor(result: PaymentResult, order: OrderRow): number | null {
  if (result.currency !== undefined && result.currency.toUpperCase() !== order.currency) return null;
  if (result.amount.kind === 'minor') return result.amount.value;
  const parsed = parseAmount(result.amount.value, order.currency);
  return parsed.ok ? parsed.minor : null;
}

export type Checked = { ok: true; order: OrderRow; log: LogBase } | { ok: false; entry: NewPaymentLog; outcome: CallbackOutcome };

/** The order must exist, and the amount and currency must equal it; both failures are recorded and flagged. */
export function checkOrder(logBase: LogBase, result: PaymentResult, order: OrderRow | undefined): Checked {
  if (!order) {
    const message = `Order ${result.orderNo} not found (recorded for operators)`;
    const entry: NewPaymentLog = { ...logBase, orderNo: result.orderNo, verdict: 'unknown_order', flagged: true, message };
    return { ok: false, entry, outcome: rejected({ verdict: 'unknown_order', code: 'not_found', message }, result.orderNo) };
  }
  const minor = amountMinor(result, order);
  if (minor === null || minor !== order.amount_minor) {
    const message = `Amount or currency does not match order ${order.order_no}; nothing changed`;
    const entry: NewPaymentLog = { ...logBase, amountMinor: minor, orderNo: order.order_no, verdict: 'amount_mismatch', flagged: true, message };
    return { ok: false, entry, outcome: rejected({ verdict: 'amount_mismatch', code: 'amount_mismatch', message }, order.order_no, order) };
  }
  return { ok: true, order, log: { ...logBase, amountMinor: minor, currency: order.currency } };
}

/**
 * What a callback does to the order it locked:
 * - `refuse`: the checks failed; nothing changes and the replay guard is not spent, only the entry is written;
 * - `record`: a duplicate or a refused transition; the guard is spent and the entry written;
 * - `apply`: additionally the compare-and-swap `change` and, when the order has a notify_url, its outbox `event`.
 */
export type Plan =
  | { kind: 'refuse'; entry: NewPaymentLog; outcome: CallbackOutcome }
  | { kind: 'record'; entry: NewPaymentLog; outcome: CallbackOutcome }
  | { kind: 'apply'; entry: NewPaymentLog; outcome: CallbackOutcome; change: TransitionChange; event: ReturnType<typeof orderEvent> };

/** Decides a verified callback against the locked order row. */
export function planCallback({ logBase, result, now }: VerifiedCallback, row: OrderRow | undefined): Plan {
  const checked = checkOrder(logBase, result, row);
  if (!checked.ok) return { kind: 'refuse', entry: checked.entry, outcome: checked.outcome };
  const { order, log } = checked;
  const transition = decideTransition(order, result.outcome, result.transactionId, result.unordered);
  // A repeat of what is already recorded (the sandbox's browser return after its notification) stays a duplicate.
  const decision =
    result.pendingOnly && order.status !== 'pending' && transition.kind !== 'duplicate'
      ? ({ kind: 'reject', flagged: false, message: `Order ${order.order_no} is ${order.status}; only a pending order can be paid or failed here` } as const)
      : transition;
  if (decision.kind !== 'apply') {
    const verdict = decision.kind === 'duplicate' ? 'duplicate' : 'invalid_state';
    const entry: NewPaymentLog = {
      ...log,
      orderNo: order.order_no,
      verdict,
      flagged: decision.kind === 'reject' && decision.flagged,
      message: decision.message,
    };
    const outcome: CallbackOutcome =
      decision.kind === 'duplicate'
        ? { verdict: 'duplicate', status: 200, message: decision.message, orderNo: order.order_no, orderStatus: order.status, order }
        : rejected({ verdict: 'invalid_state', code: 'invalid_state', message: decision.message }, order.order_no, order);
    return { kind: 'record', entry, outcome };
  }
  const change: TransitionChange = {
    orderNo: order.order_no,
    fromStatus: order.status,
    expectedSeq: order.seq,
    to: decision.to,
    transactionId: result.transactionId,
    flagged: decision.flagged,
    now,
  };
  const stamp = toDbTime(now);
  const updated: OrderRow = {
    ...order,
    status: decision.to,
    seq: order.seq + 1,
    transaction_id: result.transactionId,
    updated_at: stamp,
    paid_at: decision.to === 'paid' ? stamp : order.paid_at,
    flagged: decision.flagged ? 1 : order.flagged,
  };
  const entry: NewPaymentLog = { ...log, orderNo: order.order_no, verdict: 'applied', flagged: decision.flagged, message: decision.message };
  const outcome: CallbackOutcome = {
    verdict: 'applied',
    status: 200,
    message: decision.message,
    orderNo: updated.order_no,
    orderStatus: updated.status,
    order: updated,
  };
  return { kind: 'apply', entry, outcome, change, event: orderEvent(updated, decision.to, updated.seq, now) };
}
