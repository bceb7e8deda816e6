import { z } from 'zod';
import { GATEWAYS } from '../config.ts';
import { ORDER_NO_PATTERN } from '../orders/order-number.ts';
import { orderNoSchema } from '../orders/order.schema.ts';
import { createRefundSchema, refundNoParams } from '../refunds/refund.schema.ts';
import { currencyCode, decimal, nullableTime, time } from './primitives.ts';
import { doc } from './registry.ts';
import { genericNotifySchema } from './request.schemas.ts';

/** Refunds in the document: the request the route parses, the refund it answers, and the generic gateway's refund notification. */

export const refundNoSchema = refundNoParams.shape.refund_no;
doc(refundNoSchema, { description: 'Refund number: 1-64 characters of A-Z, a-z, 0-9, _ or -', examples: ['RF-1001'] });

const refund = createRefundSchema.shape;
doc(refund.reason, {
  description: 'Why the money goes back (at most 256 characters); passed to the gateway where it takes one',
  examples: ['Damaged on arrival'],
});
doc(refund.refund_no, {
  description:
    'Your refund number (as order numbers): send it to retry safely. The same refund_no with identical fields answers 200 with the refund; with other fields 409 refund_exists. When absent, one is generated (R followed by digits)',
  examples: ['RF-1001'],
});
doc(createRefundSchema, {
  id: 'CreateRefundRequest',
  description:
    "A refund of (part of) a paid order, in the order's currency: amount at most the refundable rest (paid − refunded − pending refunds), else 409 refund_exceeds_paid",
  examples: [{ amount: '30.00', reason: 'Damaged on arrival', refund_no: 'RF-1001' }],
});

export const REFUND_EXAMPLE = {
  refund_no: 'RF-1001',
  order_no: 'ORD-1001',
  amount: '30.00',
  currency: 'CNY',
  status: 'succeeded',
  reason: 'Damaged on arrival',
  gateway: 'wechatpay',
  gateway_refund_id: '50300908092018010601773434827',
  failure_reason: null,
  created_at: '2026-11-26T09:12:30.118Z',
  completed_at: '2026-11-26T09:12:31.406Z',
};

export const refundJsonSchema = doc(
  z.object({
    refund_no: refundNoSchema,
    order_no: orderNoSchema,
    amount: decimal,
    currency: currencyCode,
    status: doc(z.enum(['pending', 'succeeded', 'failed']), {
      description:
        'pending: sent (or being sent) to the gateway, its amount reserved; succeeded: the money went back; failed: the gateway refused it, the reservation released. A timeout or gateway error never fails a refund',
    }),
    reason: z.string().nullable(),
    gateway: doc(z.enum(GATEWAYS), { description: 'The gateway that executes it: the order’s payment_method (generic when it has none)' }),
    gateway_refund_id: doc(z.string().nullable(), {
      description: "The gateway's own refund id once it has given one (WeChat Pay refund_id, Stripe re_…); null at Alipay and the generic gateway",
    }),
    failure_reason: doc(z.string().nullable(), {
      description: 'Why the gateway refused it (its code and message, or the first 200 characters of a generic refusal)',
    }),
    created_at: time,
    completed_at: doc(nullableTime, { description: 'When it became succeeded or failed; null while pending' }),
  }),
  { id: 'Refund', description: 'A refund of an order', examples: [REFUND_EXAMPLE] },
);

export const refundListSchema = doc(z.array(refundJsonSchema), { id: 'RefundList', description: 'The refunds of an order, newest first' });

/** The generic gateway's refund notification at /notify, mirrored for readers (the adapter checks the signature before any field). */
const payment = genericNotifySchema.shape;
export const genericRefundNotifySchema = doc(
  z.object({
    notify_type: doc(z.literal('refund'), { description: 'Marks a refund notification (a payment notification has none, or notify_type=payment)' }),
    order_no: orderNoSchema,
    refund_no: doc(z.string().regex(ORDER_NO_PATTERN), { description: 'The refund_no the service sent in its refund request' }),
    refund_amount: doc(z.string().regex(/^\d{1,18}(\.\d{1,18})?$/), { description: "Decimal string; must equal the refund's amount", examples: ['30.00'] }),
    currency: payment.currency,
    status: doc(z.enum(['refund_success', 'refund_failed']), { description: 'refund_success → succeeded; refund_failed → failed (the reservation released)' }),
    timestamp: payment.timestamp,
    nonce: payment.nonce,
    sign_type: payment.sign_type,
    sign: payment.sign,
  }),
  {
    id: 'GenericRefundNotifyParams',
    description: 'A refund notification of the generic gateway (form or flat JSON), signed with GATEWAY_SECRET like a payment notification',
    examples: [
      {
        notify_type: 'refund',
        order_no: 'ORD-1001',
        refund_no: 'RF-1001',
        refund_amount: '30.00',
        currency: 'CNY',
        status: 'refund_success',
        timestamp: '1795690350',
        nonce: 'n-91c2',
        sign_type: 'HMAC-SHA256',
        sign: '9F1E…',
      },
    ],
  },
);

export { createRefundSchema };
