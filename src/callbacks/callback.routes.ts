import { Router, type Request, type Response } from 'express';
import type { GatewayAdapter } from './gateways/gateway.ts';
import type { CallbackInput, CallbackService } from './callback.service.ts';
import type { ResultPages } from '../pages/result.page.ts';

/** The request as received, for payment_logs.callback_data: the exact body bytes, else the query string. */
function rawOf(req: Request): string {
  const body = (req as Request & { rawBody?: Buffer }).rawBody;
  if (body && body.length > 0) return body.toString('utf8');
  const query = req.originalUrl.indexOf('?');
  return query >= 0 ? req.originalUrl.slice(query + 1) : '';
}

/** Body parameters for POST (form or flat JSON), query parameters for GET. */
export function callbackInput(req: Request, gateway: GatewayAdapter, kind: CallbackInput['kind']): CallbackInput {
  const fromBody = req.method === 'POST' && req.body !== undefined && Object.keys(req.body as object).length > 0;
  return {
    gateway,
    kind,
    params: (fromBody ? req.body : req.query) as Record<string, unknown>,
    rawBody: (req as Request & { rawBody?: Buffer }).rawBody,
    raw: rawOf(req),
    headers: req.headers,
    remoteIp: req.ip ?? null,
  };
}

/** `/notify` (server to server) and `/callback` (the shopper's browser) for the generic gateway (DESIGN A5). */
export function callbackRoutes(callbacks: CallbackService, generic: GatewayAdapter, pages: ResultPages): Router {
  const router = Router();
  router.post(['/notify', '/notify/generic', '/notify.php'], async (req: Request, res: Response) => {
    const outcome = await callbacks.handle(callbackInput(req, generic, 'notify'));
    generic.acknowledge(res, outcome);
  });
  router.all(['/callback', '/callback/generic', '/callback.php'], async (req: Request, res: Response) => {
    if (req.method !== 'GET' && req.method !== 'POST') {
      res.setHeader('Allow', 'GET, POST');
      return pages.renderRejection(req, res, 405, 'Method not allowed');
    }
    const outcome = await callbacks.handle(callbackInput(req, generic, 'return'));
    pages.renderOutcome(req, res, outcome);
  });
  return router;
}
