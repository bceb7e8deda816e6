import { Router } from 'express';
import { z } from 'zod';
import { sendData } from '../http/envelope.ts';
import { orderNoSchema } from '../orders/order.schema.ts';
import { parseOrThrow } from '../shared/validation.ts';
import type { ReconcileService } from './reconcile.service.ts';

const orderNoParams = z.object({ order_no: orderNoSchema });

/** `POST /api/orders/:order_no/sync`: ask the order's gateway now. */
export function reconcileRoutes(reconcile: ReconcileService): Router {
  const router = Router();
  router.post('/:order_no/sync', async (req, res) => {
    const { order_no } = parseOrThrow(orderNoParams, req.params, 'order number');
    sendData(res, await reconcile.syncOrder(order_no), 'asked the gateway');
  });
  return router;
}
