import { createPrivateKey, randomInt, sign, type KeyObject } from 'node:crypto';
import { findPlatformKey, verifyNotificationSignature, type PlatformKeys } from '../../callbacks/gateways/wechatpay-crypto.ts';

/*
 * WeChat Pay API v3 request signing and answer verification, as the official wechatpay-go SDK does it:
 * - Authorization: `WECHATPAY2-SHA256-RSA2048 mchid="…",nonce_str="…",timestamp="…",serial_no="…",signature="…"`,
 *   the signature SHA256withRSA (merchant private key) over "METHOD\nrequest-target\ntimestamp\nnonce\nbody\n";
 * - every answer it acts on carries Wechatpay-Timestamp/-Nonce/-Signature/-Serial, the signature over
 *   "timestamp\nnonce\nbody\n" (an empty body included) with the platform key the serial names.
 */

/** wechatpay-go refuses an answer whose Wechatpay-Timestamp is this far (or further) from now. */
export const ANSWER_WINDOW_S = 300;

export interface MerchantSigner {
  mchId: string;
  /** The merchant API certificate's serial number (WECHATPAY_MCH_SERIAL). */
  serial: string;
  key: KeyObject;
}

/** WECHATPAY_MCH_PRIVATE_KEY (apiclient_key.pem, PKCS#8 or PKCS#1) as an RSA private key; throws naming the setting. */
export function loadMerchantPrivateKey(pem: string | KeyObject): KeyObject {
  let key: KeyObject;
  try {
    // Tolerate PEMs pasted with literal "\n" sequences instead of newlines.
    key = typeof pem === 'string' ? createPrivateKey(pem.trim().replace(/\\n/g, '\n')) : pem;
  } catch (err) {
    throw new Error(`WECHATPAY_MCH_PRIVATE_KEY: not a PEM private key (${(err as Error).message})`, { cause: err });
  }
  if (key.type !== 'private' || key.asymmetricKeyType !== 'rsa')
    throw new Error('WECHATPAY_MCH_PRIVATE_KEY: must be the RSA private key of the merchant API certificate');
  return key;
}

/** base64(SHA256withRSA(message)), PKCS#1 v1.5 as WeChat Pay verifies it. */
export function signMessage(key: KeyObject, message: string): string {
  return sign('sha256', Buffer.from(message, 'utf8'), key).toString('base64');
}

const NONCE_SYMBOLS = '0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ';

/** 32 random letters and digits, like wechatpay-go's GenerateNonce. */
export function newNonce(): string {
  return Array.from({ length: 32 }, () => NONCE_SYMBOLS[randomInt(NONCE_SYMBOLS.length)]).join('');
}

export interface SignedRequest {
  method: string;
  /** Path and query exactly as sent (the request target). */
  target: string;
  body: string;
  timestamp: number;
  nonce: string;
}

export function authorizationHeader(signer: MerchantSigner, r: SignedRequest): string {
  const signature = signMessage(signer.key, `${r.method}\n${r.target}\n${r.timestamp}\n${r.nonce}\n${r.body}\n`);
  return `WECHATPAY2-SHA256-RSA2048 mchid="${signer.mchId}",nonce_str="${r.nonce}",timestamp="${r.timestamp}",serial_no="${signer.serial}",signature="${signature}"`;
}

/** One header value from undici's headers; a header sent twice is not trusted. */
function header(headers: Record<string, string | string[] | undefined>, name: string): string | undefined {
  const value = headers[name];
  return typeof value === 'string' && value.trim() !== '' ? value.trim() : undefined;
}

/** Why an answer is not WeChat Pay's (missing headers, unknown serial, bad signature, stale timestamp), or undefined when it is. */
export function answerProblem(keys: PlatformKeys, headers: Record<string, string | string[] | undefined>, body: Buffer, nowMs: number): string | undefined {
  const serial = header(headers, 'wechatpay-serial');
  const signature = header(headers, 'wechatpay-signature');
  const timestamp = header(headers, 'wechatpay-timestamp');
  const nonce = header(headers, 'wechatpay-nonce');
  if (!serial || !signature || !timestamp || !nonce) return 'the answer is not signed (Wechatpay-Serial/-Signature/-Timestamp/-Nonce missing or repeated)';
  const key = findPlatformKey(keys, serial);
  if (!key) return `Wechatpay-Serial ${serial.slice(0, 64)} is not in WECHATPAY_PLATFORM_KEYS (a new platform key? add its serial)`;
  if (!verifyNotificationSignature(key, timestamp, nonce, body, signature)) return `Wechatpay-Signature does not match the answer for platform key ${serial}`;
  if (!/^\d{1,12}$/.test(timestamp) || Math.abs(nowMs / 1000 - Number(timestamp)) >= ANSWER_WINDOW_S) {
    return `Wechatpay-Timestamp ${timestamp.slice(0, 16)} is ${ANSWER_WINDOW_S} s or more away from now`;
  }
  return undefined;
}
