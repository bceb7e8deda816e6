import type { Response } from 'express';
import { z } from 'zod';
import type { CallbackOutcome, CallbackRequest, GatewayAdapter, PaymentOutcome, Rejection, Verification } from './gateway.ts';
import { ORDER_NO_PATTERN, ORDER_NO_RULE } from '../../orders/order-number.ts';
import { swallowsPair } from '../../shared/signing.ts';
import { wechatpayPlatformKeys } from './gateway-keys.ts';
import { apiV3KeyBytes, decryptResource, findPlatformKey, verifyNotificationSignature } from './wechatpay-crypto.ts';
import { refundNotification } from './wechatpay-refund.ts';

/** Notifications whose `Wechatpay-Timestamp` is further than this from now are refused as replays. */
export const WECHATPAY_TIMESTAMP_WINDOW_S = 300;

export interface WechatpayConfig {
  /** 商户号: the `mchid` every notification must carry. */
  mchId: string;
  /** APIv3 密钥: 32 characters, the AES-256-GCM key of `resource`. */
  apiV3Key: string;
  /** WECHATPAY_PLATFORM_KEYS: JSON `{"<serial>":"<PEM public key or certificate>"}`. */
  platformKeys: string;
}

const printable = (max: number) => z.string().regex(new RegExp(`^[\\x21-\\x7e]{1,${max}}$`), `must be 1-${max} printable ASCII characters`);

/** The notification envelope, parsed only once its signature checked out. */
const envelopeSchema = z.object({
  id: printable(128),
  event_type: printable(64),
  resource: z.object({
    algorithm: z.string(),
    ciphertext: z.string().regex(/^[A-Za-z0-9+/]+={0,2}$/, 'must be base64'),
    nonce: z.string().min(1).max(64),
    associated_data: z.string().optional(),
  }),
});

/** The decrypted transaction (支付成功通知 resource); other fields are kept in `fields` untouched. */
const transactionSchema = z.object({
  out_trade_no: z.string().regex(ORDER_NO_PATTERN, ORDER_NO_RULE),
  // It is signed into the merchant's notification (A5's string), so it must not hold `&name=`.
  transaction_id: printable(128).refine((v) => !swallowsPair(v), 'must not contain "&" followed by a parameter name and "="'),
  trade_state: z.string(),
  amount: z.object({
    total: z.number().int().nonnegative().refine(Number.isSafeInteger, 'is too large'),
    currency: z.string().regex(/^[A-Z]{3}$/, 'must be an ISO 4217 code'),
  }),
});

const TRADE_OUTCOMES: Partial<Record<string, PaymentOutcome>> = { SUCCESS: 'paid', CLOSED: 'closed', PAYERROR: 'failed' };

const reject = (rejection: Rejection): Verification => ({ ok: false, rejection });
const issues = (error: z.ZodError) => error.issues.map((i) => `${i.path.join('.')} ${i.message}`).join('; ');

/** One header value: Node lower-cases names; a header sent twice is not trusted. */
function header(headers: CallbackRequest['headers'], name: string): string | undefined {
  const value = headers[name] ?? Object.entries(headers).find(([k]) => k.toLowerCase() === name)?.[1];
  return typeof value === 'string' && value !== '' ? value : undefined;
}

function parseJsonObject(text: string): Record<string, unknown> | null {
  try {
    const value: unknown = JSON.parse(text);
    return value !== null && typeof value === 'object' && !Array.isArray(value) ? (value as Record<string, unknown>) : null;
  } catch {
    return null;
  }
}

/**
 * WeChat Pay API v3 payment and refund notifications (`POST /notify/wechatpay`). The header signature is checked
 * over the exact request bytes before anything in the body is believed; then `resource` is decrypted with the
 * APIv3 key, and only the decrypted transaction is trusted for the order, amount, currency and state.
 * Construction throws, naming the setting (and the serial), when the configuration cannot work.
 */
