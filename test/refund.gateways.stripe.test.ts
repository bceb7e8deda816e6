import { randomBytes } from 'node:crypto';
import Stripe from 'stripe';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { ENGINES } from './helpers/engines.ts';
import {
  expectFailedAndReleased,
  expectFullyRefundedOnce,
  expectLeftPending,
  expectSettledAfterUnknown,
  startRefundWorld,
  type RefundWorld,
} from './helpers/refund-gateways.ts';
import { sendStripeEvent, stripeDriver, stripeEvent, type GatewayDriver } from './helpers/reconcile.ts';
import { startStripeStandin, STRIPE_STANDIN_KEYS, stripeStandinEnv, type StandinBehaviour, type StripeStandin } from './helpers/stripe-standin.ts';

/*
 * Refunds end to end at Stripe: an order paid through a payment_intent.succeeded webhook, refunded through the API.
 * The stand-in checks the secret key on every request and keeps refunds with Stripe's Idempotency-Key semantics;
 * refund webhooks are signed by the official SDK with the endpoint's secret, like the payment ones.
 */

describe.each(ENGINES)('refunds at Stripe on %s', (engine) => {
  let stripe: StripeStandin;
  let g: GatewayDriver;
  let w: RefundWorld;

  beforeAll(async () => {
    stripe = await startStripeStandin();
    g = stripeDriver(stripe);
    w = await startRefundWorld(engine, stripeStandinEnv(stripe));
  });
  afterAll(async () => {
    await w?.close();
    await stripe?.close();
  });
  beforeEach(() => {
    w.clock.reset();
    stripe.setBehaviour('normal');
    stripe.setNextRefund({});
  });

  const creates = (refundNo: string) =>
    stripe.requests.filter((r) => r.method === 'POST' && r.url === '/v1/refunds' && r.headers['idempotency-key'] === refundNo);
  /** The loop's looks for a refund without a known Stripe id: the PaymentIntent's refund list. */
  const lists = (intentId: string) => stripe.requests.filter((r) => r.method === 'GET' && r.url.startsWith(`/v1/refunds?payment_intent=${intentId}`));
  const retrieves = (refundId: string) => stripe.requests.filter((r) => r.method === 'GET' && r.url === `/v1/refunds/${refundId}`);
  /** Stripe's refund of ours (metadata.refund_no) on the intent, as Stripe holds it now. */
  const heldRefund = (intentId: string, refundNo: string) =>
    stripe.refundsOf(intentId).find((r) => (r.metadata as Record<string, string>).refund_no === refundNo)!;
  const refundEvent = (type: string, intentId: string, refundNo: string) => stripeEvent(w.clock.now(), type, heldRefund(intentId, refundNo));

  it('full refund: succeeded in the answer; one authorized POST /v1/refunds with our refund_no as Idempotency-Key; refunded, one event', async () => {
    const { no, txn } = await w.paidOrder(g);
    const res = await w.refund(no, { amount: '12.34', reason: 'customer changed their mind' });
    expect(res.status, JSON.stringify(res.body)).toBe(201);
    const refundNo = res.body.data.refund_no as string;
    expect(res.body.data).toMatchObject({ order_no: no, amount: '12.34', currency: 'USD', status: 'succeeded' });
    expect(res.body.data.gateway_refund_id).toMatch(/^re_/);

    const sent = creates(refundNo);
    expect(sent).toHaveLength(1);
    expect(sent[0]!.authorized).toBe(true);
    expect(Object.fromEntries(new URLSearchParams(sent[0]!.body))).toEqual({
      payment_intent: txn,
      amount: '1234',
      'metadata[order_no]': no,
      'metadata[refund_no]': refundNo,
      'metadata[reason]': 'customer changed their mind',
    });
    expect(stripe.refundsOf(txn).map((r) => [r.id, r.amount, r.status])).toEqual([[res.body.data.gateway_refund_id, 1234, 'succeeded']]);
    await expectFullyRefundedOnce(w, no, refundNo);
    expect(await w.timeline(no)).toEqual([['request', 'refund', 'refund_succeeded']]);
    expect(stripe.requests.filter((r) => r.method === 'POST' && r.url === '/v1/refunds' && r.body.includes(no))).toHaveLength(1);
  });

  it('partial refunds up to the total; one cent more than the rest is refund_exceeds_paid and never reaches Stripe', async () => {
    const { no, txn } = await w.paidOrder(g);
    for (const [i, amount] of ['5.00', '4.00'].entries()) expect((await w.refund(no, { amount, refund_no: `P${i}-${no}` })).body.data.status).toBe('succeeded');
    const over = await w.refund(no, { amount: '3.35', refund_no: `PX-${no}` });
    expect([over.status, over.body.code]).toEqual([409, 'refund_exceeds_paid']);
    expect(creates(`PX-${no}`)).toEqual([]);
    expect((await w.refund(no, { amount: '3.34', refund_no: `P2-${no}` })).body.data.status).toBe('succeeded');
    expect(stripe.refundsOf(txn).map((r) => [(r.metadata as Record<string, string>).refund_no, r.amount])).toEqual([
      [`P0-${no}`, 500],
      [`P1-${no}`, 400],
      [`P2-${no}`, 334],
    ]);
    expect(await w.rows.order(no)).toMatchObject({ status: 'refunded', refunded_minor: 1234, refund_reserved_minor: 0, seq: 4 });
    expect((await w.events(no)).map((e) => [e.type, e.seq, e.body.refunded_amount ?? null])).toEqual([
      ['order.paid', 1, null],
      ['refund.succeeded', 2, '5.00'],
      ['refund.succeeded', 3, '9.00'],
      ['refund.succeeded', 4, '12.34'],
    ]);
    expect(await w.timeline(no)).toEqual(Array(3).fill(['request', 'refund', 'refund_succeeded']));
  });

  it('a refusal (400 charge_disputed) fails the refund, releases the reservation and sends refund.failed', async () => {
    const { no, txn } = await w.paidOrder(g);
    stripe.setNextRefund({ refuse: { code: 'charge_disputed', message: 'Charge has been disputed.' } });
    const res = await w.refund(no, { amount: '12.34', refund_no: `F-${no}` });
    expect([res.status, res.body.data.status, res.body.data.failure_reason]).toEqual([201, 'failed', 'charge_disputed: Charge has been disputed.']);
    await expectFailedAndReleased(w, no, `F-${no}`, /^charge_disputed/);
    expect(await w.timeline(no)).toEqual([['request', 'refund', 'refund_failed']]);
    expect(stripe.refundsOf(txn)).toEqual([]);
    stripe.setNextRefund({});
    expect((await w.refund(no, { amount: '12.34', refund_no: `F2-${no}` })).body.data.status).toBe('succeeded');
  });

  it.each<[string, StandinBehaviour, boolean]>([
    ['the connection dropped after Stripe refunded (lost answer)', 'reset', true],
    ['api_error (500) before anything was done', 'http-500', false],
    ['no answer (timeout), nothing done', 'hang', false],
  ])('%s: stays pending, never failed; the loop settles it by one refund query', async (_name, behaviour, madeThere) => {
    const { no, txn } = await w.paidOrder(g);
    const refundNo = `U-${no}`;
    stripe.setBehaviour(behaviour);
    const res = await w.refund(no, { amount: '12.34', refund_no: refundNo });
    stripe.setBehaviour('normal');
    expect([res.status, res.body.data.status]).toEqual([201, 'pending']);
    expect(stripe.refundsOf(txn)).toHaveLength(madeThere ? 1 : 0);
    await expectLeftPending(w, no);

    await w.checkAfter();
    expect(lists(txn).map((r) => r.authorized)).toEqual([true]);
    // Not at Stripe: sent again with the same Idempotency-Key; either way Stripe holds exactly one refund.
    expect(creates(refundNo)).toHaveLength(madeThere ? 1 : 2);
    expect(stripe.refundsOf(txn)).toHaveLength(1);
    await expectSettledAfterUnknown(w, no, refundNo, madeThere);
    expect(await w.refundRow(refundNo)).toMatchObject({ gateway_refund_id: stripe.refundsOf(txn)[0]!.id });
    await w.checkAfter(60_000);
    expect(lists(txn)).toHaveLength(1);
  });

  it('pending at Stripe: refund.updated settles it; the same event again is a duplicate; the loop then asks nothing', async () => {
    const { no, txn } = await w.paidOrder(g);
    const refundNo = `W-${no}`;
    stripe.setNextRefund({ status: 'pending' });
    const res = await w.refund(no, { amount: '12.34', refund_no: refundNo });
    expect([res.status, res.body.data.status]).toEqual([201, 'pending']);
    const refundId = heldRefund(txn, refundNo).id as string;
    expect(await w.refundRow(refundNo)).toMatchObject({ status: 'pending', gateway_refund_id: refundId });

    stripe.updateRefund(refundId, 'succeeded');
    const event = refundEvent('refund.updated', txn, refundNo);
    expect((await sendStripeEvent(w.ctx.app, event)).status).toBe(200);
    const again = await sendStripeEvent(w.ctx.app, event);
    expect([again.status, again.body]).toEqual([200, { received: true }]);
    await expectFullyRefundedOnce(w, no, refundNo);
    expect(await w.refundLogs(no)).toEqual([
      ['refund_succeeded', 'applied', 0],
      ['refund_succeeded', 'duplicate', 0],
    ]);
    expect(await w.timeline(no)).toEqual([['request', 'refund', 'refund_pending']]);
    await w.checkAfter();
    expect(retrieves(refundId)).toEqual([]);
  });

  it('refund.failed fails a pending refund, releases the reservation and sends refund.failed; a forged one changes nothing', async () => {
    const { no, txn } = await w.paidOrder(g);
    const refundNo = `X-${no}`;
    stripe.setNextRefund({ status: 'pending' });
    expect((await w.refund(no, { amount: '12.34', refund_no: refundNo })).body.data.status).toBe('pending');
    stripe.updateRefund(heldRefund(txn, refundNo).id as string, 'failed', 'expired_or_canceled_card');

    const event = refundEvent('refund.failed', txn, refundNo);
    const forged = { ...event, signature: event.signature.replace(/v1=[0-9a-f]+/, `v1=${'0'.repeat(64)}`) };
    expect((await sendStripeEvent(w.ctx.app, forged)).status).toBe(400);
    expect(await w.refundRow(refundNo)).toMatchObject({ status: 'pending' });
    expect((await w.events(no)).map((e) => e.type)).toEqual(['order.paid']);

    expect((await sendStripeEvent(w.ctx.app, event)).status).toBe(200);
    await expectFailedAndReleased(w, no, refundNo, /^expired_or_canceled_card$/);
    expect(await w.refundLogs(no)).toEqual([['refund_failed', 'applied', 0]]);
  });

  it('charge.refunded listing the charge’s refunds settles the pending ones once; sent twice, one event each', async () => {
    const { no, txn } = await w.paidOrder(g);
    stripe.setNextRefund({ status: 'pending' });
    for (const [i, amount] of ['5.00', '7.34'].entries()) expect((await w.refund(no, { amount, refund_no: `C${i}-${no}` })).body.data.status).toBe('pending');
    // The first settled by its own refund.updated; then charge.refunded (an API version that embeds refunds) lists both.
    const [first, second] = [0, 1].map((i) => heldRefund(txn, `C${i}-${no}`).id as string);
    stripe.updateRefund(first!, 'succeeded');
    expect((await sendStripeEvent(w.ctx.app, refundEvent('refund.updated', txn, `C0-${no}`))).status).toBe(200);
    stripe.updateRefund(second!, 'succeeded');
    const listed = stripe.refundsOf(txn);
    const charge = {
      id: listed[0]!.charge,
      object: 'charge',
      amount: 1234,
      amount_refunded: 1234,
      currency: 'usd',
      metadata: { order_no: no },
      payment_intent: txn,
      refunded: true,
      refunds: { object: 'list', data: listed, has_more: false, url: `/v1/charges/${String(listed[0]!.charge)}/refunds` },
    };
    const event = oldApiEvent('charge.refunded', charge, w.clock.now());
    expect((await sendStripeEvent(w.ctx.app, event)).status).toBe(200);
    expect((await sendStripeEvent(w.ctx.app, event)).status).toBe(200);

    expect(await w.rows.order(no)).toMatchObject({ status: 'refunded', refunded_minor: 1234, refund_reserved_minor: 0, seq: 3 });
    expect((await w.events(no)).map((e) => [e.type, e.seq, e.body.refund_no ?? null, e.body.refunded_amount ?? null])).toEqual([
      ['order.paid', 1, null, null],
      ['refund.succeeded', 2, `C0-${no}`, '5.00'],
      ['refund.succeeded', 3, `C1-${no}`, '12.34'],
    ]);
    expect(await w.refundRow(`C1-${no}`)).toMatchObject({ status: 'succeeded', gateway_refund_id: second });
    expect((await w.refundLogs(no)).map((l) => l[1])).toEqual(['applied', 'duplicate', 'applied', 'duplicate']);
    expect(await w.timeline(no)).toEqual(Array(2).fill(['request', 'refund', 'refund_pending']));
  });
});

const sdk = new Stripe('sk_test_not_used_offline');

/** An event of an API version from before 2022-11-15, whose charges still embed their refunds, signed by the SDK. */
function oldApiEvent(type: string, object: Record<string, unknown>, now: Date) {
  const created = Math.floor(now.getTime() / 1000);
  const payload = JSON.stringify(
    { id: `evt_${randomBytes(8).toString('hex')}`, object: 'event', api_version: '2022-08-01', created, data: { object }, livemode: false, type },
    null,
    2,
  );
  return { payload, signature: sdk.webhooks.generateTestHeaderString({ payload, secret: STRIPE_STANDIN_KEYS.webhookSecret, timestamp: created }) };
}
