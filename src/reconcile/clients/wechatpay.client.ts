import { z } from 'zod';
import { swallowsPair } from '../../shared/signing.ts';
import { excerptOf, GatewayCallError, type GatewayClient, type QueryAnswer, type QueryTarget } from '../gateway-client.ts';
import { codeOf, createWechatpayApi, httpError, issues, jsonObject, type WechatpayClientOptions } from './wechatpay-api.ts';
import { createWechatpayRefunds } from './wechatpay-refund.ts';

export { WECHATPAY_API_BASE, type WechatpayClientOptions } from './wechatpay-api.ts';

const printable = z.string().regex(/^[\x21-\x7e]{1,128}$/, 'must be 1-128 printable ASCII characters');
const answerSchema = z.object({ out_trade_no: z.string(), mchid: z.string(), trade_state: z.string() });
/** The same conventions as the notification adapter: a query and a callback of one payment name the same transaction. */
const paidSchema = z.object({
  transaction_id: printable.refine((v) => !swallowsPair(v), 'must not contain "&" followed by a parameter name and "="'),
  amount: z.object({
    total: z.number().int().nonnegative().refine(Number.isSafeInteger, 'is too large'),
    currency: z.string().regex(/^[A-Z]{3}$/, 'must be an ISO 4217 code'),
  }),
});
const PAID_STATES = new Set(['SUCCESS', 'REFUND']); // REFUND: paid, then (partly) refunded
const UNPAID_STATES: Record<string, 'pending' | 'failed' | 'closed'> = {
  NOTPAY: 'pending',
  USERPAYING: 'pending',
  PAYERROR: 'failed',
  CLOSED: 'closed',
  REVOKED: 'closed',
};

/** The verified transaction (查询订单 answer) in the reconciler's terms. */
function readTransaction(fields: Record<string, unknown>, orderNo: string, mchId: string, text: string): QueryAnswer {
  const malformed = (message: string) => new GatewayCallError('malformed', message, excerptOf(text));
  const base = answerSchema.safeParse(fields);
  if (!base.success) throw malformed(`Invalid transaction: ${issues(base.error)}`);
  const { out_trade_no: answered, mchid, trade_state: state } = base.data;
  if (answered !== orderNo) throw malformed(`the answer is about out_trade_no ${answered.slice(0, 64)}, not ${orderNo}`);
  const mismatch = mchid === mchId ? undefined : `mchid ${mchid.slice(0, 64)} is not WECHATPAY_MCH_ID`;
  if (PAID_STATES.has(state)) {
    const paid = paidSchema.safeParse(fields);
    if (!paid.success) throw malformed(`Invalid ${state} transaction: ${issues(paid.error)}`);
    const { transaction_id: transactionId, amount } = paid.data;
    return {
      state: 'paid',
      transactionId,
      amount: { kind: 'minor', value: amount.total },
      currency: amount.currency,
      fields,
      ...(mismatch ? { mismatch } : {}),
    };
  }
  // Only a payment is flagged and kept: another merchant's "closed" or "not paid" must change nothing.
  if (mismatch) throw malformed(`${mismatch} (trade_state ${state.slice(0, 32)})`);
  const mapped = UNPAID_STATES[state];
  if (!mapped) throw malformed(`trade_state ${state.slice(0, 32)} is not one WeChat Pay documents`);
  return { state: mapped, gatewayStatus: state, fields };
}

/**
 * WeChat Pay API v3 查询订单 (by out_trade_no) and 关闭订单, signed with the merchant API key, and its refunds
 * (wechatpay-refund.ts). Like the official SDK, every answer acted on must carry a valid platform signature: a 2xx
 * (the empty 204 of a close too) and the ORDER_NOT_EXIST answer that makes a query `not_found` or a close succeed.
 * Construction throws, naming the setting.
 */
export function createWechatpayClient(options: WechatpayClientOptions): GatewayClient {
  const api = createWechatpayApi(options);
  const { call, authenticate } = api;

  const orderPath = (orderNo: string) => `/v3/pay/transactions/out-trade-no/${encodeURIComponent(orderNo)}`;

  return {
    gateway: 'wechatpay',
    async query(target: QueryTarget, signal: AbortSignal): Promise<QueryAnswer> {
      const answer = await call('GET', `${orderPath(target.orderNo)}?mchid=${encodeURIComponent(options.mchId)}`, '', signal);
      if (answer.status === 404 && codeOf(answer) === 'ORDER_NOT_EXIST') {
        authenticate(answer);
        return { state: 'not_found', gatewayStatus: 'ORDER_NOT_EXIST', fields: jsonObject(answer) };
      }
      if (answer.status < 200 || answer.status > 299) throw httpError(answer);
      authenticate(answer);
      return readTransaction(jsonObject(answer), target.orderNo, options.mchId, answer.text);
    },
    async close(target: QueryTarget, signal: AbortSignal) {
      const answer = await call('POST', `${orderPath(target.orderNo)}/close`, JSON.stringify({ mchid: options.mchId }), signal);
      const code = codeOf(answer);
      if (answer.status === 404 && code === 'ORDER_NOT_EXIST') {
        authenticate(answer);
        return { fields: jsonObject(answer) };
      }
      // Refusals change nothing (the reconciler asks again), so like wechatpay-go they are not required to be signed.
      if (answer.status >= 400 && answer.status < 500 && code === 'ORDERPAID') {
        throw new GatewayCallError('refused', `HTTP ${answer.status} ORDERPAID: the order was paid, WeChat Pay will not close it`, excerptOf(answer.text));
      }
      if (answer.status < 200 || answer.status > 299) throw httpError(answer);
      authenticate(answer);
      return { fields: answer.body.length === 0 ? {} : jsonObject(answer) };
    },
    refunds: createWechatpayRefunds(api, options.refundNotifyUrl ?? null),
  };
}
