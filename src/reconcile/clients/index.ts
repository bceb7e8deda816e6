import type { AppConfig, GatewayName } from '../../config.ts';
import { alipayPrivateKey, alipayPublicKey, wechatpayMerchantKey, wechatpayPlatformKeys } from '../../callbacks/gateways/gateway-keys.ts';
import type { Clock } from '../../shared/time.ts';
import type { GatewayClient, RefundClient } from '../gateway-client.ts';
import { createAlipayClient } from './alipay.client.ts';
import { createGenericRefundClient } from './generic-refund.client.ts';
import { createGenericQueryClient, type QueryTransport } from './generic.client.ts';
import { httpFormTransport } from './http-transport.ts';
import { createStripeClient } from './stripe.client.ts';
import { createWechatpayClient } from './wechatpay.client.ts';

/** The query clients of every gateway whose API is configured (the sandbox's answers in process, when it runs). */
export function createGatewayClients(
  config: Pick<AppConfig, 'gatewayApis' | 'reconcile' | 'secrets'>,
  clock: Clock,
  sandboxTransport: QueryTransport | null,
): Partial<Record<GatewayName, GatewayClient>> {
  const apis = config.gatewayApis;
  const timeoutMs = config.reconcile.timeoutMs;
  const secret = config.secrets.GATEWAY_SECRET;
  const clients: Partial<Record<GatewayName, GatewayClient>> = {};
  if (sandboxTransport) clients.sandbox = createGenericQueryClient('sandbox', secret, sandboxTransport, clock);
  if (apis.generic) clients.generic = createGenericQueryClient('generic', secret, httpFormTransport(apis.generic.queryUrl, timeoutMs), clock);
  if (apis.alipay)
    clients.alipay = createAlipayClient({
      appId: apis.alipay.appId,
      privateKey: alipayPrivateKey(apis.alipay.privateKey),
      publicKey: alipayPublicKey(apis.alipay.publicKey),
      gatewayUrl: apis.alipay.gatewayUrl,
      timeoutMs,
    });
  if (apis.wechatpay)
    clients.wechatpay = createWechatpayClient({
      mchId: apis.wechatpay.mchId,
      merchantSerial: apis.wechatpay.serial,
      merchantPrivateKey: wechatpayMerchantKey(apis.wechatpay.privateKey),
      platformKeys: wechatpayPlatformKeys(apis.wechatpay.platformKeys),
      baseUrl: apis.wechatpay.apiBase,
      refundNotifyUrl: apis.wechatpay.refundNotifyUrl,
      timeoutMs,
      now: () => clock().getTime(),
    });
  if (apis.stripe) clients.stripe = createStripeClient({ secretKey: apis.stripe.secretKey, apiBase: apis.stripe.apiBase, timeoutMs });
  return clients;
}

/**
 * The refund clients of every gateway whose refund API is configured: the generic gateway with GENERIC_REFUND_URL
 * (asked about refunds at GENERIC_QUERY_URL when set), the sandbox in process when it runs, and the real gateways'
 * from their query clients (same credentials).
 */
export function createRefundClients(
  config: Pick<AppConfig, 'gatewayApis' | 'reconcile' | 'secrets'>,
  clock: Clock,
  clients: Partial<Record<GatewayName, GatewayClient>>,
  sandbox: { refund: QueryTransport; query: QueryTransport } | null,
): Partial<Record<GatewayName, RefundClient>> {
  const apis = config.gatewayApis;
  const timeoutMs = config.reconcile.timeoutMs;
  const secret = config.secrets.GATEWAY_SECRET;
  const refunds: Partial<Record<GatewayName, RefundClient>> = {};
  if (sandbox) refunds.sandbox = createGenericRefundClient('sandbox', secret, sandbox.refund, sandbox.query, clock);
  if (apis.genericRefundUrl) {
    const query = apis.generic ? httpFormTransport(apis.generic.queryUrl, timeoutMs) : null;
    refunds.generic = createGenericRefundClient('generic', secret, httpFormTransport(apis.genericRefundUrl, timeoutMs), query, clock);
  }
  for (const gateway of ['alipay', 'wechatpay', 'stripe'] as const) {
    const client = clients[gateway]?.refunds;
    if (client) refunds[gateway] = client;
  }
  return refunds;
}
