import { z } from 'zod';
import { ORDER_NO_PATTERN, ORDER_NO_RULE } from '../../orders/order-number.ts';
import type { RefundResult, Verification } from './gateway.ts';

/*
 * WeChat Pay API v3 refunds in gateway-neutral terms, for the notifications (退款结果通知) and the refund client alike.
 * The statuses are wechatpay-go's refunddomestic.Status: SUCCESS 退款成功, PROCESSING 退款处理中, CLOSED 退款关闭,
 * ABNORMAL 退款异常 (the payer's account refused the money; WeChat leaves the refund to the merchant platform).
 */

export const REFUND_STATUSES: Readonly<Record<string, { outcome: RefundResult['outcome']; reason?: string }>> = {
  SUCCESS: { outcome: 'succeeded' },
  PROCESSING: { outcome: 'pending' },
  CLOSED: { outcome: 'failed', reason: 'CLOSED: WeChat Pay closed the refund (退款关闭)' },
  ABNORMAL: { outcome: 'failed', reason: "ABNORMAL: the payer's account could not receive the refund (退款异常); see the merchant platform" },
};

const printable = (max: number) => z.string().regex(new RegExp(`^[\\x21-\\x7e]{1,${max}}$`), `must be 1-${max} printable ASCII characters`);
const minor = z.number().int().nonnegative().refine(Number.isSafeInteger, 'is too large');

/** The decrypted refund resource; other fields (user_received_account, success_time…) are kept in `fields` untouched. */
const refundSchema = z.object({
  mchid: z.string(),
  out_trade_no: z.string().regex(ORDER_NO_PATTERN, ORDER_NO_RULE),
  transaction_id: printable(128).optional(),
  out_refund_no: printable(64),
  refund_id: printable(64),
  refund_status: z.string(),
  amount: z.object({ total: minor, refund: minor, payer_total: minor.optional(), payer_refund: minor.optional() }),
});

const issues = (error: z.ZodError) => error.issues.map((i) => `${i.path.join('.')} ${i.message}`).join('; ');

/**
 * A verified, decrypted REFUND.SUCCESS / REFUND.ABNORMAL / REFUND.CLOSED notification (its mchid already checked to be
 * ours) as a refund result; `id` (the notification id) is its idempotency key.
 */
export function refundNotification(id: string, eventType: string, fields: Record<string, unknown>): Verification {
  const claimed = typeof fields.out_trade_no === 'string' ? fields.out_trade_no.slice(0, 64) : undefined;
  const malformed = (message: string): Verification => ({
    ok: false,
    rejection: { verdict: 'malformed', code: 'validation_failed', message, claimedOrderNo: claimed },
  });
  const parsed = refundSchema.safeParse(fields);
  if (!parsed.success) return malformed(`Invalid refund resource: ${issues(parsed.error)}`);
  const r = parsed.data;
  const status = REFUND_STATUSES[r.refund_status];
  if (!status) return malformed(`refund_status ${r.refund_status.slice(0, 32)} is not one WeChat Pay documents`);
  // Both are WeChat's (signed, sealed): when they disagree nothing says which outcome is true.
  if (eventType !== `REFUND.${r.refund_status}`) return malformed(`event_type ${eventType} does not agree with refund_status ${r.refund_status}`);
  return {
    ok: 'refund',
    refunds: [
      {
        orderNo: r.out_trade_no,
        refundNo: r.out_refund_no,
        gatewayRefundId: r.refund_id,
        amount: { kind: 'minor', value: r.amount.refund },
        outcome: status.outcome,
        ...(status.reason ? { failureReason: status.reason } : {}),
        eventKey: id,
        fields,
      },
    ],
  };
}
