import Stripe from 'stripe';
import { describe, expect, it } from 'vitest';
import type { RefundResult, Verification } from '../src/callbacks/gateways/gateway.ts';
import { createStripeGateway, STRIPE_TOLERANCE_S } from '../src/callbacks/gateways/stripe.ts';

/*
 * Refund webhooks at the adapter: refund.created / refund.updated / refund.failed carry a refund, charge.refunded a
 * charge with its refunds. Signed by the official SDK, which also says whether it accepts the same bytes.
 */

const SECRET = 'whsec_test_refunds_0123456789abcdefABCDEF';
const OTHER_SECRET = 'whsec_test_another_endpoint_secret_987654';
const stripe = new Stripe('sk_test_not_used_offline');
const gateway = createStripeGateway({ webhookSecret: SECRET });

const nowS = () => Math.floor(Date.now() / 1000);
let seq = 0;

function eventPayload(type: string, object: Record<string, unknown>, id = `evt_refund_${++seq}_${Date.now().toString(36)}`): string {
  return JSON.stringify(
    { id, object: 'event', api_version: '2026-10-28.endive', created: nowS(), data: { object }, livemode: false, pending_webhooks: 1, type },
    null,
    2,
  );
}

/** A refund as Stripe writes it, made by our client: metadata names the order and the refund. */
function refund(refundNo: string | null, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    id: `re_${refundNo ?? 'dashboard'}_x1`,
    object: 'refund',
    amount: 500,
    balance_transaction: 'txn_1',
    charge: 'ch_1',
    created: nowS(),
    currency: 'usd',
    metadata: refundNo === null ? {} : { order_no: 'ORDER-R1', refund_no: refundNo, reason: 'damaged' },
    payment_intent: 'pi_ORDER-R1',
    reason: null,
    status: 'succeeded',
    ...extra,
  };
}

function charge(refunds: Record<string, unknown>[] | undefined, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    id: 'ch_1',
    object: 'charge',
    amount: 1234,
    amount_refunded: 1234,
    currency: 'usd',
    metadata: { order_no: 'ORDER-R1' },
    payment_intent: 'pi_ORDER-R1',
    refunded: true,
    ...(refunds ? { refunds: { object: 'list', data: refunds, has_more: false, url: '/v1/charges/ch_1/refunds' } } : {}),
    ...extra,
  };
}

const sign = (payload: string, options: { secret?: string; timestamp?: number } = {}) =>
  stripe.webhooks.generateTestHeaderString({ payload, secret: options.secret ?? SECRET, timestamp: options.timestamp });

async function verify(payload: string, header: string | undefined, now = new Date()): Promise<Verification> {
  return gateway.verify({
    params: JSON.parse(payload) as Record<string, unknown>,
    rawBody: Buffer.from(payload),
    headers: header ? { 'stripe-signature': header } : {},
    now,
  });
}

async function mapped(type: string, object: Record<string, unknown>, id?: string) {
  const payload = eventPayload(type, object, id);
  return verify(payload, sign(payload));
}

function refundsOf(v: Verification): RefundResult[] {
  if (v.ok !== 'refund') throw new Error(`not a refund: ${JSON.stringify(v).slice(0, 300)}`);
  return v.refunds;
}

function expectRejected(v: Verification, verdict: string, code: string) {
  expect(v.ok).toBe(false);
  if (v.ok === false) expect(v.rejection).toMatchObject({ verdict, code });
}

const sdkAccepts = (payload: string, header: string, receivedAt?: number) => {
  try {
    stripe.webhooks.constructEvent(payload, header, SECRET, undefined, undefined, receivedAt);
    return true;
  } catch (err) {
    if (err instanceof Stripe.errors.StripeSignatureVerificationError) return false;
    throw err;
  }
};

