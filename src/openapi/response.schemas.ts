import { z } from 'zod';
import { GATEWAYS } from '../config.ts';
import { DELIVERY_OUTCOMES } from '../notifications/delivery.metrics.ts';
import { ORDER_STATUSES, PAYMENT_METHODS, orderNoSchema } from '../orders/order.schema.ts';
import { ERROR_STATUS, type ErrorCode } from '../shared/errors.ts';
import { currencyCode, decimal, nullableTime, time } from './primitives.ts';
import { refundJsonSchema } from './refund.schemas.ts';
import { doc } from './registry.ts';

/** Response shapes of the JSON API, as zod schemas so the document is generated, not written. */

export const orderJsonSchema = doc(
  z.object({
    order_no: orderNoSchema,
    amount: decimal,
    currency: currencyCode,
    status: doc(z.enum(ORDER_STATUSES), {
      description:
        'pending → paid | failed | closed; failed → paid | closed; closed → paid (late money, flagged); paid → refunded once the whole amount is refunded ' +
        '(a partial refund keeps paid, with refunded_amount > 0); refunded is final',
    }),
    payment_method: z.enum(PAYMENT_METHODS).nullable(),
    subject: z.string().nullable(),
    transaction_id: doc(z.string().nullable(), { description: "The gateway's transaction id once paid" }),
    callback_url: z.string().nullable(),
    notify_url: z.string().nullable(),
    metadata: z.record(z.string(), z.union([z.string(), z.number(), z.boolean(), z.null()])).nullable(),
    paid_at: nullableTime,
    refunded_amount: doc(z.string().regex(/^\d+(\.\d+)?$/), {
      description: 'What succeeded refunds have paid back, in the order\'s currency and digits ("0.00" when none); pending refunds are not counted',
      examples: ['0.00'],
    }),
    expires_at: doc(nullableTime, {
      description:
        'When a still pending order is closed (after asking its gateway, which may find it paid); null only for orders created before expiry existed',
    }),
    created_at: time,
    updated_at: time,
  }),
  {
    id: 'Order',
    description: 'An order',
    examples: [
      {
        order_no: 'ORD-1001',
        amount: '99.90',
        currency: 'CNY',
        status: 'pending',
        payment_method: 'generic',
        subject: 'Annual plan',
        transaction_id: null,
        callback_url: 'https://shop.example/return',
        notify_url: 'https://shop.example/payments/notify',
        metadata: { customer_id: 'c-42' },
        paid_at: null,
        refunded_amount: '0.00',
        expires_at: '2026-11-25T15:02:08.588Z',
        created_at: '2026-11-25T14:32:08.588Z',
        updated_at: '2026-11-25T14:32:08.588Z',
      },
    ],
  },
);

export const paymentJsonSchema = doc(
  z.object({
    id: z.number().int(),
    gateway: z.enum(GATEWAYS),
    kind: doc(z.enum(['notify', 'return', 'query']), {
      description: 'notify: server-to-server; return: the shopper’s browser; query: the gateway’s answer when the service asked it (reconciler or sync)',
    }),
    source: doc(z.enum(['callback', 'query']), {
      description: 'callback: the gateway told the service (notify or return); query: the service asked the gateway (a lost callback found)',
    }),
    transaction_id: z.string().nullable(),
    amount: decimal.nullable(),
    currency: currencyCode.nullable(),
    status: doc(z.string().nullable(), {
      description: 'What the gateway reported: a payment outcome, or for a refund refund_succeeded, refund_failed or refund_pending',
    }),
    verdict: doc(z.string(), {
      description:
        'applied, duplicate, ignored, replayed (a nonce seen before), amount_mismatch, unknown_order, unknown_refund (names no refund of this service) or invalid_state',
    }),
    flagged: doc(z.boolean(), { description: 'Needs an operator’s attention (e.g. late payment on a closed order)' }),
    message: z.string().nullable(),
    remote_ip: z.string().nullable(),
    created_at: time,
  }),
  { id: 'PaymentLogEntry', description: 'A verified gateway callback, or a gateway’s answer to a query, as recorded in payment_logs' },
);

export const rejectedCallbackJsonSchema = doc(
  z.object({
    id: z.number().int(),
    gateway: z.enum(GATEWAYS),
    kind: z.enum(['notify', 'return']),
    verdict: doc(z.string(), { description: 'forbidden (address not allowed), bad_signature, malformed or replayed (timestamp out of the window)' }),
    message: z.string().nullable(),
    remote_ip: z.string().nullable(),
    callback_bytes: doc(z.number().int().nullable(), {
      description: 'Size in bytes of the request as received (the service keeps at most its first 4 KiB); null for entries stored before sizes were recorded',
    }),
    callback_sha256: doc(
      z
        .string()
        .regex(/^[0-9a-f]{64}$/)
        .nullable(),
      { description: 'SHA-256 (hex) of the request as received' },
    ),
    created_at: time,
  }),
  {
    id: 'RejectedCallback',
    description: 'A request to a callback route refused before verification (anyone can send these), filed under the order number it claimed',
  },
);

