import type { Response } from 'express';
import { ORDER_NO_RULE } from '../../orders/order-number.ts';
import type { CallbackOutcome, CallbackRequest, GatewayAdapter, PaymentOutcome, Verification } from './gateway.ts';
import { verifyAlipayParams, type AlipayConfig, type AlipayParamsCheck } from './alipay-signature.ts';
import { alipayPublicKey } from './gateway-keys.ts';

export { loadAlipayPublicKey, verifyAlipayParams, type AlipayConfig, type AlipayParamsCheck } from './alipay-signature.ts';

const TRADE_STATUS: Record<string, PaymentOutcome> = {
  TRADE_SUCCESS: 'paid',
  TRADE_FINISHED: 'paid',
  TRADE_CLOSED: 'closed',
};

const TRADE_NO = /^[\x21-\x7e]{1,64}$/;
const NOTIFY_ID = /^[\x21-\x7e]{1,128}$/;
const AMOUNT = /^\d{1,18}(\.\d{1,18})?$/;
const CURRENCY = /^[A-Z]{3}$/;

/** Verdicts Alipay must hear `success` for; anything else is `fail`, and Alipay retries. */
const ACCEPTED = new Set<string>(['applied', 'duplicate', 'ignored']);
/** A storage failure (503 `unavailable`) is never `success`, whatever the verdict: Alipay must retry. */
const accepted = (outcome: CallbackOutcome) => ACCEPTED.has(outcome.verdict) && outcome.status >= 200 && outcome.status < 300 && !outcome.code;

export interface AlipayGateway extends GatewayAdapter {
  /**
   * Signature and app_id only, for the return URL (GET /callback/alipay): the shopper's browser brings
   * signed parameters without trade_status, so it shows the order's current status and changes nothing.
   */
  verifyParams(params: unknown, rawBody?: Buffer): AlipayParamsCheck;
}

/**
 * Alipay asynchronous notifications: RSA2 over the sorted form parameters, verified with the
 * Alipay public key parsed once at start-up (gateway-keys.ts: an unusable key throws then, not on the first callback).
 */
export function createAlipayGateway(config: { appId: string; publicKey: string }): AlipayGateway {
  if (!config.appId.trim()) throw new Error('ALIPAY_APP_ID is empty');
  const keyed: AlipayConfig = { appId: config.appId.trim(), publicKey: alipayPublicKey(config.publicKey) };
  const verifyParams = (params: unknown, rawBody?: Buffer) => verifyAlipayParams(params, keyed, rawBody);

  return {
    name: 'alipay',
    verifyParams,
    verify({ params: input, rawBody }: CallbackRequest): Verification {
      const checked = verifyParams(input, rawBody);
      if (!checked.ok) return checked;
      const { params, fields, orderNo } = checked;
      const status = params.trade_status ?? '';
      const outcome = TRADE_STATUS[status];
      if (!outcome) {
        const message = status
          ? `trade_status ${JSON.stringify(status.slice(0, 32))} changes no order; acknowledged and ignored`
          : 'no trade_status; acknowledged and ignored';
        return { ok: 'ignored', message, claimedOrderNo: orderNo };
      }
      const problems: string[] = [];
      if (!orderNo) problems.push(`out_trade_no ${ORDER_NO_RULE}`);
      if (!params.trade_no || !TRADE_NO.test(params.trade_no)) problems.push('trade_no must be 1-64 printable ASCII characters');
      if (!params.total_amount || !AMOUNT.test(params.total_amount)) problems.push('total_amount must be a plain decimal such as 12.34');
      if (params.notify_id !== undefined && params.notify_id !== '' && !NOTIFY_ID.test(params.notify_id))
        problems.push('notify_id must be 1-128 printable ASCII characters');
      // Cross-border trades state the currency total_amount is in; domestic ones are CNY and say nothing.
      const currency = params.trans_currency || params.currency || undefined;
      if (currency !== undefined && !CURRENCY.test(currency)) problems.push('trans_currency must be an ISO 4217 code');
      if (problems.length > 0 || !orderNo) {
        return {
          ok: false,
          rejection: { verdict: 'malformed', code: 'validation_failed', message: `Invalid parameters: ${problems.join('; ')}`, claimedOrderNo: orderNo },
        };
      }
      return {
        ok: true,
        result: {
          orderNo,
          transactionId: params.trade_no!,
          amount: { kind: 'decimal', value: params.total_amount! },
          currency,
          outcome,
          eventKey: params.notify_id || undefined,
          fields,
        },
      };
    },
    acknowledge(res: Response, outcome: CallbackOutcome) {
      res
        .status(outcome.status)
        .type('text/plain')
        .send(accepted(outcome) ? 'success' : 'fail');
    },
  };
}
