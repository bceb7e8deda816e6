import { createHmac, timingSafeEqual } from 'node:crypto';
import type { Response } from 'express';
import { isOrderNo, ORDER_NO_RULE } from '../../orders/order-number.ts';
import type { ErrorCode } from '../../shared/errors.ts';
import { swallowsPair } from '../../shared/signing.ts';
import type { CallbackOutcome, CallbackRequest, GatewayAdapter, PaymentOutcome, PaymentResult, Rejection, Verification } from './gateway.ts';
import { stripeAmountDecimal } from './stripe-amount.ts';
import { mapRefundEvent, REFUND_EVENTS } from './stripe-refund.ts';

/** Stripe's own libraries refuse a signature whose `t` is more than 300 s old; we also refuse one 300 s ahead. */
export const STRIPE_TOLERANCE_S = 300;

export interface StripeConfig {
  /** The endpoint's signing secret (`whsec_…`), used as the HMAC key exactly as written. */
  webhookSecret: string;
}

/** Answered 400 as Stripe expects: bad or missing signature, stale timestamp, malformed event. */
const BAD_REQUEST_CODES: ReadonlySet<ErrorCode> = new Set<ErrorCode>(['bad_signature', 'replayed', 'validation_failed']);

/** Stripe ids (evt_…, pi_…, cs_…) are printable ASCII; our columns hold 128 characters. */
const STRIPE_ID = /^[\x21-\x7e]{1,128}$/;
const MAX_AMOUNT = 1e15;

type Json = Record<string, unknown>;

const isObject = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);
const reject = (rejection: Rejection): Verification => ({ ok: false, rejection });
const ignore = (message: string, claimedOrderNo: string | undefined, fields: Json): Verification => ({ ok: 'ignored', message, claimedOrderNo, fields });

function header(headers: CallbackRequest['headers'], name: string): string | undefined {
  const value = headers[name];
  return typeof value === 'string' ? value : undefined;
}

export interface SignatureHeader {
  timestamp: number;
  v1: string[];
}

/**
 * `t=<unix seconds>,v1=<hex>[,v1=<hex>…][,v0=…]`: several v1 values appear while a secret is being rolled.
 * Other schemes (v0 is the test-mode legacy one) are ignored, as Stripe's libraries do.
 */
export function parseSignatureHeader(value: string): SignatureHeader | null {
  let timestamp: number | undefined;
  const v1: string[] = [];
  for (const item of value.split(',')) {
    const eq = item.indexOf('=');
    if (eq <= 0) continue;
    const key = item.slice(0, eq).trim();
    const val = item.slice(eq + 1).trim();
    if (key === 't') {
      if (timestamp !== undefined || !/^\d{1,12}$/.test(val)) return null;
      timestamp = Number(val);
    } else if (key === 'v1') {
      v1.push(val);
    }
  }
  return timestamp === undefined || v1.length === 0 ? null : { timestamp, v1 };
}

/** Any v1 equal to hex(hmac_sha256(secret, "<t>.<raw body bytes>")), compared in constant time. */
function signatureMatches(secret: string, parsed: SignatureHeader, rawBody: Buffer): boolean {
  const expected = createHmac('sha256', secret).update(`${parsed.timestamp}.`).update(rawBody).digest();
  let found = false;
  for (const candidate of parsed.v1) {
    if (!/^[0-9a-fA-F]{64}$/.test(candidate)) continue;
    if (timingSafeEqual(expected, Buffer.from(candidate, 'hex'))) found = true;
  }
  return found;
}

/** metadata.order_no wins over client_reference_id: it names our field, while client_reference_id may hold a customer or cart id. */
function orderReference(object: Json, allowClientReference: boolean): unknown {
  const metadata = isObject(object.metadata) ? object.metadata : {};
  const fromMetadata = metadata.order_no;
  if (fromMetadata !== undefined && fromMetadata !== null && fromMetadata !== '') return fromMetadata;
  const reference = allowClientReference ? object.client_reference_id : undefined;
  return reference === null || reference === '' ? undefined : reference;
}

