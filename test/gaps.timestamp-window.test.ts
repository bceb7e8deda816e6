import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestContext, TEST_GATEWAY_SECRET, type TestContext } from './helpers/context.ts';
import { ENGINES } from './helpers/engines.ts';
import { signed } from './helpers/gateway-signer.ts';
import { GATEWAY_ENV, postStripe, postWechat, stripeEvent, stripeIntent, wechatNotification, wechatTransaction } from './helpers/gaps-gateways.ts';

/*
 * The replay window of signed timestamps is ±300 s around now (generic A5, WeChat Pay's 5 minutes, Stripe's
 * tolerance), checked on both sides with a clock the test sets: the window's own constant is never the reference.
 */
const WINDOW_S = 300;
const BASE_S = Date.parse('2025-06-06T08:00:00Z') / 1000;

interface Gateway {
  name: string;
  method: string;
  currency: string;
  accepted: number;
  refused: number;
  /** Sends a payment of `orderNo` signed with `timestamp` (unix seconds). */
  send(ctx: TestContext, orderNo: string, timestamp: number): Promise<request.Response>;
}

const GATEWAYS: Gateway[] = [
  {
    name: 'generic',
    method: 'generic',
    currency: 'CNY',
    accepted: 200,
    refused: 409,
    send: (ctx, no, timestamp) =>
      request(ctx.app)
        .post('/notify')
        .type('form')
        .send(signed({ order_no: no, transaction_id: `T-${no}`, amount: '12.34', status: 'success', timestamp: String(timestamp) }, TEST_GATEWAY_SECRET)),
  },
  {
    name: 'wechatpay',
    method: 'wechatpay',
    currency: 'CNY',
    accepted: 204,
    refused: 409,
    send: (ctx, no, timestamp) => postWechat(ctx.app, wechatNotification(wechatTransaction(no), timestamp)),
  },
  {
    name: 'stripe',
    method: 'stripe',
    currency: 'USD',
    accepted: 200,
    refused: 400,
    send: (ctx, no, timestamp) => postStripe(ctx.app, stripeEvent('payment_intent.succeeded', stripeIntent(no)), timestamp),
  },
];

describe.each(ENGINES)('signed timestamps: ±300 s accepted, ±301 s refused, with a fixed clock, on %s', (engine) => {
  let ctx: TestContext;
  let nowMs = BASE_S * 1000;
  let n = 0;
  beforeAll(async () => {
    ctx = await createTestContext(engine, { env: GATEWAY_ENV, clock: () => new Date(nowMs) });
  });
  afterAll(() => ctx.close());

  async function order(gateway: Gateway): Promise<string> {
    const order_no = `TW${engine[0]}${gateway.name[0]}${++n}`;
    const res = await ctx.api('post', '/api/orders').send({ order_no, amount: '12.34', currency: gateway.currency, payment_method: gateway.method });
    expect(res.status, JSON.stringify(res.body)).toBe(201);
    return order_no;
  }
  const row = (no: string) => ctx.db.kysely.selectFrom('orders').select(['status', 'seq']).where('order_no', '=', no).executeTakeFirstOrThrow();
  const verdicts = async (no: string) =>
    (await ctx.db.kysely.selectFrom('payment_logs').select('verdict').where('order_no', '=', no).orderBy('id').execute()).map((l) => l.verdict);
  // WeChat's refusals are logged before the sealed resource (and the order it names) is opened: read the newest entry.
  const lastLog = () => ctx.db.kysely.selectFrom('payment_logs').select(['verdict', 'gateway']).orderBy('id', 'desc').limit(1).executeTakeFirstOrThrow();

  async function expectAccepted(gateway: Gateway, offsetS: number, nowS: number) {
    const no = await order(gateway);
    const res = await gateway.send(ctx, no, nowS + offsetS);
    expect(res.status, `${gateway.name} ${offsetS} s: ${res.text}`).toBe(gateway.accepted);
    expect(await row(no)).toMatchObject({ status: 'paid', seq: 1 });
    expect(await verdicts(no)).toEqual(['applied']);
  }

  async function expectRefused(gateway: Gateway, offsetS: number, nowS: number) {
    const no = await order(gateway);
    const res = await gateway.send(ctx, no, nowS + offsetS);
    expect(res.status, `${gateway.name} ${offsetS} s: ${res.text}`).toBe(gateway.refused);
    expect(await row(no)).toMatchObject({ status: 'pending', seq: 0 });
    expect(await lastLog()).toEqual({ verdict: 'replayed', gateway: gateway.name });
  }

  describe.each(GATEWAYS)('$name', (gateway) => {
    it('on a whole second: -300, -299, +299 and +300 s are accepted; -301 and +301 s are replays', async () => {
      nowMs = BASE_S * 1000;
      for (const offset of [-WINDOW_S, -WINDOW_S + 1, WINDOW_S - 1, WINDOW_S]) await expectAccepted(gateway, offset, BASE_S);
      for (const offset of [-WINDOW_S - 1, WINDOW_S + 1]) await expectRefused(gateway, offset, BASE_S);
    });

    it.each([1, 999])('%d ms past a second: ±299 s are accepted, ±301 s are replays', async (ms) => {
      nowMs = BASE_S * 1000 + ms;
      for (const offset of [-WINDOW_S + 1, WINDOW_S - 1]) await expectAccepted(gateway, offset, BASE_S);
      for (const offset of [-WINDOW_S - 1, WINDOW_S + 1]) await expectRefused(gateway, offset, BASE_S);
    });

    it('far outside the window (an hour, a day) is refused both ways', async () => {
      nowMs = BASE_S * 1000;
      for (const offset of [-3600, 3600, -86_400, 86_400]) await expectRefused(gateway, offset, BASE_S);
    });
  });
});
