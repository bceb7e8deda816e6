import type { Database, Executor } from '../db/database.ts';
import { isUniqueViolation } from '../db/db-errors.ts';
import { signQueryAnswer, verifyQueryRequest, type QueryAnswerFields } from '../reconcile/query-protocol.ts';
import { signRefundAnswer, verifyRefundRequest, type RefundAnswerFields, type RefundRequestFields } from '../reconcile/refund-protocol.ts';
import { InvalidStateError } from '../shared/errors.ts';
import { formatAmount, parseAmount } from '../shared/money.ts';
import { toDbTime, type Clock } from '../shared/time.ts';

export interface SandboxPayment {
  orderNo: string;
  transactionId: string;
  status: 'success' | 'failed';
  amountMinor: number;
  currency: string;
  /** Paid with "lose the notification": the gateway knows it, the service does not (yet). */
  notificationLost: boolean;
}

/** A gateway's answer: HTTP status and body. `accepted` names a refund booked by this very request (the one to notify). */
export interface GatewayAnswer {
  status: number;
  body: string;
  accepted?: RefundRequestFields;
}

const refusal = (status: number, error: string, message: string): GatewayAnswer => ({ status, body: JSON.stringify({ error, message }) });

/**
 * The sandbox gateway's own books: what it was told at its checkout and the refunds it made, and the query and
 * refund protocols answered from them (signed with GATEWAY_SECRET, like its notifications), as a real gateway
 * answers from its ledger.
 */
