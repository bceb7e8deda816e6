import { z } from 'zod';
import { createOrderSchema, listOrdersSchema, orderNoSchema, pageSchema } from '../orders/order.schema.ts';
import { querySchema } from '../orders/query-order.routes.ts';
import { doc } from './registry.ts';

/**
 * The request side is the very zod schemas the routes parse with; here they only gain descriptions and
 * examples (in the documentation registry), and the request bodies become named components.
 */

doc(orderNoSchema, { description: 'Merchant order number: 1-64 characters of A-Z, a-z, 0-9, _ or -', examples: ['ORD-1001'] });

const order = createOrderSchema.in.shape;
doc(order.order_no, { description: 'Your order number; when absent a unique, time-sortable number (≤ 32 characters) is generated' });
doc(order.amount, {
  description: "Positive plain decimal with at most the currency's minor-unit digits (CNY 2, JPY 0, KWD 3); send it as a string. No exponent, no sign",
  examples: ['99.90'],
});
doc(order.currency, { description: 'ISO 4217 code; unknown codes are refused', examples: ['CNY', 'USD', 'JPY'] });
doc(order.payment_method, { description: 'The gateway the shopper is expected to pay with' });
doc(order.subject, { description: 'What is being paid for', examples: ['Annual plan'] });
doc(order.callback_url, { description: "Absolute http(s) URL the shopper's browser returns to (gets signed order_no, status, amount, …)", format: 'uri' });
doc(order.notify_url, { description: 'Absolute http(s) URL that receives signed merchant notifications', format: 'uri' });
doc(order.expires_in, {
  description:
    'Seconds from now (60-604800) until a still pending order is closed (after asking its gateway); without expires_in or expires_at, ORDER_TTL (default 30m)',
  examples: [900],
});
doc(order.expires_at, {
  description: 'When a still pending order is closed: an ISO-8601 time with Z or an offset, in the future; give this or expires_in, not both',
  examples: ['2026-11-25T15:02:08Z'],
});
doc(order.metadata, { description: 'JSON bodies only: a flat object, ≤ 50 keys of [A-Za-z0-9_.-]{1,64}, values strings (≤ 1024), numbers, booleans or null' });

doc(createOrderSchema, {
  id: 'CreateOrderRequest',
  description: 'A new order. The same order_no again with identical fields answers 200 with the existing order; with different fields 409 order_exists',
  examples: [
    {
      order_no: 'ORD-1001',
      amount: '99.90',
      currency: 'CNY',
      payment_method: 'generic',
      subject: 'Annual plan',
      notify_url: 'https://shop.example/payments/notify',
      metadata: { customer_id: 'c-42' },
    },
  ],
});
/** The form variant: the same fields without metadata (nested values need JSON). */
export const createOrderFormSchema = doc(createOrderSchema.in.omit({ metadata: true }), {
  id: 'CreateOrderForm',
  description: 'The same fields as a form (application/x-www-form-urlencoded); metadata is accepted in JSON bodies only',
});

const list = listOrdersSchema.shape;
doc(list.status, { description: 'Only orders in this status' });
doc(list.from, {
  description: 'created_at ≥ this: unix seconds, a date (2026-11-25) or an ISO-8601 time (UTC unless it carries an offset); from 1970-01-01 to 9999-12-31 UTC',
  examples: ['2026-11-25'],
});
doc(list.to, {
  description:
    'created_at ≤ this: unix seconds, a date (the end of that day, UTC) or an ISO-8601 time; from 1970-01-01 to 9999-12-31 UTC and not earlier than from',
  examples: ['2026-11-30T23:59:59Z'],
});
doc(list.page, { description: '1-based page number (default 1)', examples: ['1'] });
doc(list.limit, { description: 'Page size, 1-100 (default 20)', examples: ['20'] });
doc(list.cursor, { description: 'The next_cursor of the previous page (keyset pagination, cheap at any depth)' });

for (const option of querySchema.options) {
  doc(option.shape.action, { description: 'status: the order status; detail: the order with its history; list: a page of orders' });
}

export { createOrderSchema, listOrdersSchema, orderNoSchema, pageSchema, querySchema };

/**
 * The generic gateway's parameters. The adapter checks the signature over the raw parameters
 * before it parses any field, so its own schema is internal; this one mirrors the contract for readers.
 */
const printable = (max: number) => z.string().regex(new RegExp(`^[\\x21-\\x7e]{1,${max}}$`));
export const genericNotifySchema = doc(
  z.object({
    order_no: orderNoSchema,
    transaction_id: doc(printable(128), { description: "The gateway's transaction id (1-128 printable ASCII characters)" }),
    amount: doc(z.string().regex(/^\d{1,18}(\.\d{1,18})?$/), { description: 'Decimal string; must equal the order amount', examples: ['99.90'] }),
    currency: doc(
      z
        .string()
        .regex(/^[A-Z]{3}$/)
        .optional(),
      { description: "When present, must equal the order's currency" },
    ),
    status: doc(z.enum(['success', 'failed']), { description: 'success → paid, failed → failed' }),
    timestamp: doc(
      z
        .string()
        .regex(/^\d{1,12}$/)
        .optional(),
      { description: 'Unix seconds; when present it must be within ±300 s of now' },
    ),
    nonce: doc(printable(128).optional(), { description: 'When present, never accepted twice' }),
    sign_type: doc(z.enum(['MD5', 'HMAC-SHA256']).default('MD5'), { description: 'Signature algorithm' }),
    sign: doc(z.string(), {
      description:
        'Every other non-empty parameter sorted by key (byte order), joined as k=v with &, then &key=<GATEWAY_SECRET> appended: ' +
        'MD5 → upper(hex(md5(S))); HMAC-SHA256 → upper(hex(hmac_sha256(GATEWAY_SECRET, S))). Compared in constant time',
    }),
  }),
  {
    id: 'GenericNotifyParams',
    description: 'Parameters of the generic gateway (form or flat JSON), signed with GATEWAY_SECRET',
    examples: [
      {
        order_no: 'ORD-1001',
        transaction_id: 'T20261125001',
        amount: '99.90',
        currency: 'CNY',
        status: 'success',
        timestamp: '1795617128',
        nonce: 'n-7f3a',
        sign: '3C2B…',
      },
    ],
  },
);

export const notifyResultSchema = doc(z.object({ order_no: orderNoSchema, status: z.string() }), {
  id: 'NotifyResult',
  description: 'The order’s status after the notification',
});
