import type { z } from 'zod';
import { API_AUTH, errors, GUARDED, json, ok, orderNoParam, ref } from './path-helpers.ts';
import { jsonSchemaOf, type JsonSchema } from './registry.ts';
import { refundPaths } from './refund.paths.ts';
// Importing the request schemas registers CreateOrderRequest, CreateOrderForm and GenericNotifyParams.
import { listOrdersSchema, notifyResultSchema, pageSchema, querySchema } from './request.schemas.ts';
import {
  envelope,
  healthSchema,
  orderDetailSchema,
  orderJsonSchema,
  orderListSchema,
  orderStatusSchema,
  readySchema,
  rejectedCallbackListSchema,
  resendResultSchema,
} from './response.schemas.ts';
import { ORDER_SYNC_EXAMPLE, orderSyncSchema } from './sync.schemas.ts';

/** The operations of the JSON API; request parts come from the routes' own zod schemas. */

/** A zod object (or a union of objects) as query parameters: one per property, described where it is used. */
function queryParameters(schema: z.ZodType) {
  const root = jsonSchemaOf(schema);
  const branches = (root.oneOf ?? root.anyOf ?? [root]) as JsonSchema[];
  const names = [...new Set(branches.flatMap((b) => Object.keys((b.properties ?? {}) as object)))];
  return names.map((name) => {
    const having = branches.filter((b) => name in ((b.properties ?? {}) as object));
    const requiredIn = having.filter((b) => ((b.required ?? []) as string[]).includes(name));
    const values = having.map((b) => (b.properties as Record<string, JsonSchema>)[name]!);
    const consts = values.map((v) => v.const).filter((c) => c !== undefined);
    const { const: _const, ...first } = values[0]!;
    const param: JsonSchema = consts.length === values.length && consts.length > 1 ? { ...first, enum: consts } : values[0]!;
    const actions =
      branches.length > 1 && having.length < branches.length
        ? ` (action=${having.map((b) => (b.properties as Record<string, JsonSchema>).action?.const).join(', ')})`
        : '';
    const { description, examples, ...rest } = param;
    return {
      name,
      in: 'query',
      required: requiredIn.length === branches.length,
      ...(description || actions ? { description: `${(description as string | undefined) ?? ''}${actions}`.trim() } : {}),
      schema: rest,
      ...(Array.isArray(examples) && examples.length > 0 ? { example: examples[0] } : {}),
    };
  });
}

const notifyParams = { oneOf: [ref('GenericNotifyParams'), ref('GenericRefundNotifyParams')] };

envelope('OrderResponse', orderJsonSchema);
envelope('OrderDetailResponse', orderDetailSchema);
envelope('OrderListResponse', orderListSchema);
envelope('RejectedCallbackListResponse', rejectedCallbackListSchema);
envelope('OrderSyncResponse', orderSyncSchema, ORDER_SYNC_EXAMPLE);
envelope('OrderStatusResponse', orderStatusSchema, { order_no: 'ORD-1001', status: 'paid' });
envelope('ResendResponse', resendResultSchema, { order_no: 'ORD-1001', event_id: 'evt_d68b04457fc08be6cdc89816bd1db35d', status: 'pending' });
envelope('NotifyResponse', notifyResultSchema, { order_no: 'ORD-1001', status: 'paid' });
envelope('HealthResponse', healthSchema, { status: 'ok' });
envelope('ReadyResponse', readySchema, { status: 'ready', database: 'sqlite', migrations: 'current' });

