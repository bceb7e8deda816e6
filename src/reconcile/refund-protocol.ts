import { isOrderNo, ORDER_NO_RULE } from '../orders/order-number.ts';
import type { SignType } from '../shared/signing.ts';
import { ANSWER_WINDOW_S, isFresh, signAnswer, signedAnswerParams, signedRequestParams, signForm, type Checked } from './query-protocol.ts';

/*
 * The generic refund protocol, signed with the heritage signature and GATEWAY_SECRET like the query protocol:
 * - the refund request `POST <GENERIC_REFUND_URL>` form {order_no, refund_no, refund_amount, currency, timestamp,
 *   nonce, sign_type, sign}; its HTTP status is the answer (2xx accepted, 4xx refused, anything else unknown);
 * - the refund query: the query protocol's form with `refund_no` added, answered with signed JSON {order_no,
 *   refund_no, status, refund_amount, currency, timestamp, sign_type, sign};
 * - the refund notification at /notify (notify_type=refund), verified by the generic adapter.
 * "No such refund" is a signed, fresh answer with status `refund_not_found`: an HTTP 404 could be any proxy's,
 * and `refund_pending` must not stand for a request the gateway never received (that one is sent again).
 */

export const REFUND_STATUSES = ['refund_success', 'refund_failed', 'refund_pending', 'refund_not_found'] as const;
export type RefundStatus = (typeof REFUND_STATUSES)[number];

/** A refund as the protocol names it: amounts are decimal text in the order's currency. */
export interface RefundRequestFields {
  order_no: string;
  refund_no: string;
  refund_amount: string;
  currency: string;
}

export interface RefundAnswerFields {
  order_no: string;
  refund_no: string;
  status: RefundStatus;
  refund_amount?: string;
  currency?: string;
}

const DECIMAL = /^\d{1,18}(\.\d{1,18})?$/;
const CURRENCY = /^[A-Z]{3}$/;

/** The signed refund request (the asker's side). */
export function signRefundRequest(fields: RefundRequestFields, secret: string, now: Date, signType: SignType = 'HMAC-SHA256'): Record<string, string> {
  return signForm({ ...fields }, secret, now, signType);
}

/** Checks a refund request (the gateway's side): signature, window, and every field of the refund well formed. */
export function verifyRefundRequest(form: Record<string, unknown>, secret: string, now: Date): Checked<RefundRequestFields> {
  const checked = signedRequestParams(form, secret);
  if (!checked.ok) return checked;
  const p = checked.value;
  if (!isOrderNo(p.order_no) || !isOrderNo(p.refund_no)) return { ok: false, reason: 'malformed', message: `order_no and refund_no ${ORDER_NO_RULE}` };
  if (!DECIMAL.test(p.refund_amount ?? '')) return { ok: false, reason: 'malformed', message: 'refund_amount must be a plain decimal such as 12.34' };
  if (!CURRENCY.test(p.currency ?? '')) return { ok: false, reason: 'malformed', message: 'currency must be an ISO 4217 code' };
  if (!isFresh(p.timestamp, now)) return { ok: false, reason: 'stale', message: `timestamp must be unix seconds within ${ANSWER_WINDOW_S} s of now` };
  return { ok: true, value: { order_no: p.order_no, refund_no: p.refund_no, refund_amount: p.refund_amount!, currency: p.currency! } };
}

/** The signed query form asking about refund `refundNo` of order `orderNo`. */
export function signRefundQueryRequest(
  orderNo: string,
  refundNo: string,
  secret: string,
  now: Date,
  signType: SignType = 'HMAC-SHA256',
): Record<string, string> {
  return signForm({ order_no: orderNo, refund_no: refundNo }, secret, now, signType);
}

/** The signed JSON answer to a refund query (the gateway's side). */
export function signRefundAnswer(fields: RefundAnswerFields, secret: string, now: Date, signType: SignType = 'HMAC-SHA256'): string {
  return signAnswer(fields, secret, now, signType);
}

/** Checks a refund query's answer (the asker's side): signed, fresh, about that order and that refund, a known status. */
export function verifyRefundAnswer(text: string, secret: string, asked: { orderNo: string; refundNo: string }, now: Date): Checked<RefundAnswerFields> {
  const checked = signedAnswerParams(text, secret);
  if (!checked.ok) return checked;
  const p = checked.value;
  if (p.order_no !== asked.orderNo) return { ok: false, reason: 'malformed', message: `the answer is about order ${p.order_no ?? '?'}, not ${asked.orderNo}` };
  if (p.refund_no !== asked.refundNo)
    return { ok: false, reason: 'malformed', message: `the answer is about refund ${p.refund_no ?? '?'}, not ${asked.refundNo}` };
  if (!isFresh(p.timestamp, now)) return { ok: false, reason: 'stale', message: `the answer's timestamp is not within ${ANSWER_WINDOW_S} s of now` };
  const status = p.status as RefundStatus;
  if (!REFUND_STATUSES.includes(status))
    return { ok: false, reason: 'malformed', message: `status ${JSON.stringify(p.status)} is not one of ${REFUND_STATUSES.join(', ')}` };
  // The amount is what settles a refund: a success must state it, and whatever is stated must be readable.
  if (status === 'refund_success' && !p.refund_amount) return { ok: false, reason: 'malformed', message: 'a refund_success answer needs refund_amount' };
  if (p.refund_amount !== undefined && !DECIMAL.test(p.refund_amount))
    return { ok: false, reason: 'malformed', message: 'refund_amount must be a plain decimal such as 12.34' };
  if (p.currency !== undefined && !CURRENCY.test(p.currency)) return { ok: false, reason: 'malformed', message: 'currency must be an ISO 4217 code' };
  return { ok: true, value: { order_no: p.order_no, refund_no: p.refund_no, status, refund_amount: p.refund_amount, currency: p.currency } };
}

/** The signed parameters of a refund notification to /notify (the sandbox sends them; tests forge them). */
export function signRefundNotification(
  fields: RefundRequestFields & { status: 'refund_success' | 'refund_failed' },
  secret: string,
  now: Date,
  signType: SignType = 'HMAC-SHA256',
): Record<string, string> {
  return signForm({ notify_type: 'refund', ...fields }, secret, now, signType);
}
