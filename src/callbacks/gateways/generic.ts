import type { Response } from 'express';
import { z } from 'zod';
import { sendData, sendError } from '../../http/envelope.ts';
import { ORDER_NO_PATTERN, ORDER_NO_RULE } from '../../orders/order-number.ts';
import { isSignType, verifySign } from '../../shared/signing.ts';
import { claimedOrderNo, flattenParams } from '../params.ts';
import type { CallbackOutcome, CallbackRequest, GatewayAdapter, Rejection, Verification } from './gateway.ts';

/** ±300 s around now. */
export const TIMESTAMP_WINDOW_S = 300;
/** Nonces are remembered well past the window in which their timestamp could be accepted. */
const NONCE_TTL_MS = 24 * 3600_000;

const fieldsSchema = z.object({
  order_no: z.string().regex(ORDER_NO_PATTERN, ORDER_NO_RULE),
  transaction_id: z.string().regex(/^[\x21-\x7e]{1,128}$/, 'must be 1-128 printable ASCII characters'),
  amount: z.string().regex(/^\d{1,18}(\.\d{1,18})?$/, 'must be a plain decimal such as 12.34'),
  currency: z
    .string()
    .regex(/^[A-Z]{3}$/, 'must be an ISO 4217 code')
    .optional(),
  status: z.enum(['success', 'failed'], { error: 'must be success or failed' }),
  timestamp: z
    .string()
    .regex(/^\d{1,12}$/, 'must be unix seconds')
    .optional(),
  nonce: z
    .string()
    .regex(/^[\x21-\x7e]{1,128}$/, 'must be 1-128 printable ASCII characters')
    .optional(),
});

// A refund notification (notify_type=refund): the same signature, window and nonce rules as a payment.
const refundFieldsSchema = z.object({
  notify_type: z.literal('refund'),
  order_no: fieldsSchema.shape.order_no,
  refund_no: z.string().regex(ORDER_NO_PATTERN, ORDER_NO_RULE),
  refund_amount: fieldsSchema.shape.amount,
  currency: fieldsSchema.shape.currency,
  status: z.enum(['refund_success', 'refund_failed'], { error: 'must be refund_success or refund_failed' }),
  timestamp: fieldsSchema.shape.timestamp,
  nonce: fieldsSchema.shape.nonce,
});

const reject = (rejection: Rejection): Verification => ({ ok: false, rejection });

/** notify_type=payment is the default; the payment fields are checked without it. */
function withoutNotifyType(params: Record<string, string>): Record<string, string> {
  const { notify_type: _type, ...rest } = params;
  return rest;
}

/** The heritage MD5 / HMAC-SHA256 sorted-parameter gateway, also used by the sandbox. */
export function createGenericGateway(name: 'generic' | 'sandbox', secret: string): GatewayAdapter {
  return {
    name,
    verify({ params: input, now }: CallbackRequest): Verification {
      const claimed = claimedOrderNo(input);
      const flat = flattenParams(input);
      if (!flat.ok) return reject({ verdict: 'malformed', code: 'validation_failed', message: flat.message, claimedOrderNo: claimed });
      const params = flat.params;
      if (!params.sign) return reject({ verdict: 'bad_signature', code: 'bad_signature', message: 'The sign parameter is missing', claimedOrderNo: claimed });
      const signType = params.sign_type ?? 'MD5';
      if (!isSignType(signType))
        return reject({ verdict: 'malformed', code: 'validation_failed', message: 'sign_type must be MD5 or HMAC-SHA256', claimedOrderNo: claimed });
      if (!verifySign(params, secret, signType, params.sign)) {
        return reject({ verdict: 'bad_signature', code: 'bad_signature', message: 'The signature does not match', claimedOrderNo: claimed });
      }
      // Empty values are not signed (A5): an empty extra parameter is skipped, but an empty field of ours is refused.
      const present: Record<string, string> = {};
      for (const key in params) {
        if (params[key] !== '') present[key] = params[key]!;
        else if (Object.hasOwn(fieldsSchema.shape, key)) {
          return reject({ verdict: 'malformed', code: 'validation_failed', message: `Invalid parameters: ${key} must not be empty`, claimedOrderNo: claimed });
        }
      }
      const notifyType = present.notify_type ?? 'payment';
      if (notifyType !== 'payment' && notifyType !== 'refund')
        return reject({ verdict: 'malformed', code: 'validation_failed', message: 'notify_type must be payment or refund', claimedOrderNo: claimed });
      const schema = notifyType === 'refund' ? refundFieldsSchema : fieldsSchema;
      const fields = schema.safeParse(notifyType === 'refund' ? present : withoutNotifyType(present));
      if (!fields.success) {
        const message = fields.error.issues.map((i) => `${i.path.join('.')} ${i.message}`).join('; ');
        return reject({ verdict: 'malformed', code: 'validation_failed', message: `Invalid parameters: ${message}`, claimedOrderNo: claimed });
      }
      const f = fields.data;
      if (f.timestamp !== undefined && Math.abs(now.getTime() / 1000 - Number(f.timestamp)) > TIMESTAMP_WINDOW_S) {
        return reject({
          verdict: 'replayed',
          code: 'replayed',
          message: `timestamp is more than ${TIMESTAMP_WINDOW_S} s away from now`,
          claimedOrderNo: f.order_no,
        });
      }
      const nonce = f.nonce ? { scope: name === 'sandbox' ? 'generic' : name, value: f.nonce, expiresAt: new Date(now.getTime() + NONCE_TTL_MS) } : undefined;
      if ('refund_no' in f) {
        const outcome = f.status === 'refund_success' ? 'succeeded' : 'failed';
        const refund = {
          orderNo: f.order_no,
          refundNo: f.refund_no,
          amount: { kind: 'decimal', value: f.refund_amount },
          currency: f.currency,
          outcome,
          nonce,
          fields: present,
        } as const;
        return { ok: 'refund', refunds: [outcome === 'failed' ? { ...refund, failureReason: 'the gateway reported refund_failed' } : refund] };
      }
      return {
        ok: true,
        result: {
          orderNo: f.order_no,
          transactionId: f.transaction_id,
          amount: { kind: 'decimal', value: f.amount },
          currency: f.currency,
          outcome: f.status === 'success' ? 'paid' : 'failed',
          nonce,
          pendingOnly: name === 'sandbox' || undefined,
        },
      };
    },
    acknowledge(res: Response, outcome: CallbackOutcome) {
      if (outcome.code) return sendError(res, outcome.status, outcome.code, outcome.message);
      sendData(res, { order_no: outcome.orderNo, status: outcome.orderStatus }, outcome.message, outcome.status);
    },
  };
}
