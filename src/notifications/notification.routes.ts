import { Router } from 'express';
import { z } from 'zod';
import { sendData } from '../http/envelope.ts';
import { orderNoSchema } from '../orders/order.schema.ts';
import { parseOrThrow } from '../shared/validation.ts';
import type { NotificationService } from './notification.service.ts';

const params = z.object({ order_no: orderNoSchema });

/** `POST /api/orders/:order_no/notifications/resend` → 202. */
export function notificationRoutes(notifications: NotificationService): Router {
  const router = Router();
  router.post('/:order_no/notifications/resend', async (req, res) => {
    const { order_no } = parseOrThrow(params, req.params, 'order number');
    sendData(res, await notifications.resend(order_no), 'notification queued for delivery', 202);
  });
  return router;
}
