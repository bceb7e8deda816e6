import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { RefundAnswer, RefundClient, RefundTarget } from '../src/reconcile/gateway-client.ts';
import { STRIPE_STANDIN_KEYS, startStripeStandin, type StandinIntent, type StripeStandin } from './helpers/stripe-standin.ts';
import { failure, stripeClient } from './helpers/gateway-call.ts';

/*
 * The refund client against the local Stripe API stand-in (it checks the secret key and keeps refunds, with Stripe's
 * Idempotency-Key semantics). Stripe does not sign answers: TLS and the key authenticate them, so "a bad answer" here
 * is one that is not Stripe's JSON, or one about another refund.
 */

let standin: StripeStandin;
let refunds: RefundClient;
const TIMEOUT_MS = 400;
let seq = 0;

beforeAll(async () => {
  standin = await startStripeStandin();
  refunds = stripeClient(standin.url, TIMEOUT_MS).refunds!;
});
afterAll(() => standin.close());
afterEach(() => {
  standin.setBehaviour('normal');
  standin.setNextRefund({});
});

const newNo = (prefix: string) => `${prefix}${Date.now().toString(36)}_${++seq}`;
const signal = () => new AbortController().signal;
const requestsSince = (n: number) => standin.requests.slice(n);
const HOUR = 3_600_000;

/** A paid order at the stand-in (1234 cents by default) and a refund of part of it. */
function paidOrder(spec: Partial<StandinIntent> = {}, refund: Partial<RefundTarget> = {}): { target: RefundTarget; intentId: string } {
  const orderNo = newNo('SR');
  const [intentId] = standin.setTrade(orderNo, { status: 'succeeded', amount: 1234, ...spec });
  const target: RefundTarget = {
    orderNo,
    refundNo: newNo('RF'),
    amountMinor: 500,
    currency: (spec.currency ?? 'usd').toUpperCase(),
    orderAmountMinor: 1234,
    transactionId: intentId!,
    reason: 'customer changed their mind',
    gatewayRefundId: null,
    createdAt: new Date(),
    ...refund,
  };
  return { target, intentId: intentId! };
}

function gatewayId(answer: RefundAnswer): string {
  if (answer.state === 'not_found' || !answer.gatewayRefundId) throw new Error(`no refund id in ${JSON.stringify(answer)}`);
  return answer.gatewayRefundId;
}

