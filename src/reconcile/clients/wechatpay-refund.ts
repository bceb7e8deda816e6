import { z } from 'zod';
import { REFUND_STATUSES } from '../../callbacks/gateways/wechatpay-refund.ts';
import { excerptOf, GatewayCallError, type RefundAnswer, type RefundClient, type RefundTarget } from '../gateway-client.ts';
import { codeOf, httpError, issues, jsonObject, type Answer, type WechatpayApi } from './wechatpay-api.ts';

/*
 * WeChat Pay API v3 申请退款 (POST /v3/refund/domestic/refunds) and 查询单笔退款 (GET …/refunds/{out_refund_no}), with the
 * statuses and error codes wechatpay-go documents in services/refunddomestic (api_refunds.go, Status).
 */

const REFUNDS_PATH = '/v3/refund/domestic/refunds';
/** WeChat's limit on `reason`: a longer one would be refused (PARAM_ERROR) for a reason nobody asked for. */
const MAX_REASON_CHARS = 80;
/**
 * The refusals 申请退款 documents ("退款申请失败", wrong order, wrong parameters, no permission): no money moved. Its other
 * codes leave the outcome unknown: SYSTEM_ERROR (send the same out_refund_no again), FREQUENCY_LIMITED (未受理, later),
 * SIGN_ERROR (our key or serial is wrong: fixed, the same request goes through), and any code it does not document.
 */
const REFUSALS = new Set(['USER_ACCOUNT_ABNORMAL', 'NOT_ENOUGH', 'PARAM_ERROR', 'MCH_NOT_EXISTS', 'RESOURCE_NOT_EXISTS', 'INVALID_REQUEST', 'NO_AUTH']);

const printable = z.string().regex(/^[\x21-\x7e]{1,64}$/, 'must be 1-64 printable ASCII characters');
/** The Refund object both calls answer; other fields (channel, user_received_account, success_time…) stay in `fields`. */
const refundSchema = z.object({
  refund_id: printable,
  out_refund_no: z.string(),
  out_trade_no: z.string(),
  status: z.string(),
  amount: z.object({
    refund: z.number().int().nonnegative().refine(Number.isSafeInteger, 'is too large'),
    currency: z
      .string()
      .regex(/^[A-Z]{3}$/, 'must be an ISO 4217 code')
      .optional(),
  }),
});

/** The verified Refund object in the refund ledger's terms. */
function readRefund(fields: Record<string, unknown>, target: RefundTarget, text: string): RefundAnswer {
  const malformed = (message: string) => new GatewayCallError('malformed', message, excerptOf(text));
  const parsed = refundSchema.safeParse(fields);
  if (!parsed.success) throw malformed(`Invalid refund: ${issues(parsed.error)}`);
  const r = parsed.data;
  if (r.out_refund_no !== target.refundNo) throw malformed(`the answer is about out_refund_no ${r.out_refund_no.slice(0, 64)}, not ${target.refundNo}`);
  if (r.out_trade_no !== target.orderNo) throw malformed(`the answer is about out_trade_no ${r.out_trade_no.slice(0, 64)}, not ${target.orderNo}`);
  const status = REFUND_STATUSES[r.status];
  if (!status) throw malformed(`refund status ${r.status.slice(0, 32)} is not one WeChat Pay documents`);
  const gatewayRefundId = r.refund_id;
  if (status.outcome === 'succeeded') {
    return { state: 'succeeded', gatewayRefundId, amountMinor: r.amount.refund, ...(r.amount.currency ? { currency: r.amount.currency } : {}), fields };
  }
  if (status.outcome === 'pending') return { state: 'pending', gatewayRefundId, gatewayStatus: r.status, fields };
  return { state: 'failed', gatewayRefundId, reason: status.reason ?? r.status, fields };
}

function requestBody(target: RefundTarget, notifyUrl: string | null): string {
  const reason = target.reason ? [...target.reason.trim()].slice(0, MAX_REASON_CHARS).join('') : '';
  return JSON.stringify({
    // WeChat takes either; its own transaction id names the payment beyond doubt.
    ...(target.transactionId ? { transaction_id: target.transactionId } : { out_trade_no: target.orderNo }),
    out_refund_no: target.refundNo,
    ...(reason ? { reason } : {}),
    ...(notifyUrl ? { notify_url: notifyUrl } : {}),
    amount: { refund: target.amountMinor, total: target.orderAmountMinor, currency: target.currency },
  });
}

/**
 * The refund API over the client's signed calls. Every answer acted on carries a valid platform signature: a 2xx,
 * the RESOURCE_NOT_EXISTS that makes a query `not_found`, and a refusal (it makes the refund `failed`, so a forged
 * one could have it refunded twice). Anything else is thrown: the refund stays pending and is asked about later.
 */
export function createWechatpayRefunds(api: WechatpayApi, notifyUrl: string | null): RefundClient {
  const verified = (answer: Answer, target: RefundTarget): RefundAnswer => {
    api.authenticate(answer);
    return readRefund(jsonObject(answer), target, answer.text);
  };

  return {
    async refund(target: RefundTarget, signal: AbortSignal): Promise<RefundAnswer> {
      const answer = await api.call('POST', REFUNDS_PATH, requestBody(target, notifyUrl), signal);
      const code = codeOf(answer);
      if (answer.status >= 400 && answer.status < 500 && answer.status !== 429 && code && REFUSALS.has(code)) {
        api.authenticate(answer);
        const fields = jsonObject(answer);
        const message = typeof fields.message === 'string' ? `: ${fields.message}` : '';
        return { state: 'failed', gatewayRefundId: null, reason: `${code}${message}`.slice(0, 200), fields };
      }
      if (answer.status < 200 || answer.status > 299) throw httpError(answer);
      return verified(answer, target);
    },
    async queryRefund(target: RefundTarget, signal: AbortSignal): Promise<RefundAnswer> {
      const answer = await api.call('GET', `${REFUNDS_PATH}/${encodeURIComponent(target.refundNo)}`, '', signal);
      if (answer.status === 404 && codeOf(answer) === 'RESOURCE_NOT_EXISTS') {
        api.authenticate(answer);
        return { state: 'not_found', gatewayStatus: 'RESOURCE_NOT_EXISTS', fields: jsonObject(answer) };
      }
      if (answer.status < 200 || answer.status > 299) throw httpError(answer);
      return verified(answer, target);
    },
  };
}
