import { Router, type Request, type Response } from 'express';
import { z } from 'zod';
import { sendData } from '../http/envelope.ts';
import { parseOrThrow } from '../shared/validation.ts';
import { listOrdersSchema, orderNoSchema, timeWindow } from './order.schema.ts';
import type { OrderService } from './order.service.ts';

/** The heritage `query_order.php` API: one path, an `action` parameter. */
export const querySchema = z.discriminatedUnion(
  'action',
  [
    z.object({ action: z.literal('status'), order_no: orderNoSchema }),
    z.object({ action: z.literal('detail'), order_no: orderNoSchema }),
    listOrdersSchema
      .omit({ from: true, to: true })
      .extend({ action: z.literal('list'), start_time: listOrdersSchema.shape.from, end_time: listOrdersSchema.shape.to })
      .superRefine(timeWindow('start_time', 'end_time')),
  ],
  { error: 'must be one of status, detail, list' },
);

export function queryOrderRoutes(orders: OrderService): Router {
  const router = Router();
  const handle = async (req: Request, res: Response) => {
    const query = parseOrThrow(querySchema, req.query, 'query');
    switch (query.action) {
      case 'status':
        return sendData(res, await orders.getStatus(query.order_no));
      case 'detail':
        return sendData(res, await orders.getDetail(query.order_no));
      case 'list': {
        const { start_time, end_time, ...rest } = query;
        return sendData(res, await orders.list({ ...rest, from: start_time, to: end_time }));
      }
    }
  };
  router.get(['/query_order', '/query_order.php'], handle);
  return router;
}
