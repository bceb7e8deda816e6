import { Router, type ErrorRequestHandler } from 'express';
import { z } from 'zod';
import { callbackInput } from '../callbacks/callback.routes.ts';
import type { Csrf } from '../http/csrf.ts';
import { createOrderSchema, orderNoSchema } from '../orders/order.schema.ts';
import { pageLocals } from '../pages/i18n.ts';
import type { ResultPages } from '../callbacks/result.page.ts';
import { formatAmount } from '../shared/money.ts';
import { parseOrThrow } from '../shared/validation.ts';
import { NotSandboxOrderError, type SandboxService } from './sandbox.service.ts';

const DEMO_CURRENCIES = ['CNY', 'USD', 'EUR', 'JPY', 'GBP', 'HKD'];
const payParams = z.object({ order_no: orderNoSchema });
const payBody = z.object({ action: z.enum(['pay', 'fail', 'lose']) });
const payQuery = z.object({ lost: z.literal('1').optional() });

/** A browser asking for an order the sandbox will not pay gets the error page saying so, in its language. */
const notPayablePage: ErrorRequestHandler = (err, req, res, next) => {
  if (!(err instanceof NotSandboxOrderError) || res.headersSent || req.accepts(['json', 'html']) !== 'html') return next(err);
  const locals = pageLocals(req, res);
  res.status(err.status).render('error', {
    ...locals,
    status: err.status,
    code: err.code,
    message: err.message,
    explanation: locals.t.sandbox_not_payable.replace('{order_no}', err.orderNo),
  });
};

/** `GET /` (demo order form), the sandbox checkout and its return path; mounted only when SANDBOX_ENABLED. */
export function sandboxRoutes(sandbox: SandboxService, csrf: Csrf, pages: ResultPages): Router {
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
    const { lost } = parseOrThrow(payQuery, req.query, 'query');
    const order = await sandbox.findOrder(order_no);
    const payment = await sandbox.books.find(order.order_no);
    res.render('sandbox-pay', {
      ...pageLocals(req, res),
      csrfToken: csrf.issue(req, res),
      payable: sandbox.isPayable(order) && !payment,
      // Paid at the sandbox, its notification lost: the page refreshes until the service has found the payment.
      lost: lost === '1' && payment?.notification_lost === 1,
      reconcileAfterSeconds: sandbox.reconcileAfterSeconds,
      order: {
        order_no: order.order_no,
        amount: formatAmount(order.amount_minor, order.currency),
        currency: order.currency,
        status: order.status,
        subject: order.subject,
      },
    });
  });

  router.post('/sandbox/pay/:order_no', csrf.verify, async (req, res) => {
    const { order_no } = parseOrThrow(payParams, req.params, 'order number');
    const { action } = parseOrThrow(payBody, req.body, 'form');
    const returnParams = await sandbox.pay(order_no, action, req.ip ?? null);
    if (returnParams === null) return res.redirect(303, `/sandbox/pay/${encodeURIComponent(order_no)}?lost=1`);
    res.redirect(303, `/callback/sandbox?${returnParams.toString()}`);
  });

  // The query protocol, answered from the sandbox gateway's books (the reconciler asks it in process; this is the same over HTTP).
  router.post('/sandbox/query', async (req, res) => {
    const { status, body } = await sandbox.books.answerQuery((req.body ?? {}) as Record<string, unknown>);
    res.status(status).type('application/json').send(body);
  });

  // The browser's trip back, like a gateway's return URL: verified and logged as the sandbox (not as generic).
  router.get('/callback/sandbox', async (req, res) => {
    const outcome = await sandbox.returnTrip(callbackInput(req, sandbox.gateway, 'return'));
    pages.renderOutcome(req, res, outcome);
  });

  router.use(notPayablePage);
  return router;
}
