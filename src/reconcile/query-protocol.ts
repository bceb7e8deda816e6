import { randomBytes } from 'node:crypto';
import { ambiguityOf, computeSign, isSignType, verifySign, type SignType } from '../shared/signing.ts';

/*
 * The generic query protocol: `POST <url>` form {order_no, timestamp, nonce, sign_type, sign} signed with the
 * heritage signature; the gateway answers JSON {order_no, status, amount, currency, transaction_id, timestamp,
 * sign_type, sign} signed the same way with the same key. Both directions are built and checked here (the
 * reconciler asks, the sandbox answers).
 */

export const QUERY_STATUSES = ['success', 'failed', 'pending', 'closed'] as const;
export type QueryStatus = (typeof QUERY_STATUSES)[number];

/** An answer older or newer than this is refused (a replayed answer must not pay an order). */
export const ANSWER_WINDOW_S = 300;

export interface QueryAnswerFields {
  order_no: string;
  status: QueryStatus;
  amount?: string;
  currency?: string;
  transaction_id?: string;
}

const unix = (now: Date) => Math.floor(now.getTime() / 1000);

/** The signed form asking about `orderNo`. */
export function signQueryRequest(orderNo: string, secret: string, now: Date, signType: SignType = 'HMAC-SHA256'): Record<string, string> {
  return signForm({ order_no: orderNo }, secret, now, signType);
}

/** `params` with a fresh timestamp and nonce, signed: every request of the generic protocols (query, refund). */
export function signForm(params: Record<string, string>, secret: string, now: Date, signType: SignType = 'HMAC-SHA256'): Record<string, string> {
  const signed = { ...params, timestamp: String(unix(now)), nonce: randomBytes(12).toString('hex'), sign_type: signType };
  return { ...signed, sign: computeSign(signed, secret, signType) };
}

export type Checked<T> = { ok: true; value: T } | { ok: false; reason: 'bad_signature' | 'malformed' | 'stale'; message: string };

const signTypeOf = (value: unknown): SignType | null =>
  value === undefined || value === '' ? 'MD5' : typeof value === 'string' && isSignType(value) ? value : null;

/** Unix seconds within ANSWER_WINDOW_S of now: older or newer requests and answers are refused (replays). */
export const isFresh = (timestamp: string | undefined, now: Date): boolean =>
  /^\d{1,12}$/.test(timestamp ?? '') && Math.abs(unix(now) - Number(timestamp)) <= ANSWER_WINDOW_S;

/** A request form's parameters once they are single text values, unambiguous and signed with the key (the gateway's side). */
export function signedRequestParams(form: Record<string, unknown>, secret: string): Checked<Record<string, string>> {
  const params: Record<string, string> = {};
  for (const [key, value] of Object.entries(form)) {
    if (typeof value !== 'string') return { ok: false, reason: 'malformed', message: `${key} must be a single text value` };
    params[key] = value;
  }
  const ambiguity = ambiguityOf(params);
  if (ambiguity) return { ok: false, reason: 'malformed', message: ambiguity };
  const signType = signTypeOf(params.sign_type);
  if (!signType) return { ok: false, reason: 'malformed', message: 'sign_type must be MD5 or HMAC-SHA256' };
  if (!params.sign || !verifySign(params, secret, signType, params.sign)) return { ok: false, reason: 'bad_signature', message: 'sign does not match' };
  return { ok: true, value: params };
}

/**
 * Checks a query request (the gateway's side): signature, window, and an order number. `refundNo` is set when
 * the request asks about a refund of the order (refund-protocol.ts).
 */
export function verifyQueryRequest(form: Record<string, unknown>, secret: string, now: Date): Checked<{ orderNo: string; refundNo: string | null }> {
  const checked = signedRequestParams(form, secret);
  if (!checked.ok) return checked;
  const params = checked.value;
  if (!params.order_no) return { ok: false, reason: 'malformed', message: 'order_no is required' };
  if (!isFresh(params.timestamp, now)) return { ok: false, reason: 'stale', message: `timestamp must be unix seconds within ${ANSWER_WINDOW_S} s of now` };
  return { ok: true, value: { orderNo: params.order_no, refundNo: params.refund_no || null } };
}

/** The signed JSON answer (the gateway's side). */
export function signQueryAnswer(fields: QueryAnswerFields, secret: string, now: Date, signType: SignType = 'HMAC-SHA256'): string {
  return signAnswer(fields, secret, now, signType);
}

/** Any answer of the generic protocols: the non-empty fields with a timestamp, signed, as JSON. */
export function signAnswer(fields: object, secret: string, now: Date, signType: SignType = 'HMAC-SHA256'): string {
  const body: Record<string, string> = { ...stripEmpty(fields), timestamp: String(unix(now)), sign_type: signType };
  return JSON.stringify({ ...body, sign: computeSign(body, secret, signType) });
}

function stripEmpty(fields: object): Record<string, string> {
  return Object.fromEntries(Object.entries(fields).filter(([, v]) => v !== undefined && v !== '')) as Record<string, string>;
}

/** An answer's fields once it is a JSON object of flat values signed with the key (the asker's side). */
export function signedAnswerParams(text: string, secret: string): Checked<Record<string, string>> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    return { ok: false, reason: 'malformed', message: 'the answer is not JSON' };
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed))
    return { ok: false, reason: 'malformed', message: 'the answer is not a JSON object' };
  const params: Record<string, string> = {};
  for (const [key, value] of Object.entries(parsed)) {
    if (value === null) continue;
    // Numbers are signed as JSON writes them, like the outbound notifications.
    if (typeof value === 'string' || typeof value === 'number' || typeof value === 'boolean') params[key] = String(value);
    else return { ok: false, reason: 'malformed', message: `${key} must be a flat value` };
  }
  const signType = signTypeOf(params.sign_type);
  if (!params.sign) return { ok: false, reason: 'bad_signature', message: 'the answer is not signed' };
  if (!signType) return { ok: false, reason: 'malformed', message: 'sign_type must be MD5 or HMAC-SHA256' };
  const ambiguity = ambiguityOf(params);
  if (ambiguity) return { ok: false, reason: 'malformed', message: ambiguity };
  if (!verifySign(params, secret, signType, params.sign)) return { ok: false, reason: 'bad_signature', message: 'the answer signature does not match' };
  return { ok: true, value: params };
}

/** Checks an answer (the asker's side): JSON object of flat values, signed, fresh, about the order asked. */
export function verifyQueryAnswer(text: string, secret: string, orderNo: string, now: Date): Checked<QueryAnswerFields> {
  const checked = signedAnswerParams(text, secret);
  if (!checked.ok) return checked;
  const params = checked.value;
  if (params.order_no !== orderNo) return { ok: false, reason: 'malformed', message: `the answer is about order ${params.order_no ?? '?'}, not ${orderNo}` };
  if (!isFresh(params.timestamp, now)) return { ok: false, reason: 'stale', message: `the answer's timestamp is not within ${ANSWER_WINDOW_S} s of now` };
  const status = params.status as QueryStatus;
  if (!QUERY_STATUSES.includes(status))
    return { ok: false, reason: 'malformed', message: `status ${JSON.stringify(params.status)} is not one of ${QUERY_STATUSES.join(', ')}` };
  if (status === 'success' && (!params.transaction_id || !params.amount))
    return { ok: false, reason: 'malformed', message: 'a success answer needs transaction_id and amount' };
  return {
    ok: true,
    value: { order_no: orderNo, status, amount: params.amount, currency: params.currency, transaction_id: params.transaction_id },
  };
}
