import { isOrderNo, ORDER_NO_RULE } from '../../orders/order-number.ts';
import type { RefundResult, Verification } from './gateway.ts';
import { stripeAmountDecimal } from './stripe-amount.ts';

type Json = Record<string, unknown>;

/** refund.* events carry a refund; charge.refunded a charge whose `refunds` list holds them (when the API version includes it). */
export const REFUND_EVENTS: ReadonlySet<string> = new Set(['refund.created', 'refund.updated', 'refund.failed', 'charge.refunded']);

const STRIPE_ID = /^[\x21-\x7e]{1,128}$/;
const MAX_AMOUNT = 1e15;

const isObject = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);
const present = (v: unknown) => v !== undefined && v !== null && v !== '';
const malformed = (message: string, claimedOrderNo?: string): Verification => ({
  ok: false,
  rejection: { verdict: 'malformed', code: 'validation_failed', message, claimedOrderNo },
});
const ignore = (message: string, claimedOrderNo: string | undefined, fields: Json): Verification => ({ ok: 'ignored', message, claimedOrderNo, fields });

/**
 * Stripe's refund statuses (stripe-node Refund.status): succeeded; failed and canceled moved no money; pending and
 * requires_action (the customer must act) are still under way, as is a status Stripe may add later: recorded, nothing changes.
 */
function outcomeOf(status: unknown): RefundResult['outcome'] {
  if (status === 'succeeded') return 'succeeded';
  if (status === 'failed' || status === 'canceled') return 'failed';
  return 'pending';
}

/** Stripe's failure_reason (lost_or_stolen_card, expired_or_canceled_card, …), or the status when it gives none; the refund client words it alike. */
export function stripeRefundFailure(refund: { status?: unknown; failure_reason?: unknown }): string {
  return typeof refund.failure_reason === 'string' && refund.failure_reason !== '' ? refund.failure_reason.slice(0, 200) : String(refund.status);
}

type Read = { ok: true; result: RefundResult } | { ok: false; verification: Verification } | { ok: 'foreign' };

/** One refund object; `foreign` when its metadata names no refund of ours (made in the Dashboard or by another app). */
function readRefund(refund: Json, eventId: string, fields: Json, chargeOrderNo: string | undefined): Read {
  const fail = (message: string): Read => ({ ok: false, verification: malformed(message, chargeOrderNo) });
  if (refund.object !== undefined && refund.object !== 'refund') return fail('A refund event must carry refund objects');
  const metadata = isObject(refund.metadata) ? refund.metadata : {};
  if (!present(metadata.refund_no)) return { ok: 'foreign' };
  if (!isOrderNo(metadata.refund_no)) return fail(`metadata.refund_no ${ORDER_NO_RULE}`);
  if (present(metadata.order_no) && !isOrderNo(metadata.order_no)) return fail(`metadata.order_no ${ORDER_NO_RULE}`);
  const orderNo = isOrderNo(metadata.order_no) ? metadata.order_no : chargeOrderNo;
  const { id, amount, currency, status } = refund;
  if (typeof id !== 'string' || !STRIPE_ID.test(id)) return fail('The refund has no usable id');
  if (typeof amount !== 'number' || !Number.isSafeInteger(amount) || amount < 0 || amount > MAX_AMOUNT)
    return fail('The refund amount must be a non-negative integer in the smallest currency unit');
  if (typeof currency !== 'string' || !/^[A-Za-z]{3}$/.test(currency)) return fail('The refund currency must be a three-letter ISO 4217 code');
  const upper = currency.toUpperCase();
  const outcome = outcomeOf(status);
  const result: RefundResult = {
    ...(orderNo ? { orderNo } : {}),
    refundNo: metadata.refund_no,
    gatewayRefundId: id,
    amount: { kind: 'decimal', value: stripeAmountDecimal(amount, upper) },
    currency: upper,
    outcome,
    ...(outcome === 'failed' ? { failureReason: stripeRefundFailure(refund) } : {}),
    eventKey: eventId,
    fields,
  };
  return { ok: true, result };
}

/**
 * A verified refund event as refund results. Every result carries the event id as eventKey: several refunds of one
 * charge.refunded share it, so the replay guard is to be kept per event, not per result.
 */
export function mapRefundEvent(event: Json, type: string, object: Json, eventId: string): Verification {
  if (type !== 'charge.refunded') {
    const read = readRefund(object, eventId, event, undefined);
    if (read.ok === 'foreign') {
      const name = typeof object.id === 'string' ? ` ${object.id.slice(0, 128)}` : '';
      return ignore(`${type}${name} names no refund (metadata.refund_no); not a refund of this service`, undefined, event);
    }
    return read.ok ? { ok: 'refund', refunds: [read.result] } : read.verification;
  }
  if (object.object !== undefined && object.object !== 'charge') return malformed('charge.refunded must carry a charge object');
  const chargeMetadata = isObject(object.metadata) ? object.metadata : {};
  const chargeOrderNo = isOrderNo(chargeMetadata.order_no) ? chargeMetadata.order_no : undefined;
  const chargeId = typeof object.id === 'string' ? object.id.slice(0, 128) : 'charge';
  const list = isObject(object.refunds) ? object.refunds.data : undefined;
  // Since API version 2022-11-15 a charge no longer embeds its refunds: refund.updated and the refund query settle them.
  if (!Array.isArray(list)) return ignore(`charge.refunded for ${chargeId} lists no refunds; acknowledged and ignored`, chargeOrderNo, event);
  const { data: _data, ...envelope } = event;
  const charge = { id: object.id, object: 'charge', amount: object.amount, amount_refunded: object.amount_refunded, metadata: object.metadata };
  const refunds: RefundResult[] = [];
  for (const item of list) {
    if (!isObject(item)) return malformed('charge.refunded lists a refund that is not an object', chargeOrderNo);
    const read = readRefund(item, eventId, { ...envelope, data: { object: item }, charge }, chargeOrderNo);
    if (read.ok === false) return read.verification;
    if (read.ok === true) refunds.push(read.result);
  }
  if (refunds.length === 0) return ignore(`charge.refunded for ${chargeId} names no refund of this service (metadata.refund_no)`, chargeOrderNo, event);
  return { ok: 'refund', refunds };
}
