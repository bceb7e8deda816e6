import { Router } from 'express';
import { sendData } from '../http/envelope.ts';
import { AppError } from '../shared/errors.ts';
import { parseOrThrow } from '../shared/validation.ts';
import { createRefundSchema, orderNoParams, refundNoParams } from './refund.schema.ts';
import type { RefundService } from './refund.service.ts';

/** `POST|GET /api/orders/:order_no/refunds`. */
export function orderRefundRoutes(refunds: RefundService): Router {
  const router = Router();
  router.post('/:order_no/refunds', async (req, res) => {
    if (!req.is(['application/json', 'application/x-www-form-urlencoded'])) {
      throw new AppError('unsupported_media_type', 'Send the refund as JSON (application/json) or a form (application/x-www-form-urlencoded)');
    }
    const { order_no } = parseOrThrow(orderNoParams, req.params, 'order number');
    const input = parseOrThrow(createRefundSchema, req.body, 'refund');
    const { refund, created } = await refunds.create(order_no, input, 'api');
    sendData(res, refund, created ? 'refund created' : 'refund already exists with identical fields', created ? 201 : 200);
  });
  router.get('/:order_no/refunds', async (req, res) => {
    const { order_no } = parseOrThrow(orderNoParams, req.params, 'order number');
    sendData(res, await refunds.listOfOrder(order_no));
  });
  return router;
}

/** `GET /api/refunds/:refund_no`. */
export function refundRoutes(refunds: RefundService): Router {
  const router = Router();
  router.get('/:refund_no', async (req, res) => {
    const { refund_no } = parseOrThrow(refundNoParams, req.params, 'refund number');
    sendData(res, await refunds.get(refund_no));
  });
  return router;
}
