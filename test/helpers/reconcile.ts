import { createSign, randomBytes } from 'node:crypto';
import type { Express } from 'express';
import Stripe from 'stripe';
import request from 'supertest';
import type { Database } from '../../src/db/database.ts';
import type { Clock } from '../../src/shared/time.ts';
import { ALIPAY_STANDIN_KEYS, type AlipayStandin } from './alipay-standin.ts';
import { STRIPE_STANDIN_KEYS, type StripeStandin } from './stripe-standin.ts';
import { WECHATPAY_STANDIN_KEYS, wechatpayStandinEnv, type WechatpayStandin } from './wechatpay-standin.ts';
import { sealResource, signNotification } from './wechatpay-notification.ts';

/** The real time shifted by an offset the test moves: the stand-ins and signatures stay within their 300 s windows. */
export function testClock() {
  let offset = 0;
  const now: Clock = () => new Date(Date.now() + offset);
  return {
    now,
    advance: (ms: number) => void (offset += ms),
    reset: () => void (offset = 0),
  };
}
export type TestClock = ReturnType<typeof testClock>;

/** One sample of a Prometheus text exposition (0 when the series has not been written yet). */
export function metricValue(text: string, name: string, labels: Record<string, string>): number {
  for (const line of text.split('\n')) {
    const m = /^(\w+)\{([^}]*)\} (\S+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const seen = Object.fromEntries([...m[2]!.matchAll(/(\w+)="([^"]*)"/g)].map((l) => [l[1]!, l[2]!]));
    if (Object.keys(labels).length === Object.keys(seen).length && Object.entries(labels).every(([k, v]) => seen[k] === v)) return Number(m[3]);
  }
  return 0;
}

/** What the tests read back about one order. */
export function rowReaders(db: Database) {
  const k = db.kysely;
  return {
    order: (no: string) => k.selectFrom('orders').selectAll().where('order_no', '=', no).executeTakeFirstOrThrow(),
    logs: (no: string) => k.selectFrom('payment_logs').selectAll().where('order_no', '=', no).orderBy('id').execute(),
    events: (no: string) => k.selectFrom('notifications').selectAll().where('order_no', '=', no).orderBy('seq').execute(),
    attempts: (no: string) => k.selectFrom('reconcile_attempts').selectAll().where('order_no', '=', no).orderBy('id').execute(),
  };
}

export type GatewayName = 'alipay' | 'wechatpay' | 'stripe';

/** One gateway's stand-in seen the same way by the table-driven tests; amounts are minor units of `currency`. */
export interface GatewayDriver {
  name: GatewayName;
  currency: string;
  /** The gateway took the payment (`txn` as its transaction id) of `minor`. */
  paid(no: string, txn: string, minor: number): void;
  /** Waiting for the buyer. */
  pending(no: string): void;
  /** Closed (canceled) at the gateway. */
  closed(no: string): void;
  /** Query requests about the order the stand-in received. */
  queries(no: string): number;
  closeRequests(no: string): number;
  isClosedThere(no: string): boolean;
  /** The transaction id this gateway would use for an order (a Stripe PaymentIntent id must look like one). */
  txnOf(no: string): string;
  behave(b: string): void;
  /** The gateway's signed callback saying the payment succeeded, sent to the app. */
  callback(app: Express, now: Date, no: string, txn: string, minor: number): request.Test;
}

/** Each stand-in's failure modes and the GatewayCallError kind each must come to (Stripe's answers are not signed: TLS and the key vouch for them). */
export const FAILURES: Record<GatewayName, Record<string, string>> = {
  alipay: { 'mis-signed': 'bad_signature', unsigned: 'bad_signature', garbage: 'malformed', 'http-500': 'http_status', hang: 'timeout' },
  wechatpay: {
    'mis-signed': 'bad_signature',
    unsigned: 'bad_signature',
    stale: 'bad_signature',
    'unknown-serial': 'bad_signature',
    garbage: 'malformed',
    'http-500': 'http_status',
    hang: 'timeout',
  },
  stripe: { garbage: 'malformed', incomplete: 'malformed', 'http-500': 'http_status', hang: 'timeout' },
};

const decimal = (minor: number) => (minor / 100).toFixed(2);
const unix = (d: Date) => Math.floor(d.getTime() / 1000);

export function alipayDriver(s: AlipayStandin): GatewayDriver {
  const about = (no: string, api: string) =>
    s.requests.filter((r) => r.api === api && (JSON.parse(r.params.biz_content ?? '{}') as { out_trade_no?: string }).out_trade_no === no).length;
  const trade = (no: string, status: 'WAIT_BUYER_PAY' | 'TRADE_SUCCESS' | 'TRADE_CLOSED', extra: { tradeNo?: string; minor?: number } = {}) =>
    s.setTrade(no, { status, totalAmount: decimal(extra.minor ?? 1234), tradeNo: extra.tradeNo });
  return {
    name: 'alipay',
    currency: 'CNY',
    paid: (no, txn, minor) => trade(no, 'TRADE_SUCCESS', { tradeNo: txn, minor }),
    pending: (no) => trade(no, 'WAIT_BUYER_PAY'),
    closed: (no) => trade(no, 'TRADE_CLOSED'),
    queries: (no) => about(no, 'alipay.trade.query'),
    closeRequests: (no) => about(no, 'alipay.trade.close'),
    isClosedThere: (no) => s.trade(no)?.status === 'TRADE_CLOSED',
    txnOf: (no) => `2024050122${no}`,
    behave: (b) => s.setBehaviour(b as Parameters<AlipayStandin['setBehaviour']>[0]),
    callback(app, _now, no, txn, minor) {
      // A trade_status_sync notification signed with Alipay's key as test/gateway.alipay.test.ts does (sign and sign_type left out).
      const params: Record<string, string> = {
        app_id: ALIPAY_STANDIN_KEYS.appId,
        charset: 'utf-8',
        notify_id: `N${randomBytes(8).toString('hex')}`,
        notify_time: '2024-05-01 12:00:06',
        notify_type: 'trade_status_sync',
        out_trade_no: no,
        total_amount: decimal(minor),
        trade_no: txn,
        trade_status: 'TRADE_SUCCESS',
        version: '1.0',
      };
      const content = Object.keys(params)
        .sort()
        .map((key) => `${key}=${params[key]}`)
        .join('&');
      const signature = createSign('RSA-SHA256').update(content, 'utf8').sign(ALIPAY_STANDIN_KEYS.platformPrivateKey, 'base64');
      return request(app)
        .post('/notify/alipay')
        .type('form')
        .send(new URLSearchParams({ ...params, sign_type: 'RSA2', sign: signature }).toString());
    },
  };
}

export function wechatpayDriver(s: WechatpayStandin): GatewayDriver {
  const path = (no: string) => `/v3/pay/transactions/out-trade-no/${no}`;
  const apiV3Key = wechatpayStandinEnv(s).WECHATPAY_APIV3_KEY!;
  return {
    name: 'wechatpay',
    currency: 'CNY',
    paid: (no, txn, minor) => s.setTrade(no, { state: 'SUCCESS', transactionId: txn, total: minor }),
    pending: (no) => s.setTrade(no, { state: 'NOTPAY', total: 1234 }),
    closed: (no) => s.setTrade(no, { state: 'CLOSED', total: 1234 }),
    queries: (no) => s.requests.filter((r) => r.method === 'GET' && r.url.startsWith(`${path(no)}?`)).length,
    closeRequests: (no) => s.requests.filter((r) => r.method === 'POST' && r.url === `${path(no)}/close`).length,
    isClosedThere: (no) => s.trade(no)?.state === 'CLOSED',
    txnOf: (no) => `4200001${no}`,
    behave: (b) => s.setBehaviour(b as Parameters<WechatpayStandin['setBehaviour']>[0]),
    callback(app, now, no, txn, minor) {
      // Sealed and signed as test/gateway.wechatpay.test.ts builds WeChat's 支付成功通知.
      const resource = {
        mchid: WECHATPAY_STANDIN_KEYS.mchId,
        appid: 'wxd678efh567hg6787',
        out_trade_no: no,
        transaction_id: txn,
        trade_type: 'NATIVE',
        trade_state: 'SUCCESS',
        trade_state_desc: '支付成功',
        bank_type: 'CMC',
        attach: '',
        success_time: '2025-06-06T16:00:00+08:00',
        payer: { openid: 'oUpF8uMuAJO_M2pxb1Q9zNjWeS6o' },
        amount: { total: minor, payer_total: minor, currency: 'CNY', payer_currency: 'CNY' },
      };
      const body = JSON.stringify({
        id: `EV-${randomBytes(8).toString('hex')}`,
        create_time: '2025-06-06T16:00:00+08:00',
        resource_type: 'encrypt-resource',
        event_type: 'TRANSACTION.SUCCESS',
        summary: '支付成功',
        resource: sealResource(JSON.stringify(resource), { apiV3Key, aad: 'transaction' }),
      });
      const n = signNotification(body, { key: WECHATPAY_STANDIN_KEYS.platformPrivateKey, serial: WECHATPAY_STANDIN_KEYS.platformSerial, at: now });
      return request(app).post('/notify/wechatpay').set(n.headers).set('Content-Type', 'application/json').send(n.body);
    },
  };
}

/** The official SDK signs webhook events as test/gateway.stripe.test.ts does; no request leaves the process. */
const stripeSdk = new Stripe('sk_test_not_used_offline');

/** A Stripe event as Stripe sends it (pretty-printed), with its Stripe-Signature header. */
export function stripeEvent(now: Date, type: string, object: Record<string, unknown>) {
  const payload = JSON.stringify(
    {
      id: `evt_${randomBytes(8).toString('hex')}`,
      object: 'event',
      api_version: '2025-06-30.basil',
      created: unix(now),
      data: { object },
      livemode: false,
      type,
    },
    null,
    2,
  );
  return { payload, signature: stripeSdk.webhooks.generateTestHeaderString({ payload, secret: STRIPE_STANDIN_KEYS.webhookSecret, timestamp: unix(now) }) };
}

export const sendStripeEvent = (app: Express, event: { payload: string; signature: string }) =>
  request(app).post('/notify/stripe').set('Content-Type', 'application/json; charset=utf-8').set('Stripe-Signature', event.signature).send(event.payload);

export function stripeDriver(s: StripeStandin): GatewayDriver {
  const intentId = (no: string) => `pi_${no}`;
  /** A look searches by metadata.order_no, or retrieves the PaymentIntent remembered from a callback (enough when it succeeded). */
  const looks = (no: string) =>
    s.requests.filter(
      (r) =>
        r.method === 'GET' &&
        (r.url === `/v1/payment_intents/${intentId(no)}` || new URL(r.url, 'http://x').searchParams.get('query') === `metadata['order_no']:'${no}'`),
    ).length;
  return {
    name: 'stripe',
    currency: 'USD',
    paid: (no, txn, minor) => void s.setTrade(no, { id: txn, status: 'succeeded', amount: minor }),
    pending: (no) => void s.setTrade(no, { id: intentId(no), status: 'requires_payment_method' }),
    closed: (no) => void s.setTrade(no, { id: intentId(no), status: 'canceled' }),
    queries: looks,
    closeRequests: (no) => s.requests.filter((r) => r.method === 'POST' && r.url === `/v1/payment_intents/${intentId(no)}/cancel`).length,
    isClosedThere: (no) => s.intent(intentId(no))?.status === 'canceled',
    txnOf: intentId,
    behave: (b) => s.setBehaviour(b as Parameters<StripeStandin['setBehaviour']>[0]),
    callback: (app, now, no, txn, minor) =>
      sendStripeEvent(
        app,
        stripeEvent(now, 'payment_intent.succeeded', {
          id: txn,
          object: 'payment_intent',
          amount: minor,
          amount_received: minor,
          currency: 'usd',
          metadata: { order_no: no },
          status: 'succeeded',
        }),
      ),
  };
}
