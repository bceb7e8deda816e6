import type { KeyObject } from 'node:crypto';
import Pay from 'wechatpay-node-v3';
import { beforeAll } from 'vitest';

/*
 * wechatpay-node-v3 as a second reader of the WeChat Pay notifications the tests build themselves: what it accepts
 * and decrypts, the adapter must too.
 */

interface Notification {
  body: string;
  headers: Record<string, string>;
}

/**
 * The SDK for notifications to `mchId` sealed under `apiV3Key`. It verifies with platform keys it keeps by serial
 * (normally downloaded from WeChat): the suite's are preloaded before its tests, so no network.
 */
export function wechatpaySdk(mchId: string, apiV3Key: string, platforms: { serial: string; publicKey: KeyObject }[]): Pay {
  const sdk = new Pay({
    appid: 'wxd678efh567hg6787',
    mchid: mchId,
    publicKey: Buffer.from('unused'),
    privateKey: Buffer.from('unused'),
    serial_no: 'unused',
    key: apiV3Key,
  });
  beforeAll(() => {
    const certificates = (Pay as unknown as { certificates: Record<string, string> }).certificates;
    for (const p of platforms) certificates[p.serial] = p.publicKey.export({ type: 'spki', format: 'pem' }).toString();
  });
  return sdk;
}

/** The SDK's verdict on a notification's Wechatpay-Signature over its timestamp, nonce and body. */
export function sdkVerifies(sdk: Pay, n: Notification): Promise<boolean> {
  const h = n.headers;
  return sdk.verifySign({
    timestamp: h['wechatpay-timestamp']!,
    nonce: h['wechatpay-nonce']!,
    body: n.body,
    serial: h['wechatpay-serial']!,
    signature: h['wechatpay-signature']!,
  });
}

/** The notification's resource as the SDK decrypts it. */
export function sdkDecrypts(sdk: Pay, n: Notification, apiV3Key: string): unknown {
  const { resource } = JSON.parse(n.body) as { resource: { ciphertext: string; associated_data: string; nonce: string } };
  return sdk.decipher_gcm(resource.ciphertext, resource.associated_data, resource.nonce, apiV3Key);
}
