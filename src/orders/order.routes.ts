import { Router } from 'express';
import { z } from 'zod';
import { AppError, ValidationError } from '../shared/errors.ts';
import { hasExponentNumber } from '../shared/json-numbers.ts';
import { parseOrThrow } from '../shared/validation.ts';
import { sendData } from '../http/envelope.ts';
import { createOrderSchema, listOrdersQuerySchema, orderNoSchema, pageSchema } from './order.schema.ts';
import type { OrderService } from './order.service.ts';

const orderNoParams = z.object({ order_no: orderNoSchema });

/** `/api/orders`. */
export function orderRoutes(orders: OrderService): Router {
  const router = Router();

  router.post('/', async (req, res) => {
    if (!req.is(['application/json', 'application/x-www-form-urlencoded'])) {
      throw new AppError('unsupported_media_type', 'Send the order as JSON (application/json) or a form (application/x-www-form-urlencoded)');
    }
    const raw = (req as typeof req & { rawBody?: Buffer }).rawBody;
    if (req.is('application/json') && raw && hasExponentNumber(raw.toString('utf8'))) {
      throw new ValidationError('Numbers in exponent notation (1e3) are not accepted; send amounts as decimal strings such as "12.34"', [
        { path: 'amount', message: 'must be a plain decimal, not exponent notation' },
      ]);
    }
    if (!req.is('application/json') && req.body && 'metadata' in req.body) {
      throw new ValidationError('metadata is accepted in JSON bodies only', [{ path: 'metadata', message: 'JSON bodies only' }]);
    }
    const input = parseOrThrow(createOrderSchema, req.body, 'order');
    const { order, created } = await orders.create(input);
    sendData(res, order, created ? 'order created' : 'order already exists with identical fields', created ? 201 : 200);
  });

  router.get('/', async (req, res) => {
    sendData(res, await orders.list(parseOrThrow(listOrdersQuerySchema, req.query, 'query')));
  });

  router.get('/:order_no', async (req, res) => {
    const { order_no } = parseOrThrow(orderNoParams, req.params, 'order number');
    sendData(res, await orders.getDetail(order_no));
  });

  router.get('/:order_no/rejected-callbacks', async (req, res) => {
    const { order_no } = parseOrThrow(orderNoParams, req.params, 'order number');
    sendData(res, await orders.listRejectedCallbacks(order_no, parseOrThrow(pageSchema, req.query, 'query')));
  });

  router.post('/:order_no/close', async (req, res) => {
    const { order_no } = parseOrThrow(orderNoParams, req.params, 'order number');
    sendData(res, await orders.close(order_no), 'order closed');
  });

  return router;
}
