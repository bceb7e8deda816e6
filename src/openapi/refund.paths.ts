import { API_AUTH, errors, GUARDED, ok, orderNoParam, ref } from './path-helpers.ts';
import { jsonSchemaOf } from './registry.ts';
import { REFUND_EXAMPLE, refundJsonSchema, refundListSchema, refundNoSchema } from './refund.schemas.ts';
import { envelope } from './response.schemas.ts';

/** The refund operations: create (idempotent per refund_no), list an order's, read one. */

envelope('RefundResponse', refundJsonSchema, REFUND_EXAMPLE);
envelope('RefundListResponse', refundListSchema, [REFUND_EXAMPLE]);

const refundNoParam = { name: 'refund_no', in: 'path', required: true, schema: jsonSchemaOf(refundNoSchema), example: 'RF-1001' };

export const refundPaths = {
  '/api/orders/{order_no}/refunds': {
    post: {
      tags: ['Refunds'],
      operationId: 'createRefund',
      summary: 'Refund (part of) a paid order',
      security: API_AUTH,
      description:
        'JSON or form. The amount is reserved at once (pending refunds count against the refundable rest, so concurrent requests never refund more than was paid), ' +
        "then the refund is sent to the order's gateway and the answer is the refund as it then stands: pending (accepted, or the outcome is not known yet: " +
        'a timeout or gateway error never fails a refund; a notification or the reconciler settles it), succeeded, or failed (refused; failure_reason says why). ' +
        'Idempotent per refund_no: identical fields again → 200 with the refund as it stands now; other fields → 409 refund_exists. ' +
        '409 invalid_state when the order is not paid (refunded orders included); 409 not_refundable when its gateway cannot be refunded here (not configured); ' +
        '409 refund_exceeds_paid when the amount is more than the refundable rest. A succeeded or failed refund queues a refund.succeeded or refund.failed notification.',
      parameters: [orderNoParam],
      requestBody: {
        required: true,
        content: { 'application/json': { schema: ref('CreateRefundRequest') }, 'application/x-www-form-urlencoded': { schema: ref('CreateRefundRequest') } },
      },
      responses: {
        ...ok(201, 'RefundResponse', 'Created and sent to the gateway: the refund as it stands after its answer'),
        ...ok(200, 'RefundResponse', 'A refund with this refund_no and identical fields exists: the refund as it stands now'),
        ...errors(400, ...GUARDED, 404, 409, 413, 415, 503),
      },
    },
    get: {
      tags: ['Refunds'],
      operationId: 'listRefunds',
      summary: 'The refunds of an order',
      security: API_AUTH,
      description: 'Every refund of the order, newest first (also in the order detail as `refunds`).',
      parameters: [orderNoParam],
      responses: { ...ok(200, 'RefundListResponse', 'The refunds, newest first'), ...errors(400, ...GUARDED, 404, 503) },
    },
  },
  '/api/refunds/{refund_no}': {
    get: {
      tags: ['Refunds'],
      operationId: 'getRefund',
      summary: 'One refund',
      security: API_AUTH,
      parameters: [refundNoParam],
      responses: { ...ok(200, 'RefundResponse', 'The refund'), ...errors(400, ...GUARDED, 404, 503) },
    },
  },
};