describe('Stripe refunds: refund()', () => {
  it('POSTs /v1/refunds for the PaymentIntent, with our numbers in metadata and refund_no as Idempotency-Key: succeeded', async () => {
    const { target, intentId } = paidOrder();
    const before = standin.requests.length;
    const answer = await refunds.refund(target, signal());
    expect(answer).toMatchObject({ state: 'succeeded', amountMinor: 500, currency: 'USD' });
    const id = gatewayId(answer);
    expect(id).toMatch(/^re_/);
    expect(answer.fields).toMatchObject({ id, object: 'refund', status: 'succeeded', amount: 500, payment_intent: intentId });
    const sent = requestsSince(before);
    expect(sent.map((r) => `${r.method} ${r.url}`)).toEqual(['POST /v1/refunds']);
    expect(sent[0]!.authorized).toBe(true);
    expect(sent[0]!.headers['idempotency-key']).toBe(target.refundNo);
    expect(Object.fromEntries(new URLSearchParams(sent[0]!.body))).toEqual({
      payment_intent: intentId,
      amount: '500',
      'metadata[order_no]': target.orderNo,
      'metadata[refund_no]': target.refundNo,
      'metadata[reason]': 'customer changed their mind',
    });
    expect(standin.refundsOf(intentId)).toHaveLength(1);
  });

  it('leaves Stripe’s reason enum alone and sends no metadata reason when there is none', async () => {
    const { target } = paidOrder({}, { reason: null });
    const before = standin.requests.length;
    await refunds.refund(target, signal());
    const form = new URLSearchParams(requestsSince(before)[0]!.body);
    expect(form.has('reason')).toBe(false);
    expect(form.has('metadata[reason]')).toBe(false);
  });

  it('sent again (the loop after an unknown outcome) it carries the same Idempotency-Key, and Stripe refunds once', async () => {
    const { target, intentId } = paidOrder();
    const first = await refunds.refund(target, signal());
    const before = standin.requests.length;
    const again = await refunds.refund(target, signal());
    expect(gatewayId(again)).toBe(gatewayId(first));
    expect(requestsSince(before)[0]!.headers['idempotency-key']).toBe(target.refundNo);
    expect(standin.refundsOf(intentId)).toHaveLength(1);
  });

  it('an answer lost after Stripe refunded is an unknown outcome (network), never failed; sent again it settles the same refund', async () => {
    const { target, intentId } = paidOrder();
    standin.setBehaviour('reset');
    expect((await failure(refunds.refund(target, signal()))).kind).toBe('network');
    expect(standin.refundsOf(intentId)).toHaveLength(1);
    standin.setBehaviour('normal');
    const answer = await refunds.refund(target, signal());
    expect(answer.state).toBe('succeeded');
    expect(gatewayId(answer)).toBe(standin.refundsOf(intentId)[0]!.id);
    expect(standin.refundsOf(intentId)).toHaveLength(1);
  });

  it('pending and requires_action → pending with Stripe’s status; failed and canceled → failed with failure_reason', async () => {
    for (const status of ['pending', 'requires_action'] as const) {
      standin.setNextRefund({ status });
      const answer = await refunds.refund(paidOrder().target, signal());
      expect(answer).toMatchObject({ state: 'pending', gatewayStatus: status });
      expect(gatewayId(answer)).toMatch(/^re_/);
    }
    for (const [status, failureReason, reason] of [
      ['failed', 'expired_or_canceled_card', 'expired_or_canceled_card'],
      ['canceled', 'merchant_request', 'merchant_request'],
      ['canceled', undefined, 'canceled'],
    ] as const) {
      standin.setNextRefund({ status, failureReason });
      const answer = await refunds.refund(paidOrder().target, signal());
      expect(answer).toMatchObject({ state: 'failed', reason });
      expect(gatewayId(answer)).toMatch(/^re_/);
    }
  });

  it('Stripe’s refusals are definitive: more than the unrefunded rest, an already refunded charge → failed, no refund made', async () => {
    const { target, intentId } = paidOrder({}, { amountMinor: 1235 });
    const exceeds = await refunds.refund(target, signal());
    expect(exceeds).toMatchObject({ state: 'failed', gatewayRefundId: null });
    if (exceeds.state === 'failed') expect(exceeds.reason).toMatch(/^amount_too_large: Refund amount \(1235\)/);
    expect(exceeds.fields).toMatchObject({ error: { type: 'invalid_request_error', code: 'amount_too_large' } });
    expect(standin.refundsOf(intentId)).toHaveLength(0);

    const whole = { ...target, refundNo: newNo('RF'), amountMinor: 1234 };
    expect((await refunds.refund(whole, signal())).state).toBe('succeeded');
    const more = await refunds.refund({ ...target, refundNo: newNo('RF'), amountMinor: 1 }, signal());
    expect(more).toMatchObject({ state: 'failed' });
    if (more.state === 'failed') expect(more.reason).toMatch(/^charge_already_refunded: /);
    expect(standin.refundsOf(intentId)).toHaveLength(1);
  });

  it('a refusal Stripe was told to give (e.g. a disputed charge) → failed with its code', async () => {
    standin.setNextRefund({ refuse: { code: 'charge_disputed', message: 'Charge ch_x has been disputed.' } });
    const answer = await refunds.refund(paidOrder().target, signal());
    expect(answer).toMatchObject({ state: 'failed', reason: 'charge_disputed: Charge ch_x has been disputed.' });
  });

  it('unknown outcomes are thrown, never failed: 500, 429, a hang, garbage, incomplete JSON, another account’s key', async () => {
    const { target, intentId } = paidOrder();
    standin.setBehaviour('http-500');
    const before = standin.requests.length;
    const err500 = await failure(refunds.refund(target, signal()));
    expect([err500.kind, err500.message]).toEqual(['http_status', expect.stringContaining('500')]);
    expect(requestsSince(before)).toHaveLength(1);
    standin.setBehaviour('http-429');
    const err429 = await failure(refunds.refund(target, signal()));
    expect([err429.kind, err429.message]).toEqual(['http_status', expect.stringContaining('429')]);
    standin.setBehaviour('hang');
    const started = Date.now();
    expect((await failure(refunds.refund(target, signal()))).kind).toBe('timeout');
    expect(Date.now() - started).toBeLessThan(TIMEOUT_MS + 1500);
    expect(standin.refundsOf(intentId)).toHaveLength(0);

    standin.setBehaviour('garbage');
    const garbled = await failure(refunds.refund(target, signal()));
    expect(garbled.kind).toBe('malformed');
    expect(garbled.excerpt).toContain('<html>');
    standin.setBehaviour('incomplete');
    expect((await failure(refunds.refund(paidOrder().target, signal()))).kind).toBe('malformed');

    const wrong = stripeClient(standin.url, TIMEOUT_MS, STRIPE_STANDIN_KEYS.otherSecretKey).refunds!;
    standin.setBehaviour('normal');
    const err401 = await failure(wrong.refund(paidOrder().target, signal()));
    expect([err401.kind, err401.message]).toEqual(['http_status', expect.stringContaining('401')]);
    expect(err401.message).not.toContain(STRIPE_STANDIN_KEYS.otherSecretKey);
  });

  it('an answer about another refund (metadata.refund_no not ours) → malformed', async () => {
    standin.setBehaviour('foreign-refund');
    const err = await failure(refunds.refund(paidOrder().target, signal()));
    expect(err.kind).toBe('malformed');
    expect(err.message).toContain('SOMEONE_ELSE');
  });

  it('the same refund_no with other parameters (Stripe’s idempotency_error) is thrown: the first request may have moved money', async () => {
    const { target, intentId } = paidOrder();
    await refunds.refund(target, signal());
    const err = await failure(refunds.refund({ ...target, amountMinor: 400 }, signal()));
    expect(err.kind).toBe('http_status');
    expect(err.message).toContain('idempotency_error');
    expect(standin.refundsOf(intentId)).toHaveLength(1);
  });

  it('an aborted signal stops it before anything is sent; nothing listening → network', async () => {
    const before = standin.requests.length;
    expect((await failure(refunds.refund(paidOrder().target, AbortSignal.abort()))).kind).toBe('network');
    expect(requestsSince(before)).toHaveLength(0);
    const gone = await startStripeStandin();
    await gone.close();
    const dead = stripeClient(gone.url, TIMEOUT_MS).refunds!;
    expect((await failure(dead.refund(paidOrder().target, signal()))).kind).toBe('network');
  });

  it('a Checkout Session id as transaction: the session is retrieved and its PaymentIntent refunded', async () => {
    const { target, intentId } = paidOrder();
    const sessionId = `cs_test_${target.orderNo}`;
    standin.setSession(sessionId, intentId);
    const before = standin.requests.length;
    expect((await refunds.refund({ ...target, transactionId: sessionId }, signal())).state).toBe('succeeded');
    expect(requestsSince(before).map((r) => `${r.method} ${r.url.split('?')[0]}`)).toEqual([`GET /v1/checkout/sessions/${sessionId}`, 'POST /v1/refunds']);
    expect(standin.refundsOf(intentId)).toHaveLength(1);
  });

  it('nothing to refund is failed without a refund request: a session without PaymentIntent, an unknown session, no transaction', async () => {
    const { target } = paidOrder();
    standin.setSession('cs_test_unpaid', null);
    const before = standin.requests.length;
    for (const transactionId of ['cs_test_unpaid', 'cs_test_never_made', null, 'ch_3NotAnIntent']) {
      const answer = await refunds.refund({ ...target, transactionId }, signal());
      expect(answer).toMatchObject({ state: 'failed', gatewayRefundId: null });
    }
    expect(requestsSince(before).filter((r) => r.method === 'POST')).toHaveLength(0);
  });

  it('amounts in Stripe’s units: JPY and KWD as ISO, ISK two-decimal at Stripe, MGA zero-decimal at Stripe', async () => {
    for (const [currency, ours, stripe] of [
      ['jpy', 500, 500],
      ['kwd', 1500, 1500],
      ['isk', 5, 500],
      ['mga', 1200, 12],
    ] as const) {
      const { target, intentId } = paidOrder({ currency, amount: 100_000 }, { amountMinor: ours, orderAmountMinor: 100_000 });
      const answer = await refunds.refund(target, signal());
      expect(answer).toMatchObject({ state: 'succeeded', amountMinor: ours, currency: currency.toUpperCase() });
      expect(standin.refundsOf(intentId)[0]!.amount).toBe(stripe);
    }
    // 12.34 MGA has no Stripe amount: refused before anything is sent.
    const { target } = paidOrder({ currency: 'mga', amount: 100_000 }, { amountMinor: 1234 });
    const before = standin.requests.length;
    expect(await refunds.refund(target, signal())).toMatchObject({ state: 'failed', gatewayRefundId: null });
    expect(requestsSince(before)).toHaveLength(0);
  });

  it('a refund first sent more than a day ago looks before sending again (Stripe prunes idempotency keys after 24 h)', async () => {
    const { target, intentId } = paidOrder({}, { createdAt: new Date(Date.now() - 25 * HOUR) });
    standin.setNextRefund({ status: 'pending' });
    const first = await refunds.refund(target, signal());
    standin.forgetIdempotencyKeys();
    standin.updateRefund(gatewayId(first), 'succeeded');
    const before = standin.requests.length;
    const again = await refunds.refund(target, signal());
    expect(again).toMatchObject({ state: 'succeeded', gatewayRefundId: gatewayId(first) });
    expect(requestsSince(before).map((r) => r.method)).toEqual(['GET']);
    expect(standin.refundsOf(intentId)).toHaveLength(1);
    // Not there: sent.
    standin.setNextRefund({});
    const other = paidOrder({}, { createdAt: new Date(Date.now() - 25 * HOUR) });
    const sentBefore = standin.requests.length;
    expect((await refunds.refund(other.target, signal())).state).toBe('succeeded');
    expect(requestsSince(sentBefore).map((r) => r.method)).toEqual(['GET', 'POST']);
    expect(standin.refundsOf(other.intentId)).toHaveLength(1);
  });
});