export const paths = {
  '/api/orders': {
    post: {
      tags: ['Orders'],
      operationId: 'createOrder',
      summary: 'Create an order',
      security: API_AUTH,
      description: 'JSON or form. Idempotent per order_no: identical fields again → 200 with the existing order; different fields → 409 order_exists.',
      requestBody: {
        required: true,
        content: { 'application/json': { schema: ref('CreateOrderRequest') }, 'application/x-www-form-urlencoded': { schema: ref('CreateOrderForm') } },
      },
      responses: {
        ...ok(201, 'OrderResponse', 'Created'),
        ...ok(200, 'OrderResponse', 'Already exists with identical fields'),
        ...errors(400, ...GUARDED, 409, 413, 415, 503),
      },
    },
    get: {
      tags: ['Orders'],
      operationId: 'listOrders',
      summary: 'List, filter and paginate orders',
      security: API_AUTH,
      description: 'Newest first. Use `cursor` (the previous page’s next_cursor) for deep pages.',
      parameters: queryParameters(listOrdersSchema),
      responses: { ...ok(200, 'OrderListResponse', 'One page of orders'), ...errors(400, ...GUARDED, 503) },
    },
  },
  '/api/orders/{order_no}': {
    get: {
      tags: ['Orders'],
      operationId: 'getOrder',
      summary: 'One order with its payment log and notifications',
      security: API_AUTH,
      parameters: [orderNoParam],
      responses: { ...ok(200, 'OrderDetailResponse', 'The order'), ...errors(400, ...GUARDED, 404, 503) },
    },
  },
  '/api/orders/{order_no}/rejected-callbacks': {
    get: {
      tags: ['Orders'],
      operationId: 'listRejectedCallbacks',
      summary: 'Page through the rejected requests filed under an order',
      security: API_AUTH,
      description:
        'Requests to the callback routes that claimed this order but were refused before verification (address not allowed, bad signature, malformed, stale timestamp), newest first. The order detail lists only the newest 20 of them.',
      parameters: [orderNoParam, ...queryParameters(pageSchema)],
      responses: { ...ok(200, 'RejectedCallbackListResponse', 'One page of rejected requests'), ...errors(400, ...GUARDED, 404, 503) },
    },
  },
  '/api/orders/{order_no}/close': {
    post: {
      tags: ['Orders'],
      operationId: 'closeOrder',
      summary: 'Close an unpaid order',
      security: API_AUTH,
      description: 'pending | failed → closed (queues an order.closed notification when the order has a notify_url); any other status → 409 invalid_state.',
      parameters: [orderNoParam],
      responses: { ...ok(200, 'OrderResponse', 'The closed order'), ...errors(400, ...GUARDED, 404, 409, 503) },
    },
  },
  '/api/orders/{order_no}/sync': {
    post: {
      tags: ['Orders'],
      operationId: 'syncOrder',
      summary: "Ask the order's gateway now",
      security: API_AUTH,
      description:
        "Asks the order's gateway about its payment now, as the reconciler does on its schedule, and applies the answer: paid there → paid here " +
        '(the same transition as a callback, a payment-log entry of kind query and the order.paid notification); closed there → closed here. ' +
        "409 not_queryable when the order's gateway has no query API configured; 502 gateway_error when the gateway could not be asked " +
        '(timeout, network, HTTP error, a bad signature): the order did not change.',
      parameters: [orderNoParam],
      responses: { ...ok(200, 'OrderSyncResponse', 'The order after asking, with what the gateway said'), ...errors(400, ...GUARDED, 404, 409, 502, 503) },
    },
  },
  '/api/orders/{order_no}/notifications/resend': {
    post: {
      tags: ['Notifications'],
      operationId: 'resendNotification',
      summary: 'Queue a fresh delivery of the latest event',
      security: API_AUTH,
      description:
        "Delivers the order's latest merchant notification again, whatever became of the previous delivery. 409 invalid_state when the order has no notification.",
      parameters: [orderNoParam],
      responses: { ...ok(202, 'ResendResponse', 'Queued'), ...errors(400, ...GUARDED, 404, 409, 503) },
    },
  },
  ...refundPaths,
  '/query_order': {
    get: {
      tags: ['Heritage query API'],
      operationId: 'queryOrder',
      summary: 'Heritage query API (also /query_order.php)',
      security: API_AUTH,
      description:
        'action=status → {order_no, status}; action=detail → as GET /api/orders/{order_no}; action=list → as GET /api/orders, with start_time/end_time for from/to.',
      parameters: queryParameters(querySchema),
      responses: {
        200: {
          description: 'Depends on action',
          content: json({ oneOf: [ref('OrderStatusResponse'), ref('OrderDetailResponse'), ref('OrderListResponse')] }),
        },
        ...errors(400, ...GUARDED, 404, 503),
      },
    },
  },
  '/notify': {
    post: {
      tags: ['Gateway callbacks'],
      operationId: 'genericNotify',
      summary: 'Generic gateway notification (also /notify/generic, /notify.php)',
      description:
        'Server-to-server, signed with GATEWAY_SECRET: a payment, or with notify_type=refund the outcome of a refund the service requested ' +
        '(unknown refund → 404 not_found, amount differing → 409 amount_mismatch, contradicting a settled refund → 409 invalid_state, each flagged for operators). ' +
        'Applied or already applied (same transaction_id, or a refund already settled the same way) → 200. ' +
        'Every request, accepted or not, leaves a payment-log entry, except rejected requests past CALLBACK_REJECT_RATE_PER_MINUTE from one address (429 rate_limited, counted only); ' +
        'a rejected request keeps at most its first 4 KiB. Callers may be limited by CALLBACK_IP_ALLOWLIST_GENERIC.',
      requestBody: {
        required: true,
        content: { 'application/x-www-form-urlencoded': { schema: notifyParams }, 'application/json': { schema: notifyParams } },
      },
      responses: { ...ok(200, 'NotifyResponse', 'Applied, or a duplicate of an applied notification'), ...errors(400, 401, 403, 404, 409, 413, 429, 503) },
    },
  },
  '/healthz': {
    get: {
      tags: ['Operations'],
      operationId: 'healthz',
      summary: 'Liveness: 200 while the process runs',
      responses: ok(200, 'HealthResponse', 'The process runs'),
    },
  },
  '/readyz': {
    get: {
      tags: ['Operations'],
      operationId: 'readyz',
      summary: 'Readiness: the database answers and migrations are current',
      responses: { ...ok(200, 'ReadyResponse', 'Ready'), ...errors(503) },
    },
  },
  '/metrics': {
    get: {
      tags: ['Operations'],
      operationId: 'metrics',
      summary: 'Prometheus metrics',
      description:
        'Text exposition format: payment_callbacks_total{gateway,verdict}, payment_callbacks_dropped_total{gateway}, notification_deliveries_total{outcome}, notification_backlog, ' +
        'notification_oldest_due_age_seconds, reconcile_queries_total{gateway,outcome}, payments_recovered_total{gateway}, refund_calls_total{gateway,action,outcome}, ' +
        'http_request_duration_seconds{method,route,status_code} and process metrics. ' +
        'Needs Authorization: Bearer <METRICS_TOKEN> when METRICS_TOKEN is set; open otherwise.',
      security: [{ MetricsToken: [] }, {}],
      responses: {
        200: {
          description: 'Prometheus text format 0.0.4',
          content: {
            'text/plain': {
              schema: { type: 'string' },
              example: '# TYPE payment_callbacks_total counter\npayment_callbacks_total{gateway="generic",verdict="applied"} 42\n',
            },
          },
        },
        ...errors(401),
      },
    },
  },
};
