import { z } from 'zod';
import { amountText, orderNoSchema } from '../orders/order.schema.ts';
import { ORDER_NO_PATTERN, ORDER_NO_RULE } from '../orders/order-number.ts';

/** `POST /api/orders/:order_no/refunds`: the amount in the order's currency (checked against it by the ledger). */
export const createRefundSchema = z.object({
  amount: amountText,
  reason: z.string().trim().max(256, 'must be at most 256 characters').optional(),
  refund_no: z.string().regex(ORDER_NO_PATTERN, ORDER_NO_RULE).optional(),
});

export type CreateRefundInput = z.infer<typeof createRefundSchema>;

export const orderNoParams = z.object({ order_no: orderNoSchema });
export const refundNoParams = z.object({ refund_no: z.string().regex(ORDER_NO_PATTERN, ORDER_NO_RULE) });
