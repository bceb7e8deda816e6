import { Router } from 'express';
import { z } from 'zod';
import type { Csrf } from '../http/csrf.ts';
import { createOrderSchema, orderNoSchema } from '../orders/order.schema.ts';
import { pageLocals } from '../pages/i18n.ts';
import { formatAmount } from '../shared/money.ts';
import { parseOrThrow } from '../shared/validation.ts';
import type { SandboxService } from './sandbox.service.ts';

const DEMO_CURRENCIES = ['CNY', 'USD', 'EUR', 'JPY', 'GBP', 'HKD'];
const payParams = z.object({ order_no: orderNoSchema });
const payBody = z.object({ action: z.enum(['pay', 'fail']) });

/** `GET /` (demo order form) and the sandbox checkout (DESIGN A8); mounted only when SANDBOX_ENABLED. */
export function sandboxRoutes(sandbox: SandboxService, csrf: Csrf): Router {
  const router = Router();

  router.get('/', (req, res) => {
    res.render('home', { ...pageLocals(req, res), csrfToken: csrf.issue(req, res), currencies: DEMO_CURRENCIES });
  });

  router.post('/sandbox/orders', csrf.verify, async (req, res) => {
    const body = (req.body ?? {}) as Record<string, unknown>;
    // Only the demo form's fields: URLs and metadata cannot be smuggled in through the sandbox.
    const input = parseOrThrow(createOrderSchema, { subject: body.subject || undefined, amount: body.amount, currency: body.currency }, 'order');
    const order = await sandbox.createDemoOrder(input);
    res.redirect(303, `/sandbox/pay/${encodeURIComponent(order.order_no)}`);
  });

  router.get('/sandbox/pay/:order_no', async (req, res) => {
    const { order_no } = parseOrThrow(payParams, req.params, 'order number');
    const order = await sandbox.findOrder(order_no);
    res.render('sandbox-pay', {
      ...pageLocals(req, res),
      csrfToken: csrf.issue(req, res),
      payable: sandbox.isPayable(order),
      order: { order_no: order.order_no, amount: formatAmount(order.amount_minor, order.currency), currency: order.currency, status: order.status, subject: order.subject },
    });
  });

  router.post('/sandbox/pay/:order_no', csrf.verify, async (req, res) => {
    const { order_no } = parseOrThrow(payParams, req.params, 'order number');
    const { action } = parseOrThrow(payBody, req.body, 'form');
    const returnParams = await sandbox.pay(order_no, action, req.ip ?? null);
    res.redirect(303, `/callback?${returnParams.toString()}`);
  });

  return router;
}
