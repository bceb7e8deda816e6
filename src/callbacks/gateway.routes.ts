import { Router, type Request, type Response } from 'express';
import type { AppConfig } from '../config.ts';
import { sendError } from '../http/envelope.ts';
import { AppError } from '../shared/errors.ts';
import { isStorageUnavailable } from '../db/db-errors.ts';
import type { ResultPages } from './result.page.ts';
import type { CallbackService } from './callback.service.ts';
import { notifyBodyParsers } from '../http/body-parsers.ts';
import { callbackInput, setRetryAfter } from './callback.routes.ts';
import { createAlipayGateway } from './gateways/alipay.ts';
import type { GatewayAdapter } from './gateways/gateway.ts';
import { createStripeGateway } from './gateways/stripe.ts';
import { createWechatpayGateway } from './gateways/wechatpay.ts';

const SETTINGS: Record<'alipay' | 'wechatpay' | 'stripe', string> = {
  alipay: 'ALIPAY_APP_ID and ALIPAY_PUBLIC_KEY',
  wechatpay: 'WECHATPAY_MCH_ID, WECHATPAY_APIV3_KEY and WECHATPAY_PLATFORM_KEYS',
  stripe: 'STRIPE_WEBHOOK_SECRET',
};

/** Adapters built once from configuration; null when a gateway is not configured (its routes answer 404). */
export function createGatewayAdapters(config: AppConfig) {
  return {
    alipay: config.alipay ? createAlipayGateway(config.alipay) : null,
    wechatpay: config.wechatpay ? createWechatpayGateway(config.wechatpay) : null,
    stripe: config.stripe ? createStripeGateway(config.stripe) : null,
  };
}

function notConfigured(name: keyof typeof SETTINGS) {
  return (_req: Request, res: Response) =>
    sendError(res, 404, 'not_found', `The ${name} adapter is not configured: set ${SETTINGS[name]} to enable /notify/${name}`);
}

/** Runs a notification through the shared service and answers in the gateway's own format, failures included. */
function notifyHandler(callbacks: CallbackService, adapter: GatewayAdapter) {
  return async (req: Request, res: Response) => {
    try {
      const outcome = await callbacks.handle(callbackInput(req, adapter, 'notify'));
      setRetryAfter(res, outcome);
      adapter.acknowledge(res, outcome);
    } catch (err) {
      if (!isStorageUnavailable(err)) throw err;
      req.log?.error({ err }, 'storage unavailable during a gateway notification');
      const error = new AppError('unavailable', 'The service is temporarily unavailable; the request was not acknowledged and is safe to retry.');
      adapter.acknowledge(res, { verdict: 'unavailable', status: error.status, code: error.code, message: error.message });
    }
  };
}

/** `POST /notify/alipay|wechatpay|stripe` and Alipay's return URL `GET /callback/alipay`. */
export function gatewayRoutes(callbacks: CallbackService, adapters: ReturnType<typeof createGatewayAdapters>, pages: ResultPages): Router {
  const router = Router();
  const bodies = notifyBodyParsers();
  for (const name of ['alipay', 'wechatpay', 'stripe'] as const) {
    const adapter = adapters[name];
    router.post(`/notify/${name}`, ...bodies, adapter ? notifyHandler(callbacks, adapter) : notConfigured(name));
  }
  const alipay = adapters.alipay;
  router.get(
    '/callback/alipay',
    alipay ? async (req, res) => pages.renderOutcome(req, res, await callbacks.inspect(callbackInput(req, alipay, 'return'))) : notConfigured('alipay'),
  );
  return router;
}