describe('Stripe refund webhooks: mapping', () => {
  it('refund.updated succeeded → one refund result: refund_no, order, re_ id, amount in Stripe units, currency, event id', async () => {
    const payload = eventPayload('refund.updated', refund('RF-1'), 'evt_refund_updated_1');
    const header = sign(payload);
    expect(sdkAccepts(payload, header)).toBe(true);
    const [result, ...rest] = refundsOf(await verify(payload, header));
    expect(rest).toEqual([]);
    expect(result).toEqual({
      orderNo: 'ORDER-R1',
      refundNo: 'RF-1',
      gatewayRefundId: 're_RF-1_x1',
      amount: { kind: 'decimal', value: '5.00' },
      currency: 'USD',
      outcome: 'succeeded',
      eventKey: 'evt_refund_updated_1',
      fields: JSON.parse(payload),
    });
  });

  it('refund.failed → failed with failure_reason; canceled without one → failed with the status', async () => {
    const [failed] = refundsOf(await mapped('refund.failed', refund('RF-2', { status: 'failed', failure_reason: 'expired_or_canceled_card' })));
    expect(failed).toMatchObject({ refundNo: 'RF-2', outcome: 'failed', failureReason: 'expired_or_canceled_card' });
    const [canceled] = refundsOf(await mapped('refund.updated', refund('RF-3', { status: 'canceled' })));
    expect(canceled).toMatchObject({ outcome: 'failed', failureReason: 'canceled' });
  });

  it('pending, requires_action and a status Stripe may add later → pending (recorded, nothing settles); refund.created maps by its status', async () => {
    for (const status of ['pending', 'requires_action', 'some_future_status', null]) {
      const [result] = refundsOf(await mapped('refund.updated', refund('RF-4', { status })));
      expect(result).toMatchObject({ outcome: 'pending' });
      expect(result!.failureReason).toBeUndefined();
    }
    expect(refundsOf(await mapped('refund.created', refund('RF-5', { status: 'pending' })))[0]).toMatchObject({ outcome: 'pending' });
    expect(refundsOf(await mapped('refund.created', refund('RF-5', { status: 'succeeded' })))[0]).toMatchObject({ outcome: 'succeeded' });
  });

  it('charge.refunded settles each refund of ours in charge.refunds, all with the event id; others are left out', async () => {
    const event = 'evt_charge_refunded_1';
    const results = refundsOf(
      await mapped(
        'charge.refunded',
        charge([
          refund('RF-6', { amount: 734 }),
          refund(null, { amount: 100 }),
          refund('RF-7', { id: 're_7', status: 'pending', metadata: { refund_no: 'RF-7' } }),
        ]),
        event,
      ),
    );
    expect(results.map((r) => [r.refundNo, r.gatewayRefundId, r.amount, r.outcome, r.eventKey])).toEqual([
      ['RF-6', 're_RF-6_x1', { kind: 'decimal', value: '7.34' }, 'succeeded', event],
      ['RF-7', 're_7', { kind: 'decimal', value: '5.00' }, 'pending', event],
    ]);
    // The second names no order itself: the charge's metadata.order_no does.
    expect(results.map((r) => r.orderNo)).toEqual(['ORDER-R1', 'ORDER-R1']);
    expect(results[1]!.fields).toMatchObject({ id: event, type: 'charge.refunded', data: { object: { id: 're_7' } }, charge: { id: 'ch_1' } });
  });

  it('charge.refunded without a refunds list (API versions since 2022-11-15) or with none of ours → acknowledged and ignored', async () => {
    const bare = await mapped('charge.refunded', charge(undefined));
    expect(bare).toMatchObject({ ok: 'ignored', claimedOrderNo: 'ORDER-R1' });
    if (bare.ok === 'ignored') expect(bare.message).toContain('ch_1');
    expect(await mapped('charge.refunded', charge([refund(null)]))).toMatchObject({ ok: 'ignored' });
    expect(await mapped('charge.refunded', charge([]))).toMatchObject({ ok: 'ignored' });
  });

  it('a refund without metadata.refund_no (made in the Dashboard or by another app) is not ours: ignored', async () => {
    for (const metadata of [{}, { refund_no: '' }, { order_no: 'ORDER-R1' }]) {
      const v = await mapped('refund.updated', refund(null, { metadata }));
      expect(v.ok).toBe('ignored');
      if (v.ok === 'ignored') expect(v.message).toMatch(/names no refund/);
    }
  });

  it('Stripe units per currency: JPY whole, KWD three decimals, ISK two decimals at Stripe', async () => {
    for (const [currency, amount, value] of [
      ['jpy', 500, '500'],
      ['kwd', 1500, '1.500'],
      ['isk', 50000, '500.00'],
    ] as const) {
      const [result] = refundsOf(await mapped('refund.updated', refund('RF-8', { currency, amount })));
      expect(result).toMatchObject({ amount: { kind: 'decimal', value }, currency: currency.toUpperCase() });
    }
  });

  it.each([
    ['a refund_no that is not ours', 'refund.updated', refund(null, { metadata: { refund_no: 'bad refund!' } })],
    ['a non-string refund_no', 'refund.updated', refund(null, { metadata: { refund_no: 42 } })],
    ['a bad order_no', 'refund.updated', refund('RF-9', { metadata: { refund_no: 'RF-9', order_no: 'bad order!' } })],
    ['a missing id', 'refund.updated', refund('RF-9', { id: null })],
    ['a fractional amount', 'refund.failed', refund('RF-9', { amount: 1.5 })],
    ['a string amount', 'refund.updated', refund('RF-9', { amount: '500' })],
    ['a bad currency', 'refund.updated', refund('RF-9', { currency: 'dollars' })],
    ['another object', 'refund.updated', refund('RF-9', { object: 'charge' })],
    ['a charge that is not one', 'charge.refunded', { ...charge([refund('RF-9')]), object: 'refund' }],
    ['a refund list item that is not an object', 'charge.refunded', charge(['re_1' as unknown as Record<string, unknown>])],
    ['one bad refund among good ones', 'charge.refunded', charge([refund('RF-9'), refund('RF-10', { amount: -1 })])],
  ])('refuses a refund event with %s as malformed', async (_name, type, object) => {
    expectRejected(await mapped(type, object), 'malformed', 'validation_failed');
  });
});

