import Stripe from 'stripe';
import { z } from 'zod';
import { stripeAmountDecimal, stripeExponent } from '../../callbacks/gateways/stripe-amount.ts';
import { stripeRefundFailure } from '../../callbacks/gateways/stripe-refund.ts';
import { formatAmount, parseAmount } from '../../shared/money.ts';
import { excerptOf, GatewayCallError, type RefundAnswer, type RefundClient, type RefundTarget } from '../gateway-client.ts';

/** stripe.client.ts's call: one SDK call bound to the signal, failures thrown as GatewayCallError unless `expected` answers them. */
export type StripeCall = <T>(what: string, signal: AbortSignal, run: (stripe: Stripe) => Promise<T>, expected?: (err: unknown) => T | undefined) => Promise<T>;

const PAGE_LIMIT = 100;
const MAX_PAGES = 10;
/** Stripe may prune an idempotency key once it is 24 hours old: a refund older than this is looked for before it is sent again. */
const KEY_SAFE_MS = 20 * 3_600_000;
const PAYMENT_INTENT_ID = /^pi_[A-Za-z0-9_]{1,120}$/;
const SESSION_ID = /^cs_[A-Za-z0-9_]{1,200}$/;

const refundSchema = z.object({
  id: z.string().regex(/^[\x21-\x7e]{1,128}$/, 'must be 1-128 printable ASCII characters'),
  object: z.literal('refund'),
  amount: z.number().int().positive().max(1e15),
  currency: z.string().regex(/^[A-Za-z]{3}$/, 'must be a three-letter ISO 4217 code'),
  status: z.string().nullable(),
  metadata: z.record(z.string(), z.string()).nullable(),
  payment_intent: z.union([z.string(), z.object({ id: z.string() }).loose()]).nullable(),
  failure_reason: z.string().nullish(),
});
type Refund = z.infer<typeof refundSchema> & { raw: Record<string, unknown> };

const listSchema = z.object({ object: z.literal('list'), data: z.array(z.unknown()), has_more: z.boolean() });

const isMissing = (err: unknown) => err instanceof Stripe.errors.StripeInvalidRequestError && err.code === 'resource_missing';
const malformed = (message: string, value?: unknown) =>
  new GatewayCallError('malformed', message, value === undefined ? undefined : excerptOf(JSON.stringify(value) ?? ''));

/** Our minor units in Stripe's smallest unit for the currency, or null when Stripe's unit cannot express them (12.34 MGA). */
function toStripeUnits(minor: number, currency: string): number | null {
  const [whole, fraction = ''] = formatAmount(minor, currency).split('.');
  const exponent = stripeExponent(currency);
  if (fraction.replace(/0+$/, '').length > exponent) return null;
  return Number(`${whole}${fraction.padEnd(exponent, '0').slice(0, exponent)}`);
}

/** A refund from an answer, checked; it must be ours (metadata.refund_no) and, when known, of our PaymentIntent. */
function readRefund(value: unknown, target: RefundTarget, intentId?: string): Refund {
  const parsed = refundSchema.safeParse(value);
  if (!parsed.success) throw malformed(`Invalid refund: ${parsed.error.issues.map((i) => `${i.path.join('.')} ${i.message}`).join('; ')}`, value);
  const refund = { ...parsed.data, raw: value as Record<string, unknown> };
  const named = refund.metadata?.refund_no;
  if (named !== target.refundNo) throw malformed(`Refund ${refund.id} is for refund_no ${String(named).slice(0, 64)}, not ${target.refundNo}`, value);
  const intent = typeof refund.payment_intent === 'string' ? refund.payment_intent : refund.payment_intent?.id;
  if (intentId && intent !== intentId) throw malformed(`Refund ${refund.id} is of PaymentIntent ${String(intent).slice(0, 64)}, not ${intentId}`, value);
  return refund;
}

/** The fields kept as evidence. */
function evidenceOf(refund: Refund): Record<string, unknown> {
  const keep = [
    'id',
    'object',
    'status',
    'amount',
    'currency',
    'failure_reason',
    'pending_reason',
    'payment_intent',
    'charge',
    'metadata',
    'reason',
    'created',
  ];
  return Object.fromEntries(keep.filter((k) => k in refund.raw).map((k) => [k, refund.raw[k]]));
}

/** succeeded → succeeded (amount back in our minor units); failed, canceled → failed; pending, requires_action (or a new status) → pending. */
function answerOf(refund: Refund): RefundAnswer {
  const fields = evidenceOf(refund);
  const gatewayRefundId = refund.id;
  if (refund.status === 'succeeded') {
    const currency = refund.currency.toUpperCase();
    const parsed = parseAmount(stripeAmountDecimal(refund.amount, currency), currency);
    if (!parsed.ok) throw malformed(`Refund ${refund.id}: amount ${refund.amount} ${currency} ${parsed.message}`, refund.raw);
    return { state: 'succeeded', gatewayRefundId, amountMinor: parsed.minor, currency, fields };
  }
  if (refund.status === 'failed' || refund.status === 'canceled') return { state: 'failed', gatewayRefundId, reason: stripeRefundFailure(refund), fields };
  return { state: 'pending', gatewayRefundId, gatewayStatus: String(refund.status), fields };
}

/** Stripe's 400/404 invalid_request_error (charge_already_refunded, amount_too_large, …): no refund was made. Idempotency and rate-limit errors are other classes. */
function refusal(err: unknown): RefundAnswer | undefined {
  if (!(err instanceof Stripe.errors.StripeInvalidRequestError) || (err.statusCode !== 400 && err.statusCode !== 404)) return undefined;
  const error = { type: err.rawType ?? err.type, code: err.code, param: err.param, message: err.message.slice(0, 500) };
  return { state: 'failed', gatewayRefundId: null, reason: `${err.code ?? error.type}: ${err.message.slice(0, 200)}`, fields: { error } };
}

