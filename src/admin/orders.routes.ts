import { Router, type Request, type Response } from 'express';
import { parseOrThrow } from '../shared/validation.ts';
import { operatorOf } from './admin-session.ts';
import type { RenderConsole } from './render-console.ts';
import { withQuery } from './admin-view.ts';
import type { OrderRefund } from './order-refund.service.ts';
import type { OrderSync } from './order-sync.service.ts';
import { orderNoParam, type ConsoleOrders } from './orders.service.ts';
import type { TestNotifications } from './test-notification.service.ts';

const orderPath = (orderNo: string) => `/admin/orders/${encodeURIComponent(orderNo)}`;

/** `?test=<audit id>`: a test notification to show on the order page. */
const testIdOf = (value: unknown) => (typeof value === 'string' && /^\d{1,15}$/.test(value) ? Number(value) : null);

/**
 * `/admin/orders`: filtered list, the order timeline, the close, resend, sync (ask the gateway now), refund and
 * test-notification actions (POST + CSRF, then redirect).
 */
export function consoleOrderRoutes(
  orders: ConsoleOrders,
  actions: { sync: OrderSync; refund: OrderRefund },
  tests: TestNotifications,
  render: RenderConsole,
): Router {
  const router = Router();

  router.get('/', async (req, res) => {
    const result = await orders.list(req.query as Record<string, unknown>);
    const pageUrl = (page: number) => withQuery('/admin/orders', { ...result.form, page: page > 1 ? page : undefined });
    await render(req, res, 'admin/orders', 'orders', { result, pageUrl });
  });

  router.get('/:order_no', async (req, res) => {
    const { order_no } = parseOrThrow(orderNoParam, req.params, 'order number');
    const rejectedPageUrl = (page: number) => withQuery(orderPath(order_no), { rejected_page: page > 1 ? page : undefined }) + '#rejected-callbacks';
    const testId = testIdOf(req.query.test);
    const [detail, testExchange] = await Promise.all([
      orders.detail(order_no, req.query as Record<string, unknown>),
      testId === null ? null : tests.find(order_no, testId),
    ]);
    await render(req, res, 'admin/order', 'orders', { detail, rejectedPageUrl, testExchange });
  });

  const action = (kind: 'close' | 'resend') => async (req: Request, res: Response) => {
    const { order_no } = parseOrThrow(orderNoParam, req.params, 'order number');
    const flash = await orders.act(kind, order_no, { operator: operatorOf(res), remoteIp: req.ip ?? null });
    res.redirect(303, `${orderPath(order_no)}?flash=${flash}`);
  };
  router.post('/:order_no/close', action('close'));
  router.post('/:order_no/resend', action('resend'));

  router.post('/:order_no/sync', async (req, res) => {
    const { order_no } = parseOrThrow(orderNoParam, req.params, 'order number');
    const flash = await actions.sync.sync(order_no, { operator: operatorOf(res), remoteIp: req.ip ?? null });
    res.redirect(303, `${orderPath(order_no)}?flash=${flash}`);
  });

  router.post('/:order_no/refund', async (req, res) => {
    const { order_no } = parseOrThrow(orderNoParam, req.params, 'order number');
    const body = (req.body ?? {}) as Record<string, unknown>;
    const flash = await actions.refund.refund(order_no, body, { operator: operatorOf(res), remoteIp: req.ip ?? null });
    res.redirect(303, `${orderPath(order_no)}?flash=${flash}#refunds`);
  });

  router.post('/:order_no/test-notification', async (req, res) => {
    const { order_no } = parseOrThrow(orderNoParam, req.params, 'order number');
    const body = (req.body ?? {}) as Record<string, unknown>;
    const url = typeof body.url === 'string' ? body.url : undefined;
    const outcome = await tests.send(order_no, url, { operator: operatorOf(res), remoteIp: req.ip ?? null });
    const target = 'sent' in outcome ? `test=${outcome.sent}#test-notification-result` : `flash=${outcome.refused}#test-notification`;
    res.redirect(303, `${orderPath(order_no)}?${target}`);
  });

  return router;
}
