import { createCipheriv, randomBytes, sign, type KeyObject } from 'node:crypto';

/*
 * WeChat Pay API v3 notifications built with node:crypto as WeChat documents them (签名验证 / 回调报文解密),
 * independently of the adapter:
 *   resource.ciphertext = base64(AES-256-GCM(APIv3 key, iv = resource.nonce, aad = resource.associated_data) || tag)
 *   Wechatpay-Signature = base64(SHA256withRSA(platform private key, `${timestamp}\n${nonce}\n${body}\n`))
 */

export interface WechatpayNotification {
  body: string;
  headers: Record<string, string>;
}

/** A notification's sealed `resource` (`original_type` is the aad unless told otherwise). */
export function sealResource(plaintext: string, o: { apiV3Key: string; aad: string; originalType?: string; nonce?: string }) {
  const nonce = o.nonce ?? randomBytes(6).toString('hex'); // 12 characters, as WeChat sends
  const cipher = createCipheriv('aes-256-gcm', Buffer.from(o.apiV3Key, 'utf8'), Buffer.from(nonce, 'utf8'));
  cipher.setAAD(Buffer.from(o.aad, 'utf8'));
  const ciphertext = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final(), cipher.getAuthTag()]).toString('base64');
  return { original_type: o.originalType ?? o.aad, algorithm: 'AEAD_AES_256_GCM', ciphertext, associated_data: o.aad, nonce };
}

/** The body with the Wechatpay-* headers WeChat sends with it: signed with the platform key `key` (serial `serial`) at `at`. */
export function signNotification(body: string, o: { key: KeyObject; serial: string; at: Date; nonce?: string }): WechatpayNotification {
  const timestamp = String(Math.floor(o.at.getTime() / 1000));
  const nonce = o.nonce ?? randomBytes(16).toString('hex').toUpperCase();
  const signature = sign('sha256', Buffer.from(`${timestamp}\n${nonce}\n${body}\n`, 'utf8'), o.key).toString('base64');
  return {
    body,
    headers: { 'wechatpay-serial': o.serial, 'wechatpay-signature': signature, 'wechatpay-timestamp': timestamp, 'wechatpay-nonce': nonce },
  };
}
