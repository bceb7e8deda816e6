import request from 'supertest';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { reconcilerOf } from '../src/app.ts';
import { fromDbTime } from '../src/shared/time.ts';
import { ALIPAY_STANDIN_KEYS, alipayAnswerBody, startAlipayStandin, type AlipayStandin } from './helpers/alipay-standin.ts';
import { createTestContext, type TestContext } from './helpers/context.ts';
import { ENGINES } from './helpers/engines.ts';
import {
  alipayDriver,
  FAILURES,
  metricValue,
  rowReaders,
  sendStripeEvent,
  stripeDriver,
  stripeEvent,
  testClock,
  wechatpayDriver,
  type GatewayDriver,
  type GatewayName,
} from './helpers/reconcile.ts';
import { startStripeStandin, stripeStandinEnv, type StripeStandin } from './helpers/stripe-standin.ts';
import { startWechatpayStandin, wechatpayStandinEnv, type WechatpayStandin } from './helpers/wechatpay-standin.ts';

/*
 * The reconciler end to end: the real app asks local stand-ins of Alipay, WeChat Pay and Stripe (each checks the
 * requests' signatures or key and signs its answers as the real API does). The clock is the real time plus an offset
 * the tests move, so the gateways' 300 s signature windows still hold.
 */

const AFTER_MS = 10_000;
const STEP_MS = 20_000;
const GATEWAYS: GatewayName[] = ['alipay', 'wechatpay', 'stripe'];
const NOTIFY_URL = 'https://merchant.example/notify';
const PAID_MINOR = 1234;

