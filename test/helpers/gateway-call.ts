import { expect } from 'vitest';
import { parsePlatformKeys } from '../../src/callbacks/gateways/wechatpay-crypto.ts';
import { createAlipayClient, type AlipayClientOptions } from '../../src/reconcile/clients/alipay.client.ts';
import { createStripeClient } from '../../src/reconcile/clients/stripe.client.ts';
import type { WechatpayClientOptions } from '../../src/reconcile/clients/wechatpay.client.ts';
import { GatewayCallError } from '../../src/reconcile/gateway-client.ts';
import { ALIPAY_STANDIN_KEYS } from './alipay-standin.ts';
import { STRIPE_STANDIN_KEYS } from './stripe-standin.ts';
import { WECHATPAY_STANDIN_KEYS } from './wechatpay-standin.ts';

/*
 * What the gateway client tests (query and refund, per gateway) share: the clients pointed at their stand-ins with
 * the stand-ins' keys, and the check that a call failed with a GatewayCallError.
 */

/** The GatewayCallError a promise rejects with (fails the test when it resolves or throws something else). */
export async function failure(promise: Promise<unknown>): Promise<GatewayCallError> {
  const err = await promise.then(
    (v) => new Error(`resolved with ${JSON.stringify(v)}`),
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(GatewayCallError);
  return err as GatewayCallError;
}

/** The Alipay client at a stand-in's gateway.do, with the stand-in's app key (PKCS#1 PEM unless told) and platform key. */
export const alipayClient = (gatewayUrl: string, over: Partial<AlipayClientOptions> = {}) =>
  createAlipayClient({
    appId: ALIPAY_STANDIN_KEYS.appId,
    privateKey: ALIPAY_STANDIN_KEYS.appPrivatePkcs1Pem,
    publicKey: ALIPAY_STANDIN_KEYS.platformPublicKeyBare,
    gatewayUrl,
    timeoutMs: 5000,
    ...over,
  });

/** The WeChat Pay client's settings for a stand-in: its merchant key and serial, its platform keys, a 2 s limit. */
export const wechatpayClientOptions = (baseUrl: string, overrides: Partial<WechatpayClientOptions> = {}): WechatpayClientOptions => ({
  mchId: WECHATPAY_STANDIN_KEYS.mchId,
  merchantSerial: WECHATPAY_STANDIN_KEYS.merchantSerial,
  merchantPrivateKey: WECHATPAY_STANDIN_KEYS.merchantPrivateKeyPem,
  platformKeys: parsePlatformKeys(WECHATPAY_STANDIN_KEYS.platformKeysJson),
  baseUrl,
  timeoutMs: 2000,
  ...overrides,
});

/** The Stripe client at `apiBase` with the stand-in's secret key unless told another. */
export const stripeClient = (apiBase: string, timeoutMs: number, secretKey: string = STRIPE_STANDIN_KEYS.secretKey) =>
  createStripeClient({ secretKey, apiBase, timeoutMs });
