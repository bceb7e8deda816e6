import { Router, type Request, type Response } from 'express';
import { notifyBodyParsers, pageBodyParsers } from '../http/body-parsers.ts';
import type { CallbackOutcome, GatewayAdapter } from './gateways/gateway.ts';
import type { CallbackInput, CallbackService } from './callback.service.ts';
import type { ResultPages } from './result.page.ts';

/** The request as received, for payment_logs.callback_data: a POST's exact body bytes (already decoded as `bodyText`), a GET's query string. */
function rawOf(req: Request, bodyText: string | undefined): string {
  if (req.method === 'POST') return bodyText ?? '';
  return queryOf(req);
}

/**
 * Form fields decoded from the raw text ourselves: the body parser silently drops `__proto__` and merges
 * repeated keys, and a gateway's parameters must be seen exactly as sent. Repeats become arrays (refused).
 */
function formParams(text: string): Record<string, unknown> {
  const params: Record<string, unknown> = Object.create(null) as Record<string, unknown>;
  for (const [key, value] of new URLSearchParams(text)) {
    const previous = params[key];
    params[key] = previous === undefined ? value : ([] as unknown[]).concat(previous, value);
  }
  return params;
}

const queryOf = (req: Request) => (req.originalUrl.includes('?') ? req.originalUrl.slice(req.originalUrl.indexOf('?') + 1) : '');

/** A source address over its budget of rejected callbacks may try again when the minute's window has passed; a busy service, in a few seconds. */
export function setRetryAfter(res: Response, outcome: CallbackOutcome): void {
  if (outcome.verdict === 'rate_limited') res.setHeader('Retry-After', '60');
  else if (outcome.verdict === 'unavailable') res.setHeader('Retry-After', '5');
}

/** Body parameters for POST (form or flat JSON), query parameters for GET. */
export function callbackInput(req: Request, gateway: GatewayAdapter, kind: CallbackInput['kind']): CallbackInput {
  const rawBody = (req as Request & { rawBody?: Buffer }).rawBody;
  const body: unknown = req.body;
  // A Buffer body comes only from the notify routes' form reader; otherwise the media type tells.
  const isForm = req.method === 'POST' && rawBody !== undefined && (Buffer.isBuffer(body) || req.is('application/x-www-form-urlencoded') !== false);
  const isJson = !isForm && req.method === 'POST' && typeof body === 'object' && body !== null && (Array.isArray(body) || Object.keys(body).length > 0);
  const bodyText = rawBody && rawBody.length > 0 ? rawBody.toString('utf8') : undefined;
  // A POST takes its parameters from its body only: a query string never stands in for an empty or unreadable body.
  const params = isForm ? formParams(bodyText ?? '') : isJson ? (body as Record<string, unknown>) : req.method === 'POST' ? {} : formParams(queryOf(req));
  // `?lang=` picks the page language (the page's language switch adds it); it is ours, not the gateway's.
  if (kind === 'return' && req.method !== 'POST') delete params.lang;
  return { gateway, kind, params, rawBody, raw: rawOf(req, bodyText), headers: req.headers, remoteIp: req.ip ?? null };
}

/** `/notify` (server to server) and `/callback` (the shopper's browser) for the generic gateway. */
export function callbackRoutes(callbacks: CallbackService, generic: GatewayAdapter, pages: ResultPages): Router {
  const router = Router();
  router.post(['/notify', '/notify/generic', '/notify.php'], ...notifyBodyParsers(), async (req: Request, res: Response) => {
    const outcome = await callbacks.handle(callbackInput(req, generic, 'notify'));
    setRetryAfter(res, outcome);
    generic.acknowledge(res, outcome);
  });
  router.all(['/callback', '/callback/generic', '/callback.php'], ...pageBodyParsers(), async (req: Request, res: Response) => {
    if (req.method !== 'GET' && req.method !== 'POST') {
      res.setHeader('Allow', 'GET, POST');
      return pages.renderRejection(req, res, 405, 'Method not allowed');
    }
    const outcome = await callbacks.handle(callbackInput(req, generic, 'return'));
    setRetryAfter(res, outcome);
    pages.renderOutcome(req, res, outcome);
  });
  return router;
}