describe.each(ENGINES)('reconciler against the gateway stand-ins on %s', (engine) => {
  const clock = testClock();
  let ctx: TestContext;
  let alipay: AlipayStandin;
  let wechatpay: WechatpayStandin;
  let stripe: StripeStandin;
  let drivers: Record<GatewayName, GatewayDriver>;
  let rows: ReturnType<typeof rowReaders>;
  let seq = 0;

  beforeAll(async () => {
    [alipay, wechatpay, stripe] = await Promise.all([startAlipayStandin(), startWechatpayStandin(), startStripeStandin()]);
    drivers = { alipay: alipayDriver(alipay), wechatpay: wechatpayDriver(wechatpay), stripe: stripeDriver(stripe) };
    ctx = await createTestContext(engine, {
      clock: clock.now,
      env: {
        ALIPAY_APP_ID: ALIPAY_STANDIN_KEYS.appId,
        ALIPAY_PUBLIC_KEY: ALIPAY_STANDIN_KEYS.platformPublicKeyBare,
        ALIPAY_PRIVATE_KEY: ALIPAY_STANDIN_KEYS.appPrivatePkcs8Pem,
        ALIPAY_GATEWAY_URL: alipay.url,
        ...wechatpayStandinEnv(wechatpay),
        ...stripeStandinEnv(stripe),
        RECONCILE_AFTER: `${AFTER_MS / 1000}s`,
        RECONCILE_SCHEDULE: `${STEP_MS / 1000}s,40s,80s`,
        // One gateway call's limit: a hanging stand-in costs this much; a stop waits for it (at least it + 1 s).
        NOTIFY_TIMEOUT_MS: '2000',
        SHUTDOWN_TIMEOUT_MS: '4000',
      },
    });
    rows = rowReaders(ctx.db);
  });
  afterAll(async () => {
    await ctx?.close();
    await Promise.all([alipay?.close(), wechatpay?.close(), stripe?.close()]);
  });
  beforeEach(() => clock.reset());

  const run = () => reconcilerOf(ctx.app).runOnce();
  const scrape = async () => (await request(ctx.app).get('/metrics').expect(200)).text;
  const sync = (no: string) => ctx.api('post', `/api/orders/${no}/sync`);
  const nextLookIn = async (no: string) => fromDbTime((await rows.order(no)).reconcile_at!).getTime() - clock.now().getTime();

  async function order(g: GatewayDriver, extra: Record<string, unknown> = {}): Promise<string> {
    const no = `RC${engine[0]}${g.name.slice(0, 2)}${++seq}`;
    const res = await ctx
      .api('post', '/api/orders')
      .send({ order_no: no, amount: '12.34', currency: g.currency, payment_method: g.name, notify_url: NOTIFY_URL, ...extra });
    expect(res.status).toBe(201);
    return no;
  }

  async function expectPaidOnce(g: GatewayDriver, no: string, txn: string) {
    expect(await rows.order(no)).toMatchObject({ status: 'paid', transaction_id: txn, seq: 1, flagged: 0 });
    const events = await rows.events(no);
    expect(events.map((e) => [e.type, e.seq, e.url])).toEqual([['order.paid', 1, NOTIFY_URL]]);
    expect(JSON.parse(events[0]!.payload)).toMatchObject({ type: 'order.paid', order_no: no, transaction_id: txn, amount: '12.34', currency: g.currency });
  }

  async function expectUntouched(no: string) {
    expect(await rows.order(no)).toMatchObject({ status: 'pending', transaction_id: null, seq: 0, flagged: 0 });
    expect(await rows.events(no)).toEqual([]);
    expect(await rows.logs(no)).toEqual([]);
  }

  describe.each(GATEWAYS)('%s', (name) => {
    const g = () => drivers[name];

    it('paid at the gateway, callback lost: paid exactly once after the first due look, counted in /metrics', async () => {
      const no = await order(g());
      const txn = g().txnOf(no);
      g().paid(no, txn, PAID_MINOR);
      const before = await scrape();
      await run();
      expect(g().queries(no)).toBe(0); // not due before RECONCILE_AFTER

      clock.advance(AFTER_MS + 1000);
      await run();
      expect(g().queries(no)).toBe(1);
      await expectPaidOnce(g(), no, txn);
      const logs = await rows.logs(no);
      expect(logs.map((l) => [l.gateway, l.kind, l.verdict, l.transaction_id, l.amount_minor, l.flagged])).toEqual([
        [name, 'query', 'applied', txn, PAID_MINOR, 0],
      ]);
      expect((await rows.attempts(no)).map((a) => [a.gateway, a.trigger, a.action, a.gateway_state, a.outcome])).toEqual([
        [name, 'schedule', 'query', 'paid', 'recovered'],
      ]);
      // This gateway's first recovery in this app (its describe starts with this test).
      const after = await scrape();
      expect(metricValue(before, 'payments_recovered_total', { gateway: name })).toBe(0);
      expect(metricValue(after, 'payments_recovered_total', { gateway: name })).toBe(1);
      expect(metricValue(after, 'reconcile_queries_total', { gateway: name, outcome: 'recovered' })).toBe(1);

      // Past the next step: a paid order is not looked at again; asked by hand, it is already paid and nothing is applied twice.
      clock.advance(STEP_MS + 1000);
      await run();
      expect(g().queries(no)).toBe(1);
      const res = await sync(no);
      expect(res.status).toBe(200);
      expect(res.body.data).toMatchObject({
        status: 'paid',
        transaction_id: txn,
        reconcile: { gateway: name, gateway_state: 'paid', outcome: 'already_paid' },
      });
      expect(g().queries(no)).toBe(2);
      await expectPaidOnce(g(), no, txn);
      expect((await rows.logs(no)).map((l) => [l.kind, l.verdict])).toEqual([
        ['query', 'applied'],
        ['query', 'duplicate'],
      ]);
      const last = await scrape();
      expect(metricValue(last, 'payments_recovered_total', { gateway: name })).toBe(1);
      expect(metricValue(last, 'reconcile_queries_total', { gateway: name, outcome: 'already_paid' })).toBe(1);
    });

    it('not paid: untouched, and asked again at the next step', async () => {
      const no = await order(g());
      g().pending(no);
      clock.advance(AFTER_MS + 1000);
      await run();
      expect(g().queries(no)).toBe(1);
      await expectUntouched(no);
      expect(await rows.order(no)).toMatchObject({ reconcile_step: 1, reconcile_lease: null });
      expect(await nextLookIn(no)).toBeGreaterThan(STEP_MS - 2000);
      expect(await nextLookIn(no)).toBeLessThanOrEqual(STEP_MS);
      const attempts = (await rows.attempts(no)).map((a) => [a.trigger, a.action, a.gateway_state, a.outcome]);
      expect(attempts).toEqual([['schedule', 'query', 'pending', 'unchanged']]);

      await run();
      expect(g().queries(no)).toBe(1); // not due yet
      clock.advance(STEP_MS + 1000);
      await run();
      expect(g().queries(no)).toBe(2);
      await expectUntouched(no);
      expect((await rows.order(no)).reconcile_step).toBe(2);
      expect((await rows.attempts(no)).map((a) => a.outcome)).toEqual(['unchanged', 'unchanged']);
    });

    it('closed at the gateway: closed here with an order.closed event', async () => {
      const no = await order(g());
      g().closed(no);
      clock.advance(AFTER_MS + 1000);
      await run();
      expect(await rows.order(no)).toMatchObject({ status: 'closed', transaction_id: null, seq: 1 });
      expect((await rows.events(no)).map((e) => [e.type, e.seq])).toEqual([['order.closed', 1]]);
      expect((await rows.attempts(no)).map((a) => [a.action, a.gateway_state, a.outcome])).toEqual([['query', 'closed', 'closed']]);
      expect(g().closeRequests(no)).toBe(0);
      expect(await rows.logs(no)).toEqual([]);
    });

    it('paid a different amount at the gateway: order unchanged, flagged in the inbox, no event, not asked again', async () => {
      const no = await order(g());
      g().paid(no, g().txnOf(no), 1200);
      clock.advance(AFTER_MS + 1000);
      await run();
      expect(await rows.order(no)).toMatchObject({ status: 'pending', transaction_id: null, seq: 0 });
      expect(await rows.events(no)).toEqual([]);
      const logs = await rows.logs(no);
      expect(logs.map((l) => [l.kind, l.verdict, l.flagged, l.amount_minor, l.transaction_id])).toEqual([['query', 'amount_mismatch', 1, 1200, g().txnOf(no)]]);
      expect((await rows.attempts(no)).map((a) => [a.gateway_state, a.outcome])).toEqual([['paid', 'mismatch']]);
      expect((await rows.order(no)).reconcile_at).toBeNull();
      clock.advance(STEP_MS + 1000);
      await run();
      expect(g().queries(no)).toBe(1);
    });

    it.each(Object.entries(FAILURES[name]))(
      '%s answer: nothing changes, error recorded; recovered at the next step once the gateway is healthy',
      async (behaviour, kind) => {
        const no = await order(g());
        const txn = g().txnOf(no);
        g().paid(no, txn, PAID_MINOR);
        g().behave(behaviour);
        try {
          clock.advance(AFTER_MS + 1000);
          await run();
        } finally {
          g().behave('normal');
        }
        expect(g().queries(no)).toBe(1);
        await expectUntouched(no);
        const [attempt, ...more] = await rows.attempts(no);
        expect(more).toEqual([]);
        expect(attempt).toMatchObject({ trigger: 'schedule', action: 'query', gateway_state: null, outcome: 'error' });
        expect(attempt!.message).toMatch(new RegExp(`^${kind}: `));
        expect(await nextLookIn(no)).toBeGreaterThan(STEP_MS - 2000);

        await run();
        expect(g().queries(no)).toBe(1); // healthy again, but not due yet
        clock.advance(STEP_MS + 1000);
        await run();
        await expectPaidOnce(g(), no, txn);
        expect((await rows.attempts(no)).map((a) => a.outcome)).toEqual(['error', 'recovered']);
      },
    );

    it('expired and unpaid: closed at the gateway first, then here', async () => {
      const no = await order(g(), { expires_in: 60 });
      g().pending(no);
      clock.advance(61_000);
      await run();
      expect(g().closeRequests(no)).toBe(1);
      expect(g().isClosedThere(no)).toBe(true);
      expect(await rows.order(no)).toMatchObject({ status: 'closed', transaction_id: null, seq: 1 });
      expect((await rows.events(no)).map((e) => [e.type, e.seq])).toEqual([['order.closed', 1]]);
      expect((await rows.attempts(no)).map((a) => [a.trigger, a.action, a.gateway_state, a.outcome])).toEqual([
        ['expiry', 'query', 'pending', 'unchanged'],
        ['expiry', 'close', 'pending', 'expired'],
      ]);
    });

    it('expired but paid at the gateway: paid, no close request', async () => {
      const no = await order(g(), { expires_in: 60 });
      const txn = g().txnOf(no);
      g().paid(no, txn, PAID_MINOR);
      clock.advance(61_000);
      await run();
      await expectPaidOnce(g(), no, txn);
      expect(g().closeRequests(no)).toBe(0);
      expect((await rows.attempts(no)).map((a) => [a.trigger, a.action, a.outcome])).toEqual([['expiry', 'query', 'recovered']]);
    });

    it('50 concurrent signed callbacks and sync calls for one payment: one transition, one order.paid event, seq 1', async () => {
      const no = await order(g());
      const txn = g().txnOf(no);
      g().paid(no, txn, PAID_MINOR);
      const now = clock.now();
      const kinds = Array.from({ length: 50 }, (_, i) => (i % 2 === 0 ? 'callback' : 'sync'));
      const answers = await Promise.all(kinds.map((k) => (k === 'callback' ? g().callback(ctx.app, now, no, txn, PAID_MINOR) : sync(no)).then((r) => r)));
      const syncs = answers.filter((_, i) => kinds[i] === 'sync');
      expect(syncs).toHaveLength(25);
      expect(syncs.filter((r) => r.status !== 200).map((r) => r.body)).toEqual([]);
      for (const r of syncs) expect(['recovered', 'already_paid']).toContain(r.body.data.reconcile.outcome);
      const callbackStatus = name === 'wechatpay' ? 204 : 200;
      expect(answers.filter((_, i) => kinds[i] === 'callback').map((r) => r.status)).toEqual(Array(25).fill(callbackStatus));
      await expectPaidOnce(g(), no, txn);
      const verdicts = (await rows.logs(no)).map((l) => l.verdict);
      expect(verdicts.filter((v) => v === 'applied')).toHaveLength(1);
      expect(verdicts.filter((v) => v === 'duplicate')).toHaveLength(49);
    });
  });

  it('stripe: the PaymentIntent remembered from a payment_failed webhook is retrieved by id (its metadata names no order)', async () => {
    const g = drivers.stripe;
    const no = await order(g);
    const pi = `pi_${no}_remembered`;
    const failed = stripeEvent(clock.now(), 'payment_intent.payment_failed', {
      id: pi,
      object: 'payment_intent',
      amount: PAID_MINOR,
      amount_received: 0,
      currency: 'usd',
      metadata: { order_no: no },
      status: 'requires_payment_method',
    });
    expect((await sendStripeEvent(ctx.app, failed)).status).toBe(200);
    expect(await rows.order(no)).toMatchObject({ status: 'failed', seq: 1 });
    stripe.setTrade(no, { id: pi, status: 'succeeded', amount: PAID_MINOR, metadataOrderNo: null });
    const seen = stripe.requests.length;

    clock.advance(AFTER_MS + 1000);
    await run();
    expect(stripe.requests.length).toBe(seen); // the loop looks at pending orders only

    const res = await sync(no);
    expect(res.status).toBe(200);
    expect(res.body.data).toMatchObject({ status: 'paid', transaction_id: pi, reconcile: { gateway: 'stripe', gateway_state: 'paid', outcome: 'recovered' } });
    expect(stripe.requests.slice(seen).map((r) => `${r.method} ${r.url}`)).toEqual([`GET /v1/payment_intents/${pi}`]);
    expect(await rows.order(no)).toMatchObject({ status: 'paid', transaction_id: pi, seq: 2 });
    expect((await rows.events(no)).map((e) => [e.type, e.seq])).toEqual([
      ['order.failed', 1],
      ['order.paid', 2],
    ]);
  });

  it('alipay: expired, and the answer to the close cannot be read: not closed here until a look finds it closed at Alipay', async () => {
    const no = await order(drivers.alipay, { expires_in: 60 });
    drivers.alipay.pending(no);
    // Every answer is this signed "waiting for the buyer" query answer: the query reads it, the close's answer is not one.
    const waiting = { code: '10000', msg: 'Success', out_trade_no: no, trade_no: `2024050122${no}`, trade_status: 'WAIT_BUYER_PAY', total_amount: '12.34' };
    alipay.setBehaviour({ body: alipayAnswerBody('alipay_trade_query_response', waiting) });
    try {
      clock.advance(61_000);
      await run();
    } finally {
      alipay.setBehaviour('normal');
    }
    expect(drivers.alipay.closeRequests(no)).toBe(1);
    expect(drivers.alipay.isClosedThere(no)).toBe(true); // Alipay did close it; this side could not know
    await expectUntouched(no);
    const attempts = await rows.attempts(no);
    expect(attempts.map((a) => [a.trigger, a.action, a.gateway_state, a.outcome])).toEqual([
      ['expiry', 'query', 'pending', 'unchanged'],
      ['expiry', 'close', 'pending', 'error'],
    ]);
    expect(attempts[1]!.message).toMatch(/^close malformed: /);

    clock.advance(STEP_MS + 1000);
    await run();
    expect(drivers.alipay.closeRequests(no)).toBe(1);
    expect(await rows.order(no)).toMatchObject({ status: 'closed', seq: 1 });
    expect((await rows.events(no)).map((e) => [e.type, e.seq])).toEqual([['order.closed', 1]]);
    expect((await rows.attempts(no)).slice(2).map((a) => [a.trigger, a.action, a.gateway_state, a.outcome])).toEqual([['expiry', 'query', 'closed', 'closed']]);
  });

  it('stripe: expired while its PaymentIntent is processing, Stripe will not cancel it, so it is not closed here either', async () => {
    const no = await order(drivers.stripe, { expires_in: 60 });
    const [pi] = stripe.setTrade(no, { status: 'processing' });
    clock.advance(61_000);
    await run();
    expect(stripe.requests.filter((r) => r.method === 'POST').map((r) => r.url)).toContain(`/v1/payment_intents/${pi}/cancel`);
    expect(stripe.intent(pi!)?.status).toBe('processing');
    await expectUntouched(no);
    expect((await rows.attempts(no)).map((a) => [a.trigger, a.action, a.gateway_state, a.outcome])).toEqual([
      ['expiry', 'query', 'pending', 'unchanged'],
      ['expiry', 'close', 'pending', 'error'],
    ]);
  });
});
