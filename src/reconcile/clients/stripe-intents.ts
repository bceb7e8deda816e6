import { z } from 'zod';
// The webhook adapter's amount convention, so that a query and a callback of one payment agree.
import { stripeAmountDecimal } from '../../callbacks/gateways/stripe-amount.ts';
import { swallowsPair } from '../../shared/signing.ts';
import { excerptOf, GatewayCallError, type QueryAnswer } from '../gateway-client.ts';

/** The statuses Stripe documents for a PaymentIntent; another one is not guessed at. */
const STATUSES = ['requires_payment_method', 'requires_confirmation', 'requires_action', 'processing', 'requires_capture', 'canceled', 'succeeded'] as const;
/** Stripe cancels these (and "in rare cases" processing, which it refuses otherwise: then the close is refused). */
export const CANCELABLE: ReadonlySet<string> = new Set(['requires_payment_method', 'requires_capture', 'requires_confirmation', 'requires_action']);

const amountInt = z.number().int().nonnegative().max(1e15);

const intentSchema = z.object({
  id: z
    .string()
    .regex(/^[\x21-\x7e]{1,128}$/, 'must be 1-128 printable ASCII characters')
    .refine((v) => !swallowsPair(v), 'must not contain "&" followed by a parameter name and "="'),
  object: z.literal('payment_intent'),
  status: z.enum(STATUSES),
  amount: amountInt,
  amount_received: amountInt,
  currency: z.string().regex(/^[A-Za-z]{3}$/, 'must be a three-letter ISO 4217 code'),
  livemode: z.boolean(),
  metadata: z.record(z.string(), z.string()),
  created: z.number().int().optional(),
  last_payment_error: z.object({ code: z.string().optional(), decline_code: z.string().optional(), type: z.string().optional() }).nullish(),
});
export type Intent = z.infer<typeof intentSchema> & { raw: Record<string, unknown> };

export const searchSchema = z.object({
  object: z.literal('search_result'),
  data: z.array(z.unknown()),
  has_more: z.boolean(),
  next_page: z.string().nullish(),
});

const issues = (error: z.ZodError) => error.issues.map((i) => `${i.path.join('.')} ${i.message}`).join('; ');

/** A PaymentIntent from an answer, checked; malformed otherwise. */
export function readIntent(value: unknown): Intent {
  const parsed = intentSchema.safeParse(value);
  if (!parsed.success) throw new GatewayCallError('malformed', `Invalid PaymentIntent: ${issues(parsed.error)}`, excerptOf(JSON.stringify(value) ?? ''));
  return { ...parsed.data, raw: value as Record<string, unknown> };
}

/** Stripe's search query language: a value in single quotes, with quotes and backslashes escaped by a backslash. */
export function stripeSearchQuery(orderNo: string): string {
  return `metadata['order_no']:'${orderNo.replace(/[\\']/g, (c) => `\\${c}`)}'`;
}

/** The fields kept as evidence: never client_secret (it lets a browser confirm the payment). */
export function evidenceOf(intent: Intent): Record<string, unknown> {
  const keep = ['id', 'object', 'status', 'amount', 'amount_received', 'currency', 'livemode', 'metadata', 'created', 'latest_charge', 'canceled_at'];
  const fields: Record<string, unknown> = Object.fromEntries(keep.filter((k) => k in intent.raw).map((k) => [k, intent.raw[k]]));
  const error = intent.raw.last_payment_error;
  if (error && typeof error === 'object') {
    const { code, decline_code, message, type } = error as Record<string, unknown>;
    fields.last_payment_error = { code, decline_code, message, type };
  }
  if (intent.raw.cancellation_reason) fields.cancellation_reason = intent.raw.cancellation_reason;
  return fields;
}

/**
 * Ours: metadata.order_no names the order; the remembered intent also when its metadata names none (a Checkout
 * session carried the order number in client_reference_id). An intent naming another order is never ours.
 */
export function oursOnly(intents: Iterable<Intent>, orderNo: string, reference: string | undefined): Intent[] {
  return [...intents].filter((i) => {
    const named = i.metadata.order_no;
    return named === orderNo || (i.id === reference && (named === undefined || named === ''));
  });
}

/** Any succeeded → paid (the remembered one first); else any live one → pending; only declined attempts → failed; all canceled → closed. */
export function answerOf(ours: Intent[], reference: string | undefined, liveKey: boolean): QueryAnswer {
  const succeeded = ours.filter((i) => i.status === 'succeeded');
  const won = succeeded.find((i) => i.id === reference) ?? succeeded[0];
  if (won) {
    const currency = won.currency.toUpperCase();
    const mismatch = won.livemode === liveKey ? undefined : `livemode ${won.livemode} does not match the ${liveKey ? 'live' : 'test'} secret key`;
    const fields = evidenceOf(won);
    if (succeeded.length > 1) fields.other_succeeded = succeeded.filter((i) => i !== won).map((i) => i.id);
    return {
      state: 'paid',
      transactionId: won.id,
      amount: { kind: 'decimal', value: stripeAmountDecimal(won.amount_received, currency) },
      currency,
      fields,
      ...(mismatch ? { mismatch } : {}),
    };
  }
  const fields = { payment_intents: ours.map(evidenceOf) };
  if (ours.length === 0) return { state: 'not_found', gatewayStatus: 'no_payment_intent', fields };
  const open = ours.filter((i) => i.status !== 'canceled');
  if (open.length === 0) return { state: 'closed', gatewayStatus: 'canceled', fields };
  const live = open.find((i) => !(i.status === 'requires_payment_method' && i.last_payment_error));
  if (live) return { state: 'pending', gatewayStatus: live.status, fields };
  return { state: 'failed', gatewayStatus: 'requires_payment_method', fields };
}
