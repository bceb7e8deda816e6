import type { KeyObject } from 'node:crypto';
import { request } from 'undici';
import { z } from 'zod';
import type { PlatformKeys } from '../../callbacks/gateways/wechatpay-crypto.ts';
import { swallowsPair } from '../../shared/signing.ts';
import { excerptOf, GatewayCallError, type GatewayClient, type QueryAnswer, type QueryTarget } from '../gateway-client.ts';
import { answerProblem, authorizationHeader, loadMerchantPrivateKey, newNonce, type MerchantSigner } from './wechatpay-signing.ts';

export const WECHATPAY_API_BASE = 'https://api.mch.weixin.qq.com';
/** An answer larger than this is not a WeChat Pay transaction: it is not read further. */
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
  timeoutMs: number;
  /** The clock for request timestamps and the answer window (tests). */
  now?: () => number;
}

interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
  text: string;
}

const printable = z.string().regex(/^[\x21-\x7e]{1,128}$/, 'must be 1-128 printable ASCII characters');
const answerSchema = z.object({ out_trade_no: z.string(), mchid: z.string(), trade_state: z.string() });
/** The same conventions as the notification adapter: a query and a callback of one payment name the same transaction. */
const paidSchema = z.object({
  transaction_id: printable.refine((v) => !swallowsPair(v), 'must not contain "&" followed by a parameter name and "="'),
  amount: z.object({
    total: z.number().int().nonnegative().refine(Number.isSafeInteger, 'is too large'),
    currency: z.string().regex(/^[A-Z]{3}$/, 'must be an ISO 4217 code'),
  }),
});
const PAID_STATES = new Set(['SUCCESS', 'REFUND']); // REFUND: paid, then (partly) refunded
const UNPAID_STATES: Record<string, 'pending' | 'failed' | 'closed'> = {
  NOTPAY: 'pending',
  USERPAYING: 'pending',
  PAYERROR: 'failed',
  CLOSED: 'closed',
  REVOKED: 'closed',
};

const issues = (error: z.ZodError) => error.issues.map((i) => `${i.path.join('.')} ${i.message}`).join('; ');

function parseObject(text: string): Record<string, unknown> | undefined {
  try {
    const value: unknown = JSON.parse(text);
    return value !== null && typeof value === 'object' && !Array.isArray(value) ? (value as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

function jsonObject(answer: Answer): Record<string, unknown> {
  const fields = parseObject(answer.text);
  if (!fields) throw new GatewayCallError('malformed', `HTTP ${answer.status}: the answer is not a JSON object`, excerptOf(answer.text));
  return fields;
}

/** WeChat's error code (`{"code":"ORDER_NOT_EXIST","message":…}`), when the answer has one. */
function codeOf(answer: Answer): string | undefined {
  const code = parseObject(answer.text)?.code;
  return typeof code === 'string' ? code : undefined;
}

function httpError(answer: Answer): GatewayCallError {
  const code = codeOf(answer);
  return new GatewayCallError('http_status', `HTTP ${answer.status}${code ? ` ${code.slice(0, 64)}` : ''} from WeChat Pay`, excerptOf(answer.text));
}

/** The verified transaction (查询订单 answer) in the reconciler's terms. */
function readTransaction(fields: Record<string, unknown>, orderNo: string, mchId: string, text: string): QueryAnswer {
  const malformed = (message: string) => new GatewayCallError('malformed', message, excerptOf(text));
  const base = answerSchema.safeParse(fields);
  if (!base.success) throw malformed(`Invalid transaction: ${issues(base.error)}`);
  const { out_trade_no: answered, mchid, trade_state: state } = base.data;
  if (answered !== orderNo) throw malformed(`the answer is about out_trade_no ${answered.slice(0, 64)}, not ${orderNo}`);
  const mismatch = mchid === mchId ? undefined : `mchid ${mchid.slice(0, 64)} is not WECHATPAY_MCH_ID`;
  if (PAID_STATES.has(state)) {
    const paid = paidSchema.safeParse(fields);
    if (!paid.success) throw malformed(`Invalid ${state} transaction: ${issues(paid.error)}`);
    const { transaction_id: transactionId, amount } = paid.data;
    return {
      state: 'paid',
      transactionId,
      amount: { kind: 'minor', value: amount.total },
      currency: amount.currency,
      fields,
      ...(mismatch ? { mismatch } : {}),
    };
  }
  // Only a payment is flagged and kept: another merchant's "closed" or "not paid" must change nothing.
  if (mismatch) throw malformed(`${mismatch} (trade_state ${state.slice(0, 32)})`);
  const mapped = UNPAID_STATES[state];
  if (!mapped) throw malformed(`trade_state ${state.slice(0, 32)} is not one WeChat Pay documents`);
  return { state: mapped, gatewayStatus: state, fields };
}

/**
 * WeChat Pay API v3 查询订单 (by out_trade_no) and 关闭订单, signed with the merchant API key. Like the official SDK,
 * every answer acted on must carry a valid platform signature: a 2xx (the empty 204 of a close too) and the
 * ORDER_NOT_EXIST answer that makes a query `not_found` or a close succeed. Construction throws, naming the setting.
 */
export function createWechatpayClient(options: WechatpayClientOptions): GatewayClient {
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

  const orderPath = (orderNo: string) => `/v3/pay/transactions/out-trade-no/${encodeURIComponent(orderNo)}`;

  return {
    gateway: 'wechatpay',
    async query(target: QueryTarget, signal: AbortSignal): Promise<QueryAnswer> {
      const answer = await call('GET', `${orderPath(target.orderNo)}?mchid=${encodeURIComponent(options.mchId)}`, '', signal);
      if (answer.status === 404 && codeOf(answer) === 'ORDER_NOT_EXIST') {
        authenticate(answer);
        return { state: 'not_found', gatewayStatus: 'ORDER_NOT_EXIST', fields: jsonObject(answer) };
      }
      if (answer.status < 200 || answer.status > 299) throw httpError(answer);
      authenticate(answer);
      return readTransaction(jsonObject(answer), target.orderNo, options.mchId, answer.text);
    },
    async close(target: QueryTarget, signal: AbortSignal) {
      const answer = await call('POST', `${orderPath(target.orderNo)}/close`, JSON.stringify({ mchid: options.mchId }), signal);
      const code = codeOf(answer);
      if (answer.status === 404 && code === 'ORDER_NOT_EXIST') {
        authenticate(answer);
        return { fields: jsonObject(answer) };
      }
      // Refusals change nothing (the reconciler asks again), so like wechatpay-go they are not required to be signed.
      if (answer.status >= 400 && answer.status < 500 && code === 'ORDERPAID') {
        throw new GatewayCallError('refused', `HTTP ${answer.status} ORDERPAID: the order was paid, WeChat Pay will not close it`, excerptOf(answer.text));
      }
      if (answer.status < 200 || answer.status > 299) throw httpError(answer);
      authenticate(answer);
      return { fields: answer.body.length === 0 ? {} : jsonObject(answer) };
    },
  };
}
