import { Router, type Request, type Response } from 'express';
import { parseOrThrow } from '../shared/validation.ts';
import { operatorOf } from './admin-session.ts';
import type { RenderConsole } from './admin.routes.ts';
import { withQuery } from './admin-view.ts';
import { orderNoParam, type ConsoleOrders } from './orders.service.ts';

const orderPath = (orderNo: string) => `/admin/orders/${encodeURIComponent(orderNo)}`;

/** `/admin/orders`: filtered list, the order timeline, and the close and resend actions (POST + CSRF, then redirect). */
export function consoleOrderRoutes(orders: ConsoleOrders, render: RenderConsole): Router {
  const router = Router();

  router.get('/', async (req, res) => {
    const result = await orders.list(req.query as Record<string, unknown>);
    const pageUrl = (page: number) => withQuery('/admin/orders', { ...result.form, page: page > 1 ? page : undefined });
    await render(req, res, 'admin/orders', 'orders', { result, pageUrl });
  });

  router.get('/:order_no', async (req, res) => {
    const { order_no } = parseOrThrow(orderNoParam, req.params, 'order number');
    const rejectedPageUrl = (page: number) => withQuery(orderPath(order_no), { rejected_page: page > 1 ? page : undefined }) + '#rejected-callbacks';
    await render(req, res, 'admin/order', 'orders', { detail: await orders.detail(order_no, req.query as Record<string, unknown>), rejectedPageUrl });
  });

  const action = (kind: 'close' | 'resend') => async (req: Request, res: Response) => {
    const { order_no } = parseOrThrow(orderNoParam, req.params, 'order number');
    const flash = await orders.act(kind, order_no, { operator: operatorOf(res), remoteIp: req.ip ?? null });
    res.redirect(303, `${orderPath(order_no)}?flash=${flash}`);
  };
  router.post('/:order_no/close', action('close'));
  router.post('/:order_no/resend', action('resend'));

  return router;
}