describe('Stripe refunds: queryRefund()', () => {
  it('by the remembered refund id: GET /v1/refunds/{id}, following Stripe’s status', async () => {
    const { target } = paidOrder();
    standin.setNextRefund({ status: 'pending' });
    const id = gatewayId(await refunds.refund(target, signal()));
    const known = { ...target, gatewayRefundId: id };
    const before = standin.requests.length;
    expect(await refunds.queryRefund(known, signal())).toMatchObject({ state: 'pending', gatewayRefundId: id, gatewayStatus: 'pending' });
    expect(requestsSince(before).map((r) => `${r.method} ${r.url}`)).toEqual([`GET /v1/refunds/${id}`]);
    standin.updateRefund(id, 'succeeded');
    expect(await refunds.queryRefund(known, signal())).toMatchObject({ state: 'succeeded', gatewayRefundId: id, amountMinor: 500, currency: 'USD' });
    standin.updateRefund(id, 'failed', 'lost_or_stolen_card');
    expect(await refunds.queryRefund(known, signal())).toMatchObject({ state: 'failed', reason: 'lost_or_stolen_card' });
  });

  it('without an id: lists the PaymentIntent’s refunds and takes the one whose metadata.refund_no is ours', async () => {
    const { target, intentId } = paidOrder();
    standin.putRefund(intentId, { status: 'succeeded', amount: 100 });
    standin.putRefund(intentId, { status: 'succeeded', amount: 200, refundNo: 'SOMEONE_ELSE' });
    standin.setNextRefund({ status: 'pending' });
    const id = gatewayId(await refunds.refund(target, signal()));
    const before = standin.requests.length;
    expect(await refunds.queryRefund(target, signal())).toMatchObject({ state: 'pending', gatewayRefundId: id });
    const sent = requestsSince(before);
    expect(sent.map((r) => `${r.method} ${r.url}`)).toEqual([`GET /v1/refunds?payment_intent=${intentId}&limit=100`]);
  });

  it('not_found when Stripe has no refund with our refund_no, or does not know the PaymentIntent, or there is none', async () => {
    const { target, intentId } = paidOrder();
    standin.putRefund(intentId, { status: 'succeeded', refundNo: 'SOMEONE_ELSE' });
    expect(await refunds.queryRefund(target, signal())).toMatchObject({ state: 'not_found' });
    expect(await refunds.queryRefund({ ...target, transactionId: 'pi_3NeverExisted00' }, signal())).toMatchObject({ state: 'not_found' });
    expect(await refunds.queryRefund({ ...target, transactionId: null }, signal())).toMatchObject({ state: 'not_found' });
  });

  it('a remembered id Stripe does not know falls back to the list', async () => {
    const { target } = paidOrder();
    const id = gatewayId(await refunds.refund(target, signal()));
    const answer = await refunds.queryRefund({ ...target, gatewayRefundId: 're_3NeverExisted00' }, signal());
    expect(answer).toMatchObject({ state: 'succeeded', gatewayRefundId: id });
    expect(await refunds.queryRefund({ ...paidOrder().target, gatewayRefundId: 're_3NeverExisted01' }, signal())).toMatchObject({ state: 'not_found' });
  });

  it('follows the list pages (100 a page)', async () => {
    const { target, intentId } = paidOrder({ amount: 100_000 });
    const id = gatewayId(await refunds.refund(target, signal()));
    for (let i = 0; i < 150; i++) standin.putRefund(intentId, { status: 'succeeded', amount: 1, refundNo: `OTHER_${i}`, created: 2_000_000_000 + i });
    const before = standin.requests.length;
    expect(await refunds.queryRefund(target, signal())).toMatchObject({ state: 'succeeded', gatewayRefundId: id });
    const sent = requestsSince(before).map((r) => r.url);
    expect(sent).toHaveLength(2);
    expect(sent[1]).toMatch(/&starting_after=re_/);
  });

  it('a refund id that answers about another refund_no, or two refunds with ours → malformed', async () => {
    const { target, intentId } = paidOrder();
    const foreign = standin.putRefund(intentId, { status: 'succeeded', refundNo: 'SOMEONE_ELSE' });
    expect((await failure(refunds.queryRefund({ ...target, gatewayRefundId: foreign }, signal()))).kind).toBe('malformed');
    standin.putRefund(intentId, { status: 'succeeded', refundNo: target.refundNo });
    standin.putRefund(intentId, { status: 'succeeded', refundNo: target.refundNo });
    const err = await failure(refunds.queryRefund(target, signal()));
    expect(err.kind).toBe('malformed');
    expect(err.message).toContain('2 refunds');
  });

  it('query failures keep their kinds: 500 → http_status, hang → timeout, garbage → malformed', async () => {
    const { target } = paidOrder();
    standin.setBehaviour('http-500');
    expect((await failure(refunds.queryRefund(target, signal()))).kind).toBe('http_status');
    standin.setBehaviour('hang');
    expect((await failure(refunds.queryRefund(target, signal()))).kind).toBe('timeout');
    standin.setBehaviour('garbage');
    expect((await failure(refunds.queryRefund(target, signal()))).kind).toBe('malformed');
  });
});
