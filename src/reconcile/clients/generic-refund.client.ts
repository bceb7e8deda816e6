import type { GatewayName } from '../../config.ts';
import { formatAmount, parseAmount } from '../../shared/money.ts';
import type { Clock } from '../../shared/time.ts';
import { excerptOf, GatewayCallError, type RefundAnswer, type RefundClient } from '../gateway-client.ts';
import { signRefundQueryRequest, signRefundRequest, verifyRefundAnswer } from '../refund-protocol.ts';
import type { QueryTransport } from './generic.client.ts';

/** How much of a refusal's body becomes the refund's failure_reason. */
const REASON_CHARS = 200;
/**
 * 4xx answers that do not say the gateway refused this refund: 408 (it gave up reading the request) and 429 (rate
 * limited). The refund stays pending and is asked about, as after a 5xx.
 */
const NOT_A_REFUSAL = new Set([408, 429]);

const reasonOf = (status: number, body: string) => [...body.trim()].slice(0, REASON_CHARS).join('') || `HTTP ${status}`;

/**
 * The generic refund protocol's client (refund-protocol.ts): the generic gateway (GENERIC_REFUND_URL, asked about
 * refunds at GENERIC_QUERY_URL) and the sandbox speak it. A refund request's answer is its HTTP status: 2xx accepted
 * (pending until the notification or a query), 4xx refused (failed), anything else unknown (thrown).
 */
export function createGenericRefundClient(
  gateway: Extract<GatewayName, 'generic' | 'sandbox'>,
  secret: string,
  refundTransport: QueryTransport,
  queryTransport: QueryTransport | null,
  clock: Clock,
): RefundClient {
  return {
    async refund(target, signal) {
      const fields = {
        order_no: target.orderNo,
        refund_no: target.refundNo,
        refund_amount: formatAmount(target.amountMinor, target.currency),
        currency: target.currency,
      };
      const { status, body } = await refundTransport(signRefundRequest(fields, secret, clock()), signal);
      const evidence = { http_status: status, body: excerptOf(body) };
      if (status >= 200 && status <= 299) return { state: 'pending', gatewayRefundId: null, gatewayStatus: 'accepted', fields: evidence };
      if (status >= 400 && status <= 499 && !NOT_A_REFUSAL.has(status))
        return { state: 'failed', gatewayRefundId: null, reason: reasonOf(status, body), fields: evidence };
      throw new GatewayCallError('http_status', `the ${gateway} gateway answered the refund request with HTTP ${status}`, excerptOf(body));
    },

    async queryRefund(target, signal) {
      if (!queryTransport) throw new GatewayCallError('not_configured', `the ${gateway} gateway cannot be asked about refunds: set GENERIC_QUERY_URL`);
      const form = signRefundQueryRequest(target.orderNo, target.refundNo, secret, clock());
      const { status, body } = await queryTransport(form, signal);
      if (status < 200 || status > 299) throw new GatewayCallError('http_status', `the gateway answered HTTP ${status}`, excerptOf(body));
      const checked = verifyRefundAnswer(body, secret, { orderNo: target.orderNo, refundNo: target.refundNo }, clock());
      if (!checked.ok) throw new GatewayCallError(checked.reason === 'bad_signature' ? 'bad_signature' : 'malformed', checked.message, excerptOf(body));
      const answer = checked.value;
      const fields: Record<string, unknown> = { ...answer };
      switch (answer.status) {
        case 'refund_success': {
          // Read in the currency the answer states (the lead's check compares it with the refund's).
          const currency = answer.currency ?? target.currency;
          const amount = parseAmount(answer.refund_amount!, currency);
          if (!amount.ok) throw new GatewayCallError('malformed', `refund_amount ${answer.refund_amount} in ${currency}: ${amount.message}`, excerptOf(body));
          return { state: 'succeeded', gatewayRefundId: null, amountMinor: amount.minor, currency: answer.currency, fields } satisfies RefundAnswer;
        }
        case 'refund_failed':
          return { state: 'failed', gatewayRefundId: null, reason: 'the gateway reported refund_failed', fields };
        case 'refund_pending':
          return { state: 'pending', gatewayRefundId: null, gatewayStatus: answer.status, fields };
        case 'refund_not_found':
          return { state: 'not_found', gatewayStatus: answer.status, fields };
      }
    },
  };
}