export function createSandboxGateway(db: Database, secret: string, clock: Clock) {
  /** Written before the notification is sent; a second payment of one order is refused, as at a gateway. */
  async function record(exec: Executor, payment: SandboxPayment): Promise<void> {
    try {
      await exec
        .insertInto('sandbox_payments')
        .values({
          order_no: payment.orderNo,
          transaction_id: payment.transactionId,
          status: payment.status,
          amount_minor: payment.amountMinor,
          currency: payment.currency,
          notification_lost: payment.notificationLost ? 1 : 0,
          created_at: toDbTime(clock()),
        })
        .execute();
    } catch (err) {
      if (isUniqueViolation(err)) throw new InvalidStateError(`Sandbox order ${payment.orderNo} was already paid or failed at the sandbox gateway`);
      throw err;
    }
  }

  async function find(orderNo: string) {
    return db.kysely.selectFrom('sandbox_payments').selectAll().where('order_no', '=', orderNo).executeTakeFirst();
  }

  /** The query protocol's answer to a form: 200 with the signed JSON, or 401/400 with an error, as a gateway would. */
  async function answerQuery(form: Record<string, unknown>): Promise<GatewayAnswer> {
    const checked = verifyQueryRequest(form, secret, clock());
    if (!checked.ok) return refusal(checked.reason === 'bad_signature' ? 401 : 400, checked.reason, checked.message);
    if (checked.value.refundNo) return answerRefundQuery(checked.value.orderNo, checked.value.refundNo);
    const row = await find(checked.value.orderNo);
    const fields: QueryAnswerFields = row
      ? {
          order_no: row.order_no,
          status: row.status === 'success' ? 'success' : 'failed',
          amount: formatAmount(Number(row.amount_minor), row.currency),
          currency: row.currency,
          transaction_id: row.transaction_id,
        }
      : { order_no: checked.value.orderNo, status: 'pending' };
    return { status: 200, body: signQueryAnswer(fields, secret, clock()) };
  }

  /** A refund query: what the books hold for that refund of that order, or refund_not_found. */
  async function answerRefundQuery(orderNo: string, refundNo: string): Promise<GatewayAnswer> {
    const row = await db.kysely.selectFrom('sandbox_refunds').selectAll().where('refund_no', '=', refundNo).where('order_no', '=', orderNo).executeTakeFirst();
    const fields: RefundAnswerFields = row
      ? {
          order_no: orderNo,
          refund_no: refundNo,
          status: row.status === 'refund_failed' ? 'refund_failed' : 'refund_success',
          refund_amount: formatAmount(Number(row.amount_minor), row.currency),
          currency: row.currency,
        }
      : { order_no: orderNo, refund_no: refundNo, status: 'refund_not_found' };
    return { status: 200, body: signRefundAnswer(fields, secret, clock()) };
  }

  /**
   * The refund protocol's answer: 200 when the refund is booked (or was, under the same refund_no with the same
   * fields), 4xx when refused as a gateway refuses (not paid here, more than the unrefunded rest, another currency,
   * a refund_no used for another refund). The payment row is locked, so concurrent refunds never exceed it.
   */
  async function answerRefund(form: Record<string, unknown>): Promise<GatewayAnswer> {
    const checked = verifyRefundRequest(form, secret, clock());
    if (!checked.ok) return refusal(checked.reason === 'bad_signature' ? 401 : 400, checked.reason, checked.message);
    const asked = checked.value;
    try {
      return await db.kysely.transaction().execute((tx) => bookRefund(tx, asked));
    } catch (err) {
      // The same refund_no booked meanwhile by a concurrent request (of another order: no lock in common).
      if (!isUniqueViolation(err)) throw err;
      return (await sameRefund(db.kysely, asked)) ?? refusal(409, 'refund_no_used', `refund_no ${asked.refund_no} was used for another refund`);
    }
  }

  /** The answer to a refund_no already booked: 200 again for the same refund, undefined when there is none. */
  async function sameRefund(exec: Executor, asked: RefundRequestFields): Promise<GatewayAnswer | undefined> {
    const row = await exec.selectFrom('sandbox_refunds').selectAll().where('refund_no', '=', asked.refund_no).executeTakeFirst();
    if (!row) return undefined;
    const amount = parseAmount(asked.refund_amount, row.currency);
    const same = row.order_no === asked.order_no && row.currency === asked.currency && amount.ok && amount.minor === Number(row.amount_minor);
    return same ? accepted(asked) : refusal(409, 'refund_no_used', `refund_no ${asked.refund_no} was used for another refund`);
  }

  const accepted = (asked: RefundRequestFields): GatewayAnswer => ({
    status: 200,
    body: JSON.stringify({ order_no: asked.order_no, refund_no: asked.refund_no, result: 'accepted' }),
  });

  async function bookRefund(tx: Executor, asked: RefundRequestFields): Promise<GatewayAnswer> {
    const locked = tx.selectFrom('sandbox_payments').selectAll().where('order_no', '=', asked.order_no);
    const payment = await (db.engine === 'mysql' ? locked.forUpdate() : locked).executeTakeFirst();
    const known = await sameRefund(tx, asked);
    if (known) return known;
    if (payment?.status !== 'success') return refusal(409, 'trade_not_paid', `Order ${asked.order_no} was not paid at the sandbox gateway`);
    if (payment.currency !== asked.currency) return refusal(400, 'currency_mismatch', `Order ${asked.order_no} was paid in ${payment.currency}`);
    const amount = parseAmount(asked.refund_amount, payment.currency);
    if (!amount.ok) return refusal(400, 'invalid_amount', `refund_amount ${amount.message}`);
    const { refunded } = await tx
      .selectFrom('sandbox_refunds')
      .select((eb) => eb.fn.coalesce(eb.fn.sum<number>('amount_minor'), eb.lit(0)).as('refunded'))
      .where('order_no', '=', asked.order_no)
      .executeTakeFirstOrThrow();
    const rest = Number(payment.amount_minor) - Number(refunded);
    if (amount.minor > rest)
      return refusal(
        409,
        'refund_exceeds_paid',
        `Only ${formatAmount(rest, payment.currency)} ${payment.currency} of order ${asked.order_no} is left to refund`,
      );
    const row = { refund_no: asked.refund_no, order_no: asked.order_no, amount_minor: amount.minor, currency: payment.currency, status: 'refund_success' };
    await tx
      .insertInto('sandbox_refunds')
      .values({ ...row, created_at: toDbTime(clock()) })
      .execute();
    return { ...accepted(asked), accepted: asked };
  }

  return { record, find, answerQuery, answerRefund };
}

export type SandboxGateway = ReturnType<typeof createSandboxGateway>;