describe('Stripe refund webhooks: signature and replay', () => {
  it('a refund event signed with another secret, or tampered with, is a bad signature (and the SDK agrees)', async () => {
    const payload = eventPayload('refund.updated', refund('RF-11'));
    const other = sign(payload, { secret: OTHER_SECRET });
    expect(sdkAccepts(payload, other)).toBe(false);
    expectRejected(await verify(payload, other), 'bad_signature', 'bad_signature');
    const header = sign(payload);
    const tampered = payload.replace('"amount": 500', '"amount": 50000');
    expect(tampered).not.toBe(payload);
    expect(sdkAccepts(tampered, header)).toBe(false);
    expectRejected(await verify(tampered, header), 'bad_signature', 'bad_signature');
    expectRejected(await verify(payload, undefined), 'bad_signature', 'bad_signature');
  });

  it(`a refund event signed more than ${STRIPE_TOLERANCE_S} s ago is replayed (as the SDK says), within tolerance it maps`, async () => {
    const payload = eventPayload('refund.updated', refund('RF-12'));
    const now = new Date();
    const t = Math.floor(now.getTime() / 1000);
    const stale = sign(payload, { timestamp: t - STRIPE_TOLERANCE_S - 1 });
    expect(sdkAccepts(payload, stale, now.getTime())).toBe(false);
    expectRejected(await verify(payload, stale, now), 'replayed', 'replayed');
    expect((await verify(payload, sign(payload, { timestamp: t - STRIPE_TOLERANCE_S + 1 }), now)).ok).toBe('refund');
  });

  it('the same event delivered twice maps to the same event key (the service’s replay guard makes the second a no-op)', async () => {
    const payload = eventPayload('charge.refunded', charge([refund('RF-13'), refund('RF-14', { id: 're_14' })]), 'evt_twice');
    const first = refundsOf(await verify(payload, sign(payload)));
    const second = refundsOf(await verify(payload, sign(payload)));
    expect(first).toEqual(second);
    expect(new Set(first.map((r) => r.eventKey))).toEqual(new Set(['evt_twice']));
  });

  it('a signed body that is not JSON, or an event without id, is malformed', async () => {
    const body = '{"id": "evt_1", "type": "refund.updated", ';
    expectRejected(
      await gateway.verify({ params: {}, rawBody: Buffer.from(body), headers: { 'stripe-signature': sign(body) }, now: new Date() }),
      'malformed',
      'validation_failed',
    );
    const noId = JSON.stringify({ object: 'event', type: 'refund.updated', data: { object: refund('RF-15') } });
    expectRejected(await verify(noId, sign(noId)), 'malformed', 'validation_failed');
  });

  it('payment events still map as payments beside refund events', async () => {
    const v = await mapped('payment_intent.succeeded', {
      id: 'pi_ORDER-P1',
      object: 'payment_intent',
      amount: 1234,
      amount_received: 1234,
      currency: 'usd',
      metadata: { order_no: 'ORDER-P1' },
      status: 'succeeded',
    });
    expect(v).toMatchObject({ ok: true, result: { orderNo: 'ORDER-P1', outcome: 'paid' } });
  });
});
