import { createPrivateKey, type KeyObject } from 'node:crypto';
import { loadAlipayPublicKey } from './alipay-signature.ts';
import { parsePlatformKeys, type PlatformKeys } from './wechatpay-crypto.ts';

/*
 * The gateways' keys arrive as text, and config.ts keeps them so: they are parsed here, once per text.
 * loadConfig reports a key that cannot be parsed together with its other problems (gatewayKeyProblems),
 * and the adapters built at start take the key that check already parsed.
 */

const parsed = new Map<string, unknown>();

function once<T>(name: string, text: string, parse: (text: string) => T): T {
  const id = `${name}\n${text}`;
  if (parsed.has(id)) return parsed.get(id) as T;
  const value = parse(text); // a failure throws and is not remembered: the next caller hears it too
  parsed.set(id, value);
  return value;
}

/** ALIPAY_PUBLIC_KEY as a key object (see loadAlipayPublicKey for the forms accepted). */
export const alipayPublicKey = (text: string): KeyObject => once('ALIPAY_PUBLIC_KEY', text, loadAlipayPublicKey);

/** WECHATPAY_PLATFORM_KEYS as the platform keys by serial (see parsePlatformKeys). */
export const wechatpayPlatformKeys = (text: string): PlatformKeys => once('WECHATPAY_PLATFORM_KEYS', text, parsePlatformKeys);

/** A PEM private key (PKCS#8 or PKCS#1), or the bare base64 of either, as the gateways' consoles hand them out. */
function loadPrivateKey(text: string): KeyObject {
  const trimmed = text.trim();
  if (trimmed.startsWith('-----BEGIN')) return createPrivateKey(trimmed.replace(/\\n/g, '\n'));
  const der = Buffer.from(trimmed.replace(/\s+/g, ''), 'base64');
  try {
    return createPrivateKey({ key: der, format: 'der', type: 'pkcs8' });
  } catch {
    try {
      return createPrivateKey({ key: der, format: 'der', type: 'pkcs1' });
    } catch {
      throw new Error('is not a PEM or base64 (PKCS#8 or PKCS#1) RSA private key');
    }
  }
}

/** ALIPAY_PRIVATE_KEY (the app's key that signs requests to Alipay's OpenAPI). */
export const alipayPrivateKey = (text: string): KeyObject => once('ALIPAY_PRIVATE_KEY', text, loadPrivateKey);

/** WECHATPAY_MCH_PRIVATE_KEY (the merchant API key that signs requests to WeChat Pay). */
export const wechatpayMerchantKey = (text: string): KeyObject => once('WECHATPAY_MCH_PRIVATE_KEY', text, loadPrivateKey);

const PARSERS: ReadonlyArray<readonly [name: string, parse: (text: string) => unknown]> = [
  ['ALIPAY_PUBLIC_KEY', alipayPublicKey],
  ['WECHATPAY_PLATFORM_KEYS', wechatpayPlatformKeys],
  ['ALIPAY_PRIVATE_KEY', alipayPrivateKey],
  ['WECHATPAY_MCH_PRIVATE_KEY', wechatpayMerchantKey],
];

/** What is wrong with the gateway keys set in `env` (blank ones count as unset), each problem named by its variable. */
export function gatewayKeyProblems(env: Readonly<Record<string, string | undefined>>): string[] {
  const problems: string[] = [];
  for (const [name, parse] of PARSERS) {
    const text = env[name];
    if (text === undefined || text.trim() === '') continue;
    try {
      parse(text);
    } catch (err) {
      const message = (err as Error).message;
      problems.push(message.startsWith(name) ? message : `${name}: ${message}`);
    }
  }
  return problems;
}
