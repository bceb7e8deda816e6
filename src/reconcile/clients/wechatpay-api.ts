import type { KeyObject } from 'node:crypto';
import { request } from 'undici';
import type { z } from 'zod';
import type { PlatformKeys } from '../../callbacks/gateways/wechatpay-crypto.ts';
import { excerptOf, GatewayCallError } from '../gateway-client.ts';
import { answerProblem, authorizationHeader, loadMerchantPrivateKey, newNonce, type MerchantSigner } from './wechatpay-signing.ts';

export const WECHATPAY_API_BASE = 'https://api.mch.weixin.qq.com';
/** An answer larger than this is not a WeChat Pay transaction or refund: it is not read further. */
const MAX_ANSWER_BYTES = 1 << 20;
const USER_AGENT = 'payment-callback-service (WeChat Pay API v3 reconciler)';

export interface WechatpayClientOptions {
  /** WECHATPAY_MCH_ID (商户号). */
  mchId: string;
  /** WECHATPAY_MCH_SERIAL: the serial number of the merchant API certificate whose key signs the requests. */
  merchantSerial: string;
  /** WECHATPAY_MCH_PRIVATE_KEY: the merchant API private key (apiclient_key.pem). */
  merchantPrivateKey: string | KeyObject;
  /** WECHATPAY_PLATFORM_KEYS, parsed (gateway-keys.ts wechatpayPlatformKeys): the keys that sign WeChat's answers. */
  platformKeys: PlatformKeys;
  /** WECHATPAY_API_BASE; https://api.mch.weixin.qq.com by default. */
  baseUrl?: string;
  /** WECHATPAY_REFUND_NOTIFY_URL: sent with each refund as notify_url (WeChat Pay sends refund results nowhere else). */
  refundNotifyUrl?: string | null;
  timeoutMs: number;
  /** The clock for request timestamps and the answer window (tests). */
  now?: () => number;
}

export interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
  text: string;
}

/** Signed calls to the merchant API v3: the query, close and refund methods share it. */
export interface WechatpayApi {
  mchId: string;
  /** Sends a merchant-signed request; throws GatewayCallError timeout/network (or malformed when the answer is too large). */
  call(method: 'GET' | 'POST', path: string, body: string, signal: AbortSignal): Promise<Answer>;
  /** Throws GatewayCallError bad_signature unless the answer carries a valid, fresh platform signature. */
  authenticate(answer: Answer): void;
}

export const issues = (error: z.ZodError) => error.issues.map((i) => `${i.path.join('.')} ${i.message}`).join('; ');

function parseObject(text: string): Record<string, unknown> | undefined {
  try {
    const value: unknown = JSON.parse(text);
    return value !== null && typeof value === 'object' && !Array.isArray(value) ? (value as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

export function jsonObject(answer: Answer): Record<string, unknown> {
  const fields = parseObject(answer.text);
  if (!fields) throw new GatewayCallError('malformed', `HTTP ${answer.status}: the answer is not a JSON object`, excerptOf(answer.text));
  return fields;
}

/** WeChat's error code (`{"code":"ORDER_NOT_EXIST","message":…}`), when the answer has one. */
export function codeOf(answer: Answer): string | undefined {
  const code = parseObject(answer.text)?.code;
  return typeof code === 'string' ? code : undefined;
}

export function httpError(answer: Answer): GatewayCallError {
  const code = codeOf(answer);
  return new GatewayCallError('http_status', `HTTP ${answer.status}${code ? ` ${code.slice(0, 64)}` : ''} from WeChat Pay`, excerptOf(answer.text));
}

/** Checks the settings (throws naming the setting) and returns the signed-call helpers. */
export function createWechatpayApi(options: WechatpayClientOptions): WechatpayApi {
  if (!options.mchId.trim()) throw new Error('WECHATPAY_MCH_ID: must not be empty');
  if (!/^[\x21-\x7e]{1,64}$/.test(options.merchantSerial)) throw new Error('WECHATPAY_MCH_SERIAL: must be the merchant API certificate serial number');
  if (options.platformKeys.size === 0) throw new Error('WECHATPAY_PLATFORM_KEYS: lists no key');
  const signer: MerchantSigner = { mchId: options.mchId, serial: options.merchantSerial, key: loadMerchantPrivateKey(options.merchantPrivateKey) };
  const base = (options.baseUrl ?? WECHATPAY_API_BASE).replace(/\/+$/, '');
  const now = options.now ?? Date.now;
  // With a WeChat Pay public key configured, say so: WeChat then signs the answer with it (as wechatpay-go does).
  const acceptSerial = [...options.platformKeys.keys()].find((serial) => serial.startsWith('PUB_KEY_ID_'));

  async function call(method: 'GET' | 'POST', path: string, body: string, signal: AbortSignal): Promise<Answer> {
    const url = new URL(base + path);
    const authorization = authorizationHeader(signer, {
      method,
      target: url.pathname + url.search,
      body,
      timestamp: Math.floor(now() / 1000),
      nonce: newNonce(),
    });
    const headers: Record<string, string> = { accept: 'application/json', 'user-agent': USER_AGENT, authorization };
    if (body !== '') headers['content-type'] = 'application/json';
    if (acceptSerial) headers['wechatpay-serial'] = acceptSerial;
    const timeout = AbortSignal.timeout(options.timeoutMs);
    try {
      const res = await request(url, { method, headers, body: body === '' ? undefined : body, signal: AbortSignal.any([signal, timeout]) });
      const chunks: Buffer[] = [];
      let size = 0;
      for await (const chunk of res.body as AsyncIterable<Buffer>) {
        size += chunk.length;
        if (size > MAX_ANSWER_BYTES) {
          res.body.destroy();
          throw new GatewayCallError('malformed', `${method} ${path}: the answer is larger than ${MAX_ANSWER_BYTES} bytes`);
        }
        chunks.push(chunk);
      }
      const raw = Buffer.concat(chunks);
      return { status: res.statusCode, headers: res.headers, body: raw, text: raw.toString('utf8') };
    } catch (err) {
      if (err instanceof GatewayCallError) throw err;
      if (signal.aborted) throw new GatewayCallError('network', `${method} ${path}: aborted`);
      if (timeout.aborted) throw new GatewayCallError('timeout', `${method} ${path}: no answer within ${options.timeoutMs} ms`);
      throw new GatewayCallError('network', `${method} ${path}: ${(err as Error).message}`);
    }
  }

  function authenticate(answer: Answer): void {
    const problem = answerProblem(options.platformKeys, answer.headers, answer.body, now());
    if (problem) throw new GatewayCallError('bad_signature', `HTTP ${answer.status}: ${problem}`, excerptOf(answer.text));
  }

  return { mchId: options.mchId, call, authenticate };
}
