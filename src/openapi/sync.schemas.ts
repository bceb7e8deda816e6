import { z } from 'zod';
import { GATEWAYS } from '../config.ts';
import type { QueryAnswer } from '../reconcile/gateway-client.ts';
import type { CheckResult } from '../reconcile/reconcile.service.ts';
import { doc } from './registry.ts';
import { orderJsonSchema } from './response.schemas.ts';

/** The answer of POST /api/orders/{order_no}/sync: the order after asking its gateway, and what the gateway said. */

// Only these reach a 200: an error is 502 gateway_error, no query API is 409 not_queryable, and a manual look never expires an order.
const SYNC_OUTCOMES = ['recovered', 'already_paid', 'unchanged', 'closed', 'mismatch'] as const satisfies readonly CheckResult['outcome'][];
const GATEWAY_STATES = ['paid', 'pending', 'failed', 'closed', 'not_found'] as const satisfies readonly QueryAnswer['state'][];

export const reconcileResultSchema = doc(
  z.object({
    gateway: doc(z.enum(GATEWAYS), { description: 'The gateway asked: the order’s payment_method (generic when it has none)' }),
    gateway_state: doc(z.enum(GATEWAY_STATES), {
      description:
        'What the gateway’s authenticated answer said: paid, pending (not paid yet), failed (an attempt failed), closed, not_found (no such payment)',
    }),
    outcome: doc(z.enum(SYNC_OUTCOMES), {
      description:
        'recovered: paid at the gateway and now here (payment-log entry of kind query, order.paid queued); already_paid: it was paid here already; ' +
        'unchanged: not paid, nothing changed; closed: the gateway closed the payment, so the order is closed; ' +
        'mismatch: the answer disagrees with the order (amount, another transaction or another merchant), flagged for an operator, nothing changed',
    }),
    message: doc(z.string(), { description: 'Human-readable detail of the outcome' }),
  }),
  { id: 'ReconcileResult', description: 'What asking the gateway came to' },
);

export const orderSyncSchema = doc(orderJsonSchema.extend({ reconcile: reconcileResultSchema }), {
  id: 'OrderSync',
  description: 'The order as it stands after asking its gateway, with what the gateway said',
});

export const ORDER_SYNC_EXAMPLE = {
  order_no: 'ORD-1001',
  amount: '99.90',
  currency: 'CNY',
  status: 'paid',
  payment_method: 'alipay',
  subject: 'Annual plan',
  transaction_id: '2026112522001400001234567890',
  callback_url: null,
  notify_url: 'https://shop.example/payments/notify',
  metadata: null,
  paid_at: '2026-11-25T14:40:11.204Z',
  refunded_amount: '0.00',
  expires_at: '2026-11-25T15:02:08.588Z',
  created_at: '2026-11-25T14:32:08.588Z',
  updated_at: '2026-11-25T14:40:11.204Z',
  reconcile: { gateway: 'alipay', gateway_state: 'paid', outcome: 'recovered', message: 'payment applied' },
};