/** The order an (unverified) body claims, recorded for operators with a rejection. */
function claimedOrderNo(body: unknown): string | undefined {
  if (!isObject(body) || !isObject(body.data) || !isObject(body.data.object)) return undefined;
  const value = orderReference(body.data.object, true);
  return isOrderNo(value) ? value : undefined;
}

interface Mapping {
  outcome: PaymentOutcome;
  /** Field holding the amount in the smallest unit. */
  amountField: string;
  /** checkout.session events may name the order in client_reference_id. */
  session: boolean;
}

/** The payment event types that move an order (refund events: stripe-refund.ts); every other type is acknowledged and ignored. */
const HANDLED: Readonly<Record<string, Mapping>> = {
  'checkout.session.completed': { outcome: 'paid', amountField: 'amount_total', session: true },
  // Delayed payment methods (bank debits, vouchers) complete the session unpaid, then send one of these.
  'checkout.session.async_payment_succeeded': { outcome: 'paid', amountField: 'amount_total', session: true },
  'checkout.session.async_payment_failed': { outcome: 'failed', amountField: 'amount_total', session: true },
  'payment_intent.succeeded': { outcome: 'paid', amountField: 'amount_received', session: false },
  'payment_intent.payment_failed': { outcome: 'failed', amountField: 'amount', session: false },
};

/** Maps a verified event to a payment or refund result, or to an ignore / malformed verdict. */
function mapEvent(event: Json): Verification {
  const object = isObject(event.data) && isObject(event.data.object) ? event.data.object : undefined;
  const id = event.id;
  const type = event.type;
  if (typeof id !== 'string' || !STRIPE_ID.test(id) || typeof type !== 'string' || object === undefined) {
    return reject({
      verdict: 'malformed',
      code: 'validation_failed',
      message: 'The event must have an id, a type and data.object',
      claimedOrderNo: claimedOrderNo(event),
    });
  }
  if (REFUND_EVENTS.has(type)) return mapRefundEvent(event, type, object, id);
  const mapping = HANDLED[type];
  if (!mapping) return ignore(`Stripe event ${type.slice(0, 128)} is not handled; acknowledged and ignored`, claimedOrderNo(event), event);

  const expectedObject = mapping.session ? 'checkout.session' : 'payment_intent';
  if (object.object !== undefined && object.object !== expectedObject) {
    return reject({ verdict: 'malformed', code: 'validation_failed', message: `${type} must carry a ${expectedObject} object` });
  }
  const reference = orderReference(object, mapping.session);
  const where = mapping.session ? 'metadata.order_no or client_reference_id' : 'metadata.order_no';
  // Payments made outside this service (other apps, subscriptions, the intent behind a Checkout session)
  // share the account's webhook: without an order number they are not ours, and a 4xx would only make
  // Stripe retry them for days and flag the endpoint as failing.
  if (reference === undefined) {
    const name = typeof object.id === 'string' ? `${type} ${object.id.slice(0, 128)}` : type;
    return ignore(`${name} names no order (${where}); not a payment of this service`, undefined, event);
  }
  if (!isOrderNo(reference)) {
    return reject({ verdict: 'malformed', code: 'validation_failed', message: `${where} ${ORDER_NO_RULE}` });
  }
  const orderNo = reference;

  if (type === 'checkout.session.completed' && object.payment_status !== undefined && object.payment_status !== 'paid') {
    // `unpaid`: a delayed payment method, async_payment_succeeded follows; `no_payment_required`: nothing was charged.
    return ignore(`Checkout session for order ${orderNo} completed with payment_status ${String(object.payment_status)}; nothing to apply yet`, orderNo, event);
  }

  const objectId = object.id;
  const intent = isObject(object.payment_intent) ? object.payment_intent.id : object.payment_intent;
  const transactionId = mapping.session ? (intent ?? objectId) : objectId;
  if (typeof transactionId !== 'string' || !STRIPE_ID.test(transactionId) || swallowsPair(transactionId)) {
    return reject({
      verdict: 'malformed',
      code: 'validation_failed',
      message: `${type} has no usable ${mapping.session ? 'payment_intent or session id' : 'payment intent id'}`,
      claimedOrderNo: orderNo,
    });
  }
  const amount = object[mapping.amountField];
  if (typeof amount !== 'number' || !Number.isSafeInteger(amount) || amount < 0 || amount > MAX_AMOUNT) {
    return reject({
      verdict: 'malformed',
      code: 'validation_failed',
      message: `${mapping.amountField} must be a non-negative integer amount in the smallest currency unit`,
      claimedOrderNo: orderNo,
    });
  }
  const currency = object.currency;
  if (typeof currency !== 'string' || !/^[A-Za-z]{3}$/.test(currency)) {
    return reject({ verdict: 'malformed', code: 'validation_failed', message: 'currency must be a three-letter ISO 4217 code', claimedOrderNo: orderNo });
  }
  const upper = currency.toUpperCase();
  const result: PaymentResult = {
    orderNo,
    transactionId,
    amount: { kind: 'decimal', value: stripeAmountDecimal(amount, upper) },
    currency: upper,
    outcome: mapping.outcome,
    eventKey: id,
    unordered: true,
    fields: event,
  };
  return { ok: true, result };
}