export const rejectedCallbackListSchema = doc(
  z.object({
    items: z.array(rejectedCallbackJsonSchema),
    page: z.number().int(),
    limit: z.number().int(),
    total: doc(z.number().int(), { description: 'Every rejected request filed under the order' }),
  }),
  { id: 'RejectedCallbackList', description: 'One page of an order’s rejected requests, newest first' },
);

export const attemptJsonSchema = doc(
  z.object({
    attempt_no: z.number().int(),
    started_at: time,
    duration_ms: z.number().int(),
    status_code: z.number().int().nullable(),
    error: z.string().nullable(),
    response_excerpt: z.string().nullable(),
    private_target: doc(z.boolean(), {
      description:
        'The attempt went to a private, loopback, link-local or other non-public address (possible only with NOTIFY_ALLOW_PRIVATE_NETWORKS=true): its response_excerpt may come from an internal service',
    }),
  }),
  { id: 'DeliveryAttempt', description: 'One POST to the merchant’s notify_url' },
);

export const notificationJsonSchema = doc(
  z.object({
    event_id: z.string(),
    type: doc(z.enum(['order.paid', 'order.failed', 'order.closed', 'refund.succeeded', 'refund.failed']), {
      description: 'refund.* events carry refund_no, refund_amount and refunded_amount besides the order fields',
    }),
    seq: z.number().int(),
    url: z.string(),
    status: doc(z.string(), { description: `pending, delivering, ${DELIVERY_OUTCOMES.filter((o) => o !== 'retry').join(', ')}` }),
    attempt_count: z.number().int(),
    next_attempt_at: nullableTime,
    delivered_at: nullableTime,
    last_error: z.string().nullable(),
    created_at: time,
    attempts: z.array(attemptJsonSchema),
  }),
  { id: 'Notification', description: 'A merchant notification event (transactional outbox) with its delivery attempts' },
);

export const orderDetailSchema = doc(
  orderJsonSchema.extend({
    payments: doc(z.array(paymentJsonSchema), { description: 'Every verified payment-log entry (refund notifications included), newest first' }),
    refunds: doc(z.array(refundJsonSchema), { description: 'The refunds of the order, newest first' }),
    rejected_callbacks: doc(z.object({ total: z.number().int(), items: z.array(rejectedCallbackJsonSchema) }), {
      description:
        'Requests claiming this order that were refused before verification: how many, and the newest 20 (page through all with GET /api/orders/{order_no}/rejected-callbacks)',
    }),
    notifications: doc(z.array(notificationJsonSchema), { description: 'Notification events, oldest first' }),
  }),
  { id: 'OrderDetail', description: 'An order with its payment log, refunds and notifications' },
);

export const orderListSchema = doc(
  z.object({
    items: z.array(orderJsonSchema),
    page: doc(z.number().int().nullable(), { description: 'null when paging with a cursor' }),
    limit: z.number().int(),
    total: doc(z.number().int(), { description: 'Every order matching the filters' }),
    next_cursor: doc(z.string().nullable(), { description: 'Pass as `cursor` for the next page; null on the last page' }),
  }),
  { id: 'OrderList', description: 'One page of orders, newest first' },
);

export const orderStatusSchema = doc(z.object({ order_no: orderNoSchema, status: z.enum(ORDER_STATUSES) }), { id: 'OrderStatus' });

export const resendResultSchema = doc(z.object({ order_no: orderNoSchema, event_id: z.string(), status: z.string() }), {
  id: 'ResendResult',
  description: 'The event queued for a fresh delivery',
});

export const healthSchema = doc(z.object({ status: z.literal('ok') }), { id: 'Health' });
export const readySchema = doc(z.object({ status: z.literal('ready'), database: z.enum(['sqlite', 'mysql']), migrations: z.literal('current') }), {
  id: 'Ready',
});

const fieldError = doc(z.object({ path: z.string(), message: z.string() }), { id: 'FieldError' });
export const ERROR_CODES = Object.keys(ERROR_STATUS) as ErrorCode[];

export const errorEnvelopeSchema = doc(
  z.object({
    success: z.literal(false),
    code: doc(z.enum(ERROR_CODES as [ErrorCode, ...ErrorCode[]]), { description: 'Stable snake_case code to branch on' }),
    message: doc(z.string(), { description: 'Human-readable explanation' }),
    errors: doc(z.array(fieldError).optional(), { description: 'Field problems of a validation_failed answer' }),
  }),
  {
    id: 'Error',
    description: 'Failure envelope',
    examples: [
      {
        success: false,
        code: 'validation_failed',
        message: 'Invalid order: amount CNY allows at most 2 decimal places',
        errors: [{ path: 'amount', message: 'CNY allows at most 2 decimal places' }],
      },
    ],
  },
);

/** `{"success": true, "data": …, "message": "…"}` around `data`, registered as component `<id>`. */
export function envelope<T extends z.ZodType>(id: string, data: T, example?: unknown) {
  return doc(z.object({ success: z.literal(true), data, message: z.string() }), {
    id,
    description: 'Success envelope',
    ...(example === undefined ? {} : { examples: [{ success: true, data: example, message: 'ok' }] }),
  });
}
