import { createHmac, createSign, generateKeyPairSync } from 'node:crypto';
import request from 'supertest';
import type { Express } from 'express';
import { sealResource, signNotification } from './wechatpay-notification.ts';

/*
 * Signers for the real gateways, written from their public documentation (not from the adapters), for tests
 * that drive /notify/alipay, /notify/wechatpay and /notify/stripe end to end.
 */

export const ALIPAY_APP_ID = '2021000122600001';
const alipayKeys = generateKeyPairSync('rsa', { modulusLength: 2048 });
export const WECHATPAY_MCH_ID = '1900000109';
const WECHATPAY_APIV3_KEY = 'Vw3xK9pQ2mR7tY5uB8nL4cJ6hF1dS0aZ';
const WECHATPAY_SERIAL = '5157F09EFDC096DE15EBE81A47057A7232F1B8E1';
const wechatKeys = generateKeyPairSync('rsa', { modulusLength: 2048 });
export const STRIPE_SECRET = 'whsec_test_gaps_0123456789abcdefABCDEF';

/** The environment that turns the three adapters on. */
export const GATEWAY_ENV: Record<string, string> = {
  ALIPAY_APP_ID,
  ALIPAY_PUBLIC_KEY: (alipayKeys.publicKey.export({ type: 'spki', format: 'der' }) as Buffer).toString('base64'),
  WECHATPAY_MCH_ID,
  WECHATPAY_APIV3_KEY,
  WECHATPAY_PLATFORM_KEYS: JSON.stringify({ [WECHATPAY_SERIAL]: wechatKeys.publicKey.export({ type: 'spki', format: 'pem' }).toString() }),
  STRIPE_WEBHOOK_SECRET: STRIPE_SECRET,
};

let seq = 0;
const uid = (prefix: string) => `${prefix}${Date.now().toString(36)}${(++seq).toString(36)}`;

/** An Alipay trade_status_sync notification, RSA2-signed (sorted non-empty k=v without sign/sign_type). */
export function alipayNotification(orderNo: string, extra: Record<string, string> = {}): Record<string, string> {
  const params: Record<string, string> = {
    app_id: ALIPAY_APP_ID,
    charset: 'utf-8',
    notify_id: uid('ntf'),
    notify_time: '2024-05-01 12:00:06',
    notify_type: 'trade_status_sync',
    out_trade_no: orderNo,
    total_amount: '12.34',
    trade_no: `2024${orderNo}`,
    trade_status: 'TRADE_SUCCESS',
    version: '1.0',
    ...extra,
  };
  const content = Object.keys(params)
    .filter((k) => params[k] !== '')
    .sort()
    .map((k) => `${k}=${params[k]}`)
    .join('&');
  return { ...params, sign_type: 'RSA2', sign: createSign('RSA-SHA256').update(content, 'utf8').sign(alipayKeys.privateKey, 'base64') };
}

export const postAlipay = (app: Express, params: Record<string, string>) =>
  request(app).post('/notify/alipay').type('form').send(new URLSearchParams(params).toString());

/** A decrypted WeChat Pay v3 transaction resource. */
export function wechatTransaction(orderNo: string, overrides: Record<string, unknown> = {}) {
  return {
    mchid: WECHATPAY_MCH_ID,
    appid: 'wxd678efh567hg6787',
    out_trade_no: orderNo,
    transaction_id: `4200000${orderNo}`,
    trade_type: 'JSAPI',
    trade_state: 'SUCCESS',
    success_time: '2025-06-06T16:00:00+08:00',
    amount: { total: 1234, payer_total: 1234, currency: 'CNY', payer_currency: 'CNY' },
    ...overrides,
  };
}

/** A WeChat Pay v3 notification: the envelope around the AES-256-GCM sealed resource, signed at `timestamp`. */
export function wechatNotification(resource: object, timestamp: number, options: { id?: string; eventType?: string } = {}) {
  const body = JSON.stringify({
    id: options.id ?? uid('EV-'),
    create_time: '2025-06-06T16:00:00+08:00',
    resource_type: 'encrypt-resource',
    event_type: options.eventType ?? 'TRANSACTION.SUCCESS',
    summary: 'notification',
    resource: sealResource(JSON.stringify(resource), { apiV3Key: WECHATPAY_APIV3_KEY, aad: 'transaction' }),
  });
  return signNotification(body, { key: wechatKeys.privateKey, serial: WECHATPAY_SERIAL, at: new Date(timestamp * 1000) });
}

export const postWechat = (app: Express, n: ReturnType<typeof wechatNotification>) =>
  request(app).post('/notify/wechatpay').set(n.headers).set('Content-Type', 'application/json').send(n.body);

/** A Stripe event body with a payment_intent (or another object) naming the order in metadata. */
export function stripeEvent(type: string, object: Record<string, unknown>, id = uid('evt_gaps_')): string {
  return JSON.stringify({ id, object: 'event', type, data: { object } }, null, 2);
}

export function stripeIntent(orderNo: string, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    id: `pi_${orderNo}`,
    object: 'payment_intent',
    amount: 1234,
    amount_received: 1234,
    currency: 'usd',
    metadata: { order_no: orderNo },
    status: 'succeeded',
    ...extra,
  };
}

/** `Stripe-Signature: t=<t>,v1=hex(hmac_sha256(secret, "<t>.<body>"))`, as Stripe documents it. */
export const stripeHeader = (payload: string, t: number) => `t=${t},v1=${createHmac('sha256', STRIPE_SECRET).update(`${t}.${payload}`).digest('hex')}`;

export const postStripe = (app: Express, payload: string, t: number) =>
  request(app).post('/notify/stripe').set('Content-Type', 'application/json').set('Stripe-Signature', stripeHeader(payload, t)).send(payload);