/** Stripe webhooks: `Stripe-Signature` HMAC over the exact body, event id as idempotency key. */
export function createStripeGateway(config: StripeConfig): GatewayAdapter {
  const secret = config.webhookSecret;
  return {
    name: 'stripe',
    verify({ params, rawBody, headers, now }: CallbackRequest): Verification {
      const claimed = claimedOrderNo(params);
      const value = header(headers, 'stripe-signature');
      if (!value)
        return reject({ verdict: 'bad_signature', code: 'bad_signature', message: 'The Stripe-Signature header is missing', claimedOrderNo: claimed });
      const parsed = parseSignatureHeader(value);
      if (!parsed)
        return reject({
          verdict: 'bad_signature',
          code: 'bad_signature',
          message: 'The Stripe-Signature header must be t=<timestamp>,v1=<signature>',
          claimedOrderNo: claimed,
        });
      if (!rawBody || rawBody.length === 0) {
        return reject({
          verdict: 'malformed',
          code: 'validation_failed',
          message: 'The body must be the JSON event Stripe sent, as application/json',
          claimedOrderNo: claimed,
        });
      }
      if (!signatureMatches(secret, parsed, rawBody)) {
        return reject({
          verdict: 'bad_signature',
          code: 'bad_signature',
          message: 'No v1 signature matches the body and the webhook signing secret',
          claimedOrderNo: claimed,
        });
      }
      const skew = Math.floor(now.getTime() / 1000) - parsed.timestamp;
      if (Math.abs(skew) > STRIPE_TOLERANCE_S) {
        return reject({
          verdict: 'replayed',
          code: 'replayed',
          message: `The signature timestamp is ${Math.abs(skew)} s ${skew > 0 ? 'old' : 'ahead'}; at most ${STRIPE_TOLERANCE_S} s is accepted`,
          claimedOrderNo: claimed,
        });
      }
      // Only now is the body trusted, and it is read from the verified bytes, never from what a parser made of them.
      let event: unknown;
      try {
        event = JSON.parse(rawBody.toString('utf8'));
      } catch {
        return reject({ verdict: 'malformed', code: 'validation_failed', message: 'The body is not valid JSON', claimedOrderNo: claimed });
      }
      if (!isObject(event))
        return reject({ verdict: 'malformed', code: 'validation_failed', message: 'The body must be a Stripe event object', claimedOrderNo: claimed });
      return mapEvent(event);
    },
    acknowledge(res: Response, outcome: CallbackOutcome) {
      if (outcome.status >= 200 && outcome.status < 300) {
        res.status(200).json({ received: true });
        return;
      }
      // Stripe's contract: 400 for a request that is not a valid, current, well-formed event (decided on the
      // code, which a storage failure sets to `unavailable` whatever its verdict). Everything else keeps our
      // status (403, 404 unknown order, 409 amount mismatch / invalid state, 503), and Stripe retries it.
      const badRequest = outcome.code !== undefined && BAD_REQUEST_CODES.has(outcome.code);
      res.status(badRequest ? 400 : outcome.status).json({ error: outcome.message });
    },
  };
}
