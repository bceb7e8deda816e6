import { createHash, createHmac } from 'node:crypto';

/**
 * An independent implementation of the DESIGN A5 signature, written the way a gateway's PHP SDK does it
 * (ksort, skip empty, k=v&..., &key=), so the tests do not trust the project's own signer.
 */
export function gatewaySign(params: Record<string, string>, key: string, signType: 'MD5' | 'HMAC-SHA256' = 'MD5'): string {
  const keys = Object.keys(params).filter((k) => k !== 'sign' && params[k] !== '');
  keys.sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
  let text = '';
  for (const k of keys) text += (text ? '&' : '') + k + '=' + params[k];
  text += '&key=' + key;
  const hex = signType === 'MD5' ? createHash('md5').update(text).digest('hex') : createHmac('sha256', key).update(text).digest('hex');
  return hex.toUpperCase();
}

export function signed(params: Record<string, string>, key: string, signType: 'MD5' | 'HMAC-SHA256' = 'MD5'): Record<string, string> {
  const withType = signType === 'MD5' ? params : { ...params, sign_type: 'HMAC-SHA256' };
  return { ...withType, sign: gatewaySign(withType, key, signType) };
}

export const nowSeconds = () => String(Math.floor(Date.now() / 1000));
