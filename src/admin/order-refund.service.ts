import { z } from 'zod';
import { recordAudit } from '../audit/audit.repository.ts';
import type { Database, Executor } from '../db/database.ts';
import { generateOrderNo, ORDER_NO_PATTERN } from '../orders/order-number.ts';
import { findOrderByNo, type OrderRow } from '../orders/order.repository.ts';
import { toRefundJson } from '../orders/order.view.ts';
import { findRefundByNo, type RefundRow } from '../orders/refund.repository.ts';
import { createRefundSchema } from '../refunds/refund.schema.ts';
import type { RefundService } from '../refunds/refund.service.ts';
import { AppError, NotFoundError } from '../shared/errors.ts';
import { formatAmount } from '../shared/money.ts';
import type { Clock } from '../shared/time.ts';
import type { FlashKey } from './admin-view.ts';
import type { ConsoleActor } from './orders.service.ts';

/** The refund's requester column holds 64 characters: `console:` and the operator's name, cut to fit. */
const REQUESTER_CHARS = 64;
const requesterOf = (operator: string) => Array.from(`console:${operator}`).slice(0, REQUESTER_CHARS).join('');

/** The form: the refund number it was rendered with makes a second post of the same form a repeat, not a second refund. */
const refundForm = createRefundSchema.extend({ refund_no: z.string().regex(ORDER_NO_PATTERN) });
const text = (value: unknown) => (typeof value === 'string' ? value.trim() : undefined);

/** Refusals of the refund service that the order page answers with a flash. */
const REFUSED: Record<string, FlashKey> = {
  refund_exceeds_paid: 'refund_exceeds_paid',
  invalid_state: 'refund_invalid_state',
  not_refundable: 'refund_not_refundable',
  validation_failed: 'refund_invalid',
  refund_exists: 'refund_exists',
};

/**
 * The order page's refund facts: refunded and reserved amounts, each refund (newest first), and the form's default
 * (the rest: amount − refunded − reserved). The form is offered only for a paid order of a refundable gateway with a rest.
 */
export function refundFacts(row: OrderRow, refunds: RefundRow[], refundable: boolean, now: Date) {
  const restMinor = Math.max(0, row.amount_minor - row.refunded_minor - row.refund_reserved_minor);
  const paid = row.status === 'paid';
  return {
    refunded: formatAmount(row.refunded_minor, row.currency),
    reserved: row.refund_reserved_minor > 0 ? formatAmount(row.refund_reserved_minor, row.currency) : null,
    rest: formatAmount(restMinor, row.currency),
    /** `form`: offered; `nothing_left`: all refunded or reserved; `unavailable`: paid, but its gateway cannot refund here. */
    offer: !paid ? null : !refundable ? ('unavailable' as const) : restMinor === 0 ? ('nothing_left' as const) : ('form' as const),
    /** A fresh number for each rendering of the form. */
    refundNo: `R${generateOrderNo(now)}`,
    /** `operator`: the console user who asked for it (null when the API did). */
    items: refunds.map((r) => ({
      ...toRefundJson(r),
      requested_by: r.requested_by,
      operator: r.requested_by.startsWith('console:') ? r.requested_by.slice(8) : null,
    })),
  };
}

/** The order page's refund action: the refund service's create, audit-logged as `order.refund` in the reservation's transaction. */
export function createOrderRefund(deps: { db: Database; clock: Clock; refunds: Pick<RefundService, 'create'> }) {
  /** What a created refund stands at once its gateway has been called; a pending one the gateway answered is `created`. */
  async function flashOfCreated(refund: { refund_no: string; status: string }): Promise<FlashKey> {
    if (refund.status === 'succeeded') return 'refund_succeeded';
    if (refund.status === 'failed') return 'refund_failed';
    // No answer recorded: the call failed or timed out, the outcome is unknown until the gateway is asked.
    const row = await findRefundByNo(deps.db.kysely, refund.refund_no);
    return row?.last_answer ? 'refund_created' : 'refund_pending';
  }

  /** Refunds from the posted form; every refusal becomes a flash key, never an error page (an unknown order is a 404). */
  async function refund(orderNo: string, body: Record<string, unknown>, actor: ConsoleActor): Promise<FlashKey> {
    if (!(await findOrderByNo(deps.db.kysely, orderNo))) throw new NotFoundError(`Order ${orderNo} not found`);
    if (body.confirm !== 'yes') return 'refund_unconfirmed';
    const parsed = refundForm.safeParse({ amount: text(body.amount), reason: text(body.reason) || undefined, refund_no: text(body.refund_no) });
    if (!parsed.success) return 'refund_invalid';
    const input = parsed.data;
    // Written in the reservation's transaction: the order as locked there, the refund as reserved.
    const audit = async (trx: Executor) => {
      const order = await findOrderByNo(trx, orderNo);
      const reserved = await findRefundByNo(trx, input.refund_no);
      await recordAudit(trx, {
        actor: actor.operator,
        action: 'order.refund',
        target: `order:${orderNo}`,
        oldValue: order ? { status: order.status, refunded_amount: formatAmount(order.refunded_minor, order.currency) } : null,
        newValue: reserved
          ? {
              refund_no: reserved.refund_no,
              amount: formatAmount(reserved.amount_minor, reserved.currency),
              currency: reserved.currency,
              reason: reserved.reason,
            }
          : null,
        remoteIp: actor.remoteIp,
        now: deps.clock(),
      });
    };
    try {
      const { refund, created } = await deps.refunds.create(orderNo, input, requesterOf(actor.operator), audit);
      return created ? await flashOfCreated(refund) : 'refund_repeated';
    } catch (err) {
      if (err instanceof AppError && Object.hasOwn(REFUSED, err.code)) return REFUSED[err.code]!;
      throw err;
    }
  }

  return { refund };
}

/** The refund an `order.refund` audit row names, for its line on the timeline. */
export function auditedRefund(newValue: string | null): { refund_no: string; amount: string; currency: string } | null {
  try {
    const value = JSON.parse(newValue ?? 'null') as Record<string, unknown> | null;
    return value && typeof value.refund_no === 'string' ? { refund_no: value.refund_no, amount: String(value.amount), currency: String(value.currency) } : null;
  } catch {
    return null;
  }
}

export type OrderRefund = ReturnType<typeof createOrderRefund>;
