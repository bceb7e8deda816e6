import type { OrderStatus } from './order.schema.ts';

/** What a gateway says happened to a payment, once its signature checked out. */
export type PaymentOutcome = 'paid' | 'failed' | 'closed';

/** Only an order not yet paid or closed can be closed (by the API, the console or a gateway). */
export function canClose(status: string): boolean {
  return status === 'pending' || status === 'failed';
}

/** What a verified payment result means for an order in its current state. */
export type Decision =
  | { kind: 'apply'; to: Exclude<OrderStatus, 'pending' | 'refunded'>; flagged: boolean; message: string }
  | { kind: 'duplicate'; message: string }
  | { kind: 'reject'; flagged: boolean; message: string };

export function decideTransition(
  order: { status: string; transaction_id: string | null },
  outcome: PaymentOutcome,
  transactionId: string,
  unordered = false,
): Decision {
  const sameTransaction = order.transaction_id === transactionId;
  switch (outcome) {
    case 'paid':
      if (order.status === 'pending' || order.status === 'failed') return { kind: 'apply', to: 'paid', flagged: false, message: 'payment applied' };
      if (order.status === 'closed') return { kind: 'apply', to: 'paid', flagged: true, message: 'payment applied to a closed order (late payment, flagged)' };
      return sameTransaction
        ? { kind: 'duplicate', message: 'payment already applied' }
        : { kind: 'reject', flagged: true, message: `order is already paid by transaction ${order.transaction_id ?? '?'}; possible double payment (flagged)` };
    case 'failed':
      if (order.status === 'pending') return { kind: 'apply', to: 'failed', flagged: false, message: 'payment failure recorded' };
      if (order.status === 'failed') return { kind: 'duplicate', message: 'payment failure already recorded' };
      // An earlier failed attempt of the payment that succeeded, delivered late: acknowledged, or the gateway retries it for days.
      if ((order.status === 'paid' || order.status === 'refunded') && sameTransaction && unordered)
        return { kind: 'duplicate', message: 'a late failure of the payment that paid this order (events arrive out of order); nothing changes' };
      return { kind: 'reject', flagged: false, message: `order is ${order.status}; a failure cannot change it` };
    case 'closed':
      if (canClose(order.status)) return { kind: 'apply', to: 'closed', flagged: false, message: 'order closed' };
      if (order.status === 'closed') return { kind: 'duplicate', message: 'order already closed' };
      // A gateway closes a paid trade after a full refund: acknowledged (or it retries for a day), nothing changes.
      return { kind: 'duplicate', message: `order is ${order.status}; a gateway close (e.g. after a refund) changes nothing` };
  }
}
