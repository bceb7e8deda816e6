import { formatAmount, parseAmount } from '../../shared/money.ts';
import { excerptOf, GatewayCallError, type RefundAnswer, type RefundClient, type RefundTarget } from '../gateway-client.ts';
import { callOpenApi, gatewayError, type AlipayResponse, type OpenApiTransport } from './alipay-openapi.ts';

/*
 * Alipay refunds. alipay.trade.refund answers synchronously: code 10000 with fund_change Y means this request moved
 * the money; 10000 with fund_change N (or none) means it moved nothing now (refunded by an earlier send of the same
 * out_request_no, or not processed yet), which alipay.trade.fastpay.refund.query settles: refund_status REFUND_SUCCESS
 * is refunded, no refund_status is not (yet) refunded. Alipay has no refund id of its own: out_request_no is the refund.
 */

const REFUND = 'alipay.trade.refund';
const REFUND_QUERY = 'alipay.trade.fastpay.refund.query';
const CURRENCY = /^[A-Z]{3}$/;
/** Alipay caps refund_reason at 256 characters; a longer one would be refused as ACQ.INVALID_PARAMETER. */
const MAX_REASON = 256;
/**
 * 40004 sub_codes that do not say the money stayed: Alipay's own failure ("call again with the same parameters") and a
 * refund number Alipay already holds with other parameters (that earlier refund may have moved money; the query tells).
 */
const OUTCOME_UNKNOWN = new Set(['ACQ.SYSTEM_ERROR', 'AQC.SYSTEM_ERROR', 'ACQ.DISCORDANT_REPEAT_REQUEST']);

const str = (v: unknown, max = 200) => (typeof v === 'string' ? v.slice(0, max) : '');
const quoted = (v: unknown) => JSON.stringify(typeof v === 'string' ? v.slice(0, 64) : v);
const malformed = (message: string, text: string) => new GatewayCallError('malformed', message, excerptOf(text));

/** An answer naming another order, trade or refund number than the one asked is not about our refund. */
function checkSubject(r: AlipayResponse, target: RefundTarget, text: string): void {
  const ours: [string, string | null][] = [
    ['out_trade_no', target.orderNo],
    ['trade_no', target.transactionId],
    ['out_request_no', target.refundNo],
  ];
  for (const [field, value] of ours) {
    const said = r[field];
    if (said === undefined || said === '' || value === null || said === value) continue;
    throw malformed(`Alipay answered about ${field} ${quoted(said)}, not the refund asked`, text);
  }
}

/** A definitive refusal of alipay.trade.refund: a signed 40004 whose sub_code says why no money moved. */
function refusal(r: AlipayResponse, text: string): string | undefined {
  if (r.code !== '40004') return undefined;
  const sub = str(r.sub_code, 64);
  if (sub === '') throw malformed('A 40004 answer without a sub_code does not say what happened', text);
  if (OUTCOME_UNKNOWN.has(sub) || sub.startsWith('isp.')) return undefined;
  return `${sub} ${str(r.sub_msg)}`.trim();
}

/** The state a verified alipay.trade.fastpay.refund.query answer gives the refund. */
function queryAnswer(r: AlipayResponse, text: string, target: RefundTarget): RefundAnswer {
  if (r.code === '40004' && r.sub_code === 'ACQ.TRADE_NOT_EXIST') {
    checkSubject(r, target, text);
    return { state: 'not_found', gatewayStatus: 'ACQ.TRADE_NOT_EXIST', fields: r };
  }
  if (r.code !== '10000') throw gatewayError(r, text);
  checkSubject(r, target, text);
  const status = r.refund_status;
  // "No refund_status: the refund request was not received, or it failed" — sending it again (same out_request_no) is safe.
  if (status === undefined || status === '') return { state: 'not_found', gatewayStatus: 'no refund_status', fields: r };
  if (typeof status !== 'string') throw malformed('refund_status is not text', text);
  if (status !== 'REFUND_SUCCESS') return { state: 'pending', gatewayRefundId: null, gatewayStatus: status.slice(0, 64), fields: r };
  const amount = typeof r.refund_amount === 'string' ? parseAmount(r.refund_amount, target.currency) : undefined;
  if (!amount?.ok) throw malformed(`refund_amount must be a plain decimal amount of ${target.currency} such as 12.34`, text);
  return { state: 'succeeded', gatewayRefundId: null, amountMinor: amount.minor, fields: r };
}

/** alipay.trade.refund and alipay.trade.fastpay.refund.query over the client's transport (same keys, same verification). */
export function createAlipayRefundClient(t: OpenApiTransport): RefundClient {
  async function queryRefund(target: RefundTarget, signal: AbortSignal): Promise<RefundAnswer> {
    const { response, text } = await callOpenApi(t, REFUND_QUERY, { out_trade_no: target.orderNo, out_request_no: target.refundNo }, signal);
    return queryAnswer(response, text, target);
  }

  return {
    queryRefund,
    async refund(target, signal) {
      const biz: Record<string, string> = { out_trade_no: target.orderNo };
      if (target.transactionId) biz.trade_no = target.transactionId;
      biz.refund_amount = formatAmount(target.amountMinor, target.currency);
      biz.out_request_no = target.refundNo;
      if (target.reason) biz.refund_reason = target.reason.slice(0, MAX_REASON);
      const { response: r, text } = await callOpenApi(t, REFUND, biz, signal);
      const refused = refusal(r, text);
      if (refused !== undefined) {
        checkSubject(r, target, text);
        return { state: 'failed', gatewayRefundId: null, reason: refused, fields: r };
      }
      if (r.code !== '10000') throw gatewayError(r, text);
      checkSubject(r, target, text);
      if (r.fund_change === 'Y') {
        // refund_fee is the trade's refunded total, not this refund's amount: only the currency is stated, when it is.
        const currency = r.refund_currency === undefined || r.refund_currency === '' ? undefined : r.refund_currency;
        if (currency !== undefined && (typeof currency !== 'string' || !CURRENCY.test(currency)))
          throw malformed('refund_currency must be an ISO 4217 code', text);
        return { state: 'succeeded', gatewayRefundId: null, ...(currency ? { currency: currency as string } : {}), fields: r };
      }
      // Accepted, but this request moved nothing now: already refunded by an earlier send, or still being processed.
      const queried = await queryRefund(target, signal);
      const fields = { [`${REFUND.replace(/\./g, '_')}_response`]: r, [`${REFUND_QUERY.replace(/\./g, '_')}_response`]: queried.fields };
      if (queried.state === 'not_found') return { state: 'pending', gatewayRefundId: null, gatewayStatus: queried.gatewayStatus, fields };
      return { ...queried, fields };
    },
  };
}