/** Stripe Refunds on the order's PaymentIntent, through the SDK calls of stripe.client.ts. */
export function createStripeRefunds(call: StripeCall): RefundClient {
  /** The PaymentIntent the refund is made on, or why there is none (a Checkout Session is asked for its intent). */
  async function intentOf(target: RefundTarget, signal: AbortSignal): Promise<{ id: string } | { none: string }> {
    const id = target.transactionId;
    if (id && PAYMENT_INTENT_ID.test(id)) return { id };
    if (!id || !SESSION_ID.test(id))
      return { none: `${id === null ? 'no transaction' : `transaction ${id.slice(0, 64)}`} names no PaymentIntent or Checkout Session` };
    const session = await call(
      `GET checkout/sessions/${id}`,
      signal,
      async (stripe) => (await stripe.checkout.sessions.retrieve(id)) as unknown,
      (err) => (isMissing(err) ? null : undefined),
    );
    if (session === null) return { none: `Stripe does not know Checkout Session ${id}` };
    const intent = (session as { payment_intent?: unknown }).payment_intent;
    const intentId = typeof intent === 'object' && intent !== null ? (intent as { id?: unknown }).id : intent;
    if (typeof intentId === 'string' && PAYMENT_INTENT_ID.test(intentId)) return { id: intentId };
    return { none: `Checkout Session ${id} has no PaymentIntent` };
  }

  /** The PaymentIntent's refunds whose metadata.refund_no is ours (none when Stripe does not know the intent). */
  async function ours(intentId: string, target: RefundTarget, signal: AbortSignal): Promise<Refund[]> {
    const found: Refund[] = [];
    let after: string | undefined;
    for (let n = 0; n < MAX_PAGES; n++) {
      const params = { payment_intent: intentId, limit: PAGE_LIMIT, ...(after ? { starting_after: after } : {}) };
      const page = await call(
        'GET refunds',
        signal,
        async (stripe) => listSchema.safeParse(await stripe.refunds.list(params)),
        (err) => (isMissing(err) ? null : undefined),
      );
      if (page === null) return [];
      if (!page.success) throw malformed('the refund list answer is not a list', page.error.issues);
      for (const item of page.data.data) {
        const metadata = (item as { metadata?: unknown } | null)?.metadata;
        if ((metadata as Record<string, unknown> | null | undefined)?.refund_no === target.refundNo) found.push(readRefund(item, target, intentId));
      }
      if (!page.data.has_more) return found;
      after = (page.data.data.at(-1) as { id?: unknown } | undefined)?.id as string | undefined;
      if (typeof after !== 'string') throw malformed('the refund list has more refunds but its last one has no id');
    }
    throw malformed(`more than ${MAX_PAGES * PAGE_LIMIT} refunds on PaymentIntent ${intentId}`);
  }

  /** Our refund among the found ones: two with one refund_no would mean the money moved twice, which only an operator can settle. */
  function single(found: Refund[], target: RefundTarget): Refund | undefined {
    if (found.length > 1) throw malformed(`${found.length} refunds at Stripe name refund_no ${target.refundNo}: ${found.map((r) => r.id).join(', ')}`);
    return found[0];
  }

  return {
    async refund(target, signal) {
      const intent = await intentOf(target, signal);
      if ('none' in intent) return { state: 'failed', gatewayRefundId: null, reason: intent.none, fields: { transaction_id: target.transactionId } };
      const amount = toStripeUnits(target.amountMinor, target.currency);
      if (amount === null) {
        const reason = `${formatAmount(target.amountMinor, target.currency)} ${target.currency} has no amount in Stripe's unit for ${target.currency}`;
        return { state: 'failed', gatewayRefundId: null, reason, fields: { payment_intent: intent.id } };
      }
      if (Date.now() - target.createdAt.getTime() > KEY_SAFE_MS) {
        const existing = single(await ours(intent.id, target, signal), target);
        if (existing) return answerOf(existing);
      }
      const reason = target.reason ? Array.from(target.reason).slice(0, 500).join('') : '';
      const metadata = { order_no: target.orderNo, refund_no: target.refundNo, ...(reason ? { reason } : {}) };
      // Stripe's `reason` is an enum: our words go in metadata. The key makes a repeat (ours or the SDK's) refund once.
      const params = { payment_intent: intent.id, amount, metadata };
      return call(
        'POST refunds',
        signal,
        async (stripe) => answerOf(readRefund(await stripe.refunds.create(params, { idempotencyKey: target.refundNo }), target, intent.id)),
        refusal,
      );
    },

    async queryRefund(target, signal) {
      const id = target.gatewayRefundId;
      if (id) {
        const what = `GET refunds/${id}`;
        const known = await call(
          what,
          signal,
          async (stripe) => (await stripe.refunds.retrieve(id)) as unknown,
          (err) => (isMissing(err) ? null : undefined),
        );
        if (known !== null) {
          const refund = readRefund(known, target);
          if (refund.id !== id) throw malformed(`${what}: the answer is refund ${refund.id}`);
          return answerOf(refund);
        }
      }
      const intent = await intentOf(target, signal);
      if ('none' in intent)
        return { state: 'not_found', gatewayStatus: 'no_payment_intent', fields: { transaction_id: target.transactionId, reason: intent.none } };
      const found = single(await ours(intent.id, target, signal), target);
      if (found) return answerOf(found);
      return { state: 'not_found', gatewayStatus: 'no_refund', fields: { payment_intent: intent.id, refund_no: target.refundNo } };
    },
  };
}