export function createWechatpayGateway(config: WechatpayConfig): GatewayAdapter {
  if (!config.mchId) throw new Error('WECHATPAY_MCH_ID: must not be empty');
  const aesKey = apiV3KeyBytes(config.apiV3Key);
  const platformKeys = wechatpayPlatformKeys(config.platformKeys);

  function verifyNotification({ rawBody, headers, now }: CallbackRequest): Verification {
    const serial = header(headers, 'wechatpay-serial');
    const signature = header(headers, 'wechatpay-signature');
    const timestamp = header(headers, 'wechatpay-timestamp');
    const nonce = header(headers, 'wechatpay-nonce');
    if (!serial || !signature || !timestamp || !nonce) {
      const given = { 'Wechatpay-Serial': serial, 'Wechatpay-Signature': signature, 'Wechatpay-Timestamp': timestamp, 'Wechatpay-Nonce': nonce };
      const missing = Object.keys(given).filter((k) => given[k as keyof typeof given] === undefined);
      return reject({
        verdict: 'bad_signature',
        code: 'bad_signature',
        message: `Missing or repeated header${missing.length > 1 ? 's' : ''} ${missing.join(', ')}`,
      });
    }
    const key = findPlatformKey(platformKeys, serial);
    if (!key) {
      return reject({
        verdict: 'bad_signature',
        code: 'bad_signature',
        message: `Wechatpay-Serial ${serial} is not in WECHATPAY_PLATFORM_KEYS (a new platform key? add its serial)`,
      });
    }
    const body = rawBody ?? Buffer.alloc(0);
    if (!verifyNotificationSignature(key, timestamp, nonce, body, signature)) {
      return reject({ verdict: 'bad_signature', code: 'bad_signature', message: `Wechatpay-Signature does not match the body for platform key ${serial}` });
    }
    // The timestamp is signed, so from here on it is WeChat's: a stale one is a replay (or a delivery held far too long).
    if (!/^\d{1,12}$/.test(timestamp)) return reject({ verdict: 'malformed', code: 'validation_failed', message: 'Wechatpay-Timestamp must be unix seconds' });
    if (Math.abs(now.getTime() / 1000 - Number(timestamp)) > WECHATPAY_TIMESTAMP_WINDOW_S) {
      return reject({ verdict: 'replayed', code: 'replayed', message: `Wechatpay-Timestamp is more than ${WECHATPAY_TIMESTAMP_WINDOW_S} s away from now` });
    }

    const envelope = envelopeSchema.safeParse(parseJsonObject(body.toString('utf8')));
    if (!envelope.success) return reject({ verdict: 'malformed', code: 'validation_failed', message: `Invalid notification body: ${issues(envelope.error)}` });
    const { id, event_type: eventType, resource } = envelope.data;
    if (resource.algorithm !== 'AEAD_AES_256_GCM') {
      return reject({
        verdict: 'malformed',
        code: 'validation_failed',
        message: `resource.algorithm ${resource.algorithm} is not supported (expected AEAD_AES_256_GCM)`,
      });
    }
    // The body is WeChat's (signed), so a resource that fails its GCM tag was sealed under another key: most
    // likely WECHATPAY_APIV3_KEY is not the key set on the merchant platform. Refused like a bad signature.
    const plaintext = decryptResource(aesKey, resource);
    if (plaintext === null) {
      return reject({
        verdict: 'bad_signature',
        code: 'bad_signature',
        message: `resource of notification ${id} does not decrypt (AEAD tag mismatch): check WECHATPAY_APIV3_KEY`,
      });
    }
    const fields = parseJsonObject(plaintext);
    if (!fields) return reject({ verdict: 'malformed', code: 'validation_failed', message: `resource of notification ${id} is not a JSON object` });
    const claimed = typeof fields.out_trade_no === 'string' ? fields.out_trade_no.slice(0, 64) : undefined;
    if (fields.mchid !== undefined && fields.mchid !== config.mchId) {
      return reject({
        verdict: 'forbidden',
        code: 'forbidden',
        message: `mchid ${String(fields.mchid).slice(0, 64)} is not this merchant (WECHATPAY_MCH_ID)`,
        claimedOrderNo: claimed,
      });
    }
    // 退款结果通知: sealed and signed like a payment's, it settles one of our refunds and never the order's payment.
    if (eventType.startsWith('REFUND.')) return refundNotification(id, eventType, fields);
    const tradeState = fields.trade_state;
    if (tradeState === undefined)
      return { ok: 'ignored', message: `${eventType} notification ${id} carries no trade_state; ignored`, claimedOrderNo: claimed, fields };
    if (fields.mchid === undefined)
      return reject({ verdict: 'malformed', code: 'validation_failed', message: 'resource.mchid is missing', claimedOrderNo: claimed });
    const transaction = transactionSchema.safeParse(fields);
    if (!transaction.success)
      return reject({ verdict: 'malformed', code: 'validation_failed', message: `Invalid resource: ${issues(transaction.error)}`, claimedOrderNo: claimed });
    const t = transaction.data;
    const outcome = TRADE_OUTCOMES[t.trade_state];
    // NOTPAY, USERPAYING, REFUND, REVOKED (and any state WeChat adds) change no order here: acknowledged, logged.
    if (!outcome)
      return { ok: 'ignored', message: `trade_state ${t.trade_state.slice(0, 32)} changes no order; ignored`, claimedOrderNo: t.out_trade_no, fields };
    return {
      ok: true,
      result: {
        orderNo: t.out_trade_no,
        transactionId: t.transaction_id,
        amount: { kind: 'minor', value: t.amount.total },
        currency: t.amount.currency,
        outcome,
        eventKey: id,
        fields,
      },
    };
  }

  return {
    name: 'wechatpay',
    verify: verifyNotification,
    /** WeChat's format: 204 and no body when accepted; otherwise the status with {"code":"FAIL","message":…}, and WeChat retries. */
    acknowledge(res: Response, outcome: CallbackOutcome) {
      if (outcome.status >= 200 && outcome.status < 300) {
        res.status(204).end();
        return;
      }
      res.status(outcome.status).json({ code: 'FAIL', message: outcome.message });
    },
  };
}
